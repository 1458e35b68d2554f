//! The workspaces' CUSTOM policy on the gateway, under Istio's and Envoy's own rules for
//! the exact fields it uses.
//!
//! From Istio (the reference "Authorization Policy", `Operation`, and the source that
//! turns it into Envoy's RBAC config, `pilot/pkg/security/authz/model/generator.go`
//! `hostGenerator` and `matcher/header.go` `HostMatcher`, the same from 1.22 to 1.30):
//! - a CUSTOM policy sends a request to its provider when any rule matches; a rule
//!   matches when all its parts do, an operation when one of its `hosts` matches and none
//!   of its `notHosts` does;
//! - `hosts` are matched against the request's `:authority`, port included, and "the
//!   match is case-insensitive" (`ignore_case: true` since CVE-2021-39155);
//! - a value is an exact match, a prefix match (`abc*`), a suffix match (`*abc`) or a
//!   presence match (`*`): ONE wildcard, at one end; a leading `*` wins, so `*.x:*` is a
//!   suffix match of the literal `.x:*`.
//!
//! And from the gateway's routes: Istio sets Envoy's `ignore_port_in_host_matching` on
//! every gateway route configuration (`pilot/pkg/networking/core/gateway.go`), so Envoy
//! "will ignore the port number in the :authority header (if any) when picking
//! VirtualHost": `code-alice.devplatform.local:8443` reaches alice's workspace route
//! like `code-alice.devplatform.local`. Virtual host domains are matched without regard
//! to case.

use std::collections::BTreeSet;

use super::*;
use support::fixtures::config;

/// Istio's host match of one `hosts`/`notHosts` value against an authority.
fn host_matches(pattern: &str, authority: &str) -> bool {
    let (pattern, authority) = (pattern.to_ascii_lowercase(), authority.to_ascii_lowercase());
    if pattern == "*" {
        !authority.is_empty()
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        authority.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        authority.starts_with(prefix)
    } else {
        authority == pattern
    }
}

fn operation_matches(operation: &Value, authority: &str) -> bool {
    for key in operation.as_object().expect("an operation").keys() {
        assert!(
            ["hosts", "notHosts"].contains(&key.as_str()),
            "the model lacks {key}"
        );
    }
    let yes = operation
        .get("hosts")
        .is_none_or(|h| strings(h).iter().any(|p| host_matches(p, authority)));
    let not = operation
        .get("notHosts")
        .is_none_or(|h| !strings(h).iter().any(|p| host_matches(p, authority)));
    yes && not
}

/// True when the gateway asks the service about a request for `authority`.
fn checked(policy: &Value, authority: &str) -> bool {
    let spec = &policy["spec"];
    assert_eq!(spec["action"], "CUSTOM", "the model knows CUSTOM only");
    spec["rules"].as_array().expect("rules").iter().any(|rule| {
        for key in rule.as_object().expect("a rule").keys() {
            assert_eq!(key, "to", "the model lacks {key}");
        }
        rule["to"]
            .as_array()
            .expect("to")
            .iter()
            .any(|to| operation_matches(&to["operation"], authority))
    })
}

/// The workspace whose route the gateway picks for `authority`, if any: the port is
/// ignored, the case too, and a workspace host is `code-<name>.<BASE_DOMAIN>`.
fn workspace_route<'a>(authority: &'a str, base_domain: &str) -> Option<&'a str> {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let lower = host.to_ascii_lowercase();
    let name = lower
        .strip_prefix("code-")?
        .strip_suffix(&format!(".{base_domain}"))?;
    (!name.is_empty() && !name.contains('.')).then_some(host)
}

/// The API's host: PUBLIC_URL's, and the API VirtualService's.
fn api_host(documents: &[Document]) -> String {
    let public_url = config()["PUBLIC_URL"].clone();
    let host = public_url
        .strip_prefix("https://")
        .expect("PUBLIC_URL is https")
        .trim_end_matches('/')
        .to_owned();
    let route = find(documents, "VirtualService", "codeserver-service");
    assert_eq!(route.value["spec"]["hosts"], json!([host]));
    host
}

#[test]
fn every_form_of_a_workspace_host_is_checked_and_the_api_host_never() {
    let documents = support::manifests();
    let policy = workspace_policy(&documents);
    let api = api_host(&documents);
    assert_eq!(api, "codeserver.devplatform.local");
    let table: &[(&str, bool)] = &[
        ("code-x.devplatform.local", true),
        ("CODE-X.devplatform.local:443", true),
        ("Code-X.DevPlatform.Local", true),
        ("code-x.devplatform.local:80", true),
        // Routed like the plain host: a port the client made up must not skip the check.
        ("code-x.devplatform.local:8443", true),
        ("CODE-ALICE.DEVPLATFORM.LOCAL:1", true),
        // Another host of the domain (an admin's extra route): refused by the check.
        ("preview-x.devplatform.local", true),
        ("preview-x.devplatform.local:443", true),
        // The API: /graphql is bearer-only, /auth/* is the login itself.
        ("codeserver.devplatform.local", false),
        ("CodeServer.DevPlatform.Local:443", false),
        ("codeserver.devplatform.local:8443", false),
        // Other teams' hosts on a shared gateway.
        ("www.example.com", false),
        ("devplatform.local", false),
        ("api.devplatform.local.example.com", false),
    ];
    let wrong: Vec<String> = table
        .iter()
        .filter(|(authority, expected)| checked(&policy, authority) != *expected)
        .map(|(authority, expected)| format!("{authority}: checked should be {expected}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(!checked(&policy, &api));
}

#[test]
fn no_authority_that_routes_to_a_workspace_skips_the_check() {
    let documents = support::manifests();
    let policy = workspace_policy(&documents);
    let base_domain = config()["BASE_DOMAIN"].clone();
    let names = ["alice", "bob", "x", "john-doe", "a1b2", "codeserver"];
    let ports = ["", ":443", ":80", ":8443", ":1", ":65535", ":0443"];
    let mut routed = 0;
    for name in names {
        let host = format!("code-{name}.{base_domain}");
        for case in [
            host.clone(),
            host.to_ascii_uppercase(),
            format!("Code-{}", &host[5..]),
        ] {
            for port in ports {
                let authority = format!("{case}{port}");
                if workspace_route(&authority, &base_domain).is_some() {
                    routed += 1;
                    assert!(
                        checked(&policy, &authority),
                        "{authority} reaches a workspace unchecked"
                    );
                }
            }
        }
    }
    assert_eq!(routed, names.len() * 3 * ports.len());
    // The API host is routed to the API, never to a workspace, and is not checked.
    let api = api_host(&documents);
    for port in ports {
        let authority = format!("{api}{port}");
        assert!(workspace_route(&authority, &base_domain).is_none());
        assert!(!checked(&policy, &authority), "{authority}");
    }
}

#[test]
fn each_host_pattern_has_one_wildcard_at_one_end() {
    // Istio reads one wildcard only: a second one, or one inside, is a literal character
    // that no host carries, and the pattern silently matches nothing.
    let policy = workspace_policy(&support::manifests());
    let operation = &policy["spec"]["rules"][0]["to"][0]["operation"];
    let patterns: Vec<String> = ["hosts", "notHosts"]
        .iter()
        .flat_map(|key| strings(&operation[*key]))
        .collect();
    assert!(!patterns.is_empty());
    for pattern in &patterns {
        let inner = pattern.trim_start_matches('*').trim_end_matches('*');
        assert!(
            pattern.matches('*').count() <= 1 && !inner.contains('*'),
            "{pattern}: Istio would read it literally"
        );
    }
    // The trap the patterns avoid: both ends wildcarded is a suffix match of `.x:*`.
    assert!(!host_matches(
        "*.devplatform.local:*",
        "code-x.devplatform.local:8443"
    ));
    assert!(host_matches("code-*", "CODE-X.devplatform.local:8443"));
}

#[test]
fn the_policy_acts_on_the_workspace_gateway_through_the_service_provider() {
    let documents = support::manifests();
    let policy = workspace_policy(&documents);
    let gateway = find(&documents, "Gateway", "devplatform-gateway");
    // The gateway pods the workspace routes run on, in the gateway's namespace, which is
    // also where the NetworkPolicies expect the gateway (templates' values).
    assert_eq!(
        policy["spec"]["selector"]["matchLabels"],
        gateway.value["spec"]["selector"]
    );
    let values: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("templates/values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml parses");
    assert_eq!(
        policy["metadata"]["namespace"],
        values["networkPolicy"]["ingressNamespace"]
    );
    assert_eq!(policy["spec"]["action"], "CUSTOM");
    assert_eq!(policy["spec"]["provider"]["name"], PROVIDER);
    assert_eq!(policy["spec"]["rules"].as_array().map(Vec::len), Some(1));
    // One static policy: no other AuthorizationPolicy, nothing per user, nothing the
    // service writes.
    let policies: BTreeSet<String> = documents
        .iter()
        .filter(|d| d.kind() == "AuthorizationPolicy")
        .map(|d| d.name().to_owned())
        .collect();
    assert_eq!(policies, BTreeSet::from([PROVIDER.to_owned()]));
    // The Gateway's hosts are namespace-qualified: only the workspaces' namespace and the
    // API's own route may bind them.
    let config = config();
    let api = api_host(&documents);
    for server in gateway.value["spec"]["servers"]
        .as_array()
        .expect("servers")
    {
        assert_eq!(
            server["hosts"],
            json!([
                format!(
                    "{}/*.{}",
                    config["CODESERVER_NAMESPACE"], config["BASE_DOMAIN"]
                ),
                format!("{}/{api}", support::fixtures::SERVICE_NAMESPACE),
            ]),
            "{server}"
        );
    }
}
