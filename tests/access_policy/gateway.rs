//! Istio's documented semantics, for exactly the fields the template uses.
//!
//! Followed from the Istio reference "Authorization Policy"
//! (https://istio.io/latest/docs/reference/config/security/authorization-policy/):
//! - evaluation: CUSTOM first, then "if there are any DENY policies that match the
//!   request, deny the request", then "if there are no ALLOW policies for the workload,
//!   allow the request";
//! - a rule matches when all of its `from`, `to` and `when` match, an absent one matching
//!   everything; a list of sources (operations) matches when any element does;
//! - `Source.notRequestPrincipals`: "a list of negative match of request identities";
//!   a request principal is `<iss>/<sub>` of the JWT the RequestAuthentication validated,
//!   and a request without a token has none (the documented "require JWT" policy is a DENY
//!   with `notRequestPrincipals: ["*"]`);
//! - `Operation.hosts`: "a list of hosts as specified in the HTTP request. The match is
//!   case-insensitive" (CVE-2021-39155 made it so); and since a route for a host also
//!   serves `host:port`, hosts are listed with and without `:*` (Istio's guidance in its
//!   1.9/1.10 upgrade notes, "Authorization policies with exact-match hosts");
//! - string fields: "exact match, prefix match (`abc*`), suffix match (`*abc`) and
//!   presence match (`*`)".
//!
//! And from "RequestAuthentication"
//! (https://istio.io/latest/docs/reference/config/security/request_authentication/):
//! "a request that contains an invalid token (expired, wrong signature, ...) is rejected"
//! (401), while "a request without any token is accepted but has no authenticated
//! identity".

use super::*;

/// The token a request carries, after the gateway's RequestAuthentication.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Token<'a> {
    /// No token.
    None,
    /// A valid token of `iss` for `sub`.
    Valid { iss: &'a str, sub: &'a str },
    /// An expired (or otherwise invalid) token.
    Expired,
}

/// What the gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Routed to the workspace.
    Allowed,
    /// Refused by a DENY policy (403).
    Denied,
    /// Refused by the RequestAuthentication (401).
    Unauthenticated,
}

/// Istio's string match: exact, `prefix*`, `*suffix`, `*` (presence).
fn string_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        !value.is_empty()
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else {
        value == pattern
    }
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn source_matches(source: &Value, principal: &str) -> bool {
    let known = ["requestPrincipals", "notRequestPrincipals"];
    for key in source.as_object().expect("a source").keys() {
        assert!(known.contains(&key.as_str()), "the model lacks {key}");
    }
    let yes = source
        .get("requestPrincipals")
        .is_none_or(|p| strings(p).iter().any(|p| string_match(p, principal)));
    let not = source
        .get("notRequestPrincipals")
        .is_none_or(|p| !strings(p).iter().any(|p| string_match(p, principal)));
    yes && not
}

fn operation_matches(operation: &Value, host: &str) -> bool {
    for key in operation.as_object().expect("an operation").keys() {
        assert_eq!(key, "hosts", "the model lacks {key}");
    }
    let host = host.to_ascii_lowercase();
    operation.get("hosts").is_none_or(|h| {
        strings(h)
            .iter()
            .any(|p| string_match(&p.to_ascii_lowercase(), &host))
    })
}

fn rule_matches(rule: &Value, host: &str, principal: &str) -> bool {
    for key in rule.as_object().expect("a rule").keys() {
        assert!(
            ["from", "to"].contains(&key.as_str()),
            "the model lacks {key}"
        );
    }
    let from = rule["from"]
        .as_array()
        .is_none_or(|from| from.iter().any(|f| source_matches(&f["source"], principal)));
    let to = rule["to"]
        .as_array()
        .is_none_or(|to| to.iter().any(|t| operation_matches(&t["operation"], host)));
    from && to
}

/// The gateway's answer to a request for `host` with `token`, under `policies` (all
/// selecting the gateway, as the test checks).
pub(crate) fn decide(policies: &[Value], host: &str, token: Token<'_>) -> Verdict {
    let principal = match token {
        Token::None => String::new(),
        Token::Valid { iss, sub } => format!("{iss}/{sub}"),
        Token::Expired => return Verdict::Unauthenticated,
    };
    for policy in policies {
        let spec = &policy["spec"];
        assert_eq!(spec["action"], "DENY", "the model knows DENY only");
        let rules = spec["rules"].as_array().expect("rules");
        if rules.iter().any(|r| rule_matches(r, host, &principal)) {
            return Verdict::Denied;
        }
    }
    // NB: no ALLOW policy on the gateway: everything not denied is allowed.
    Verdict::Allowed
}

#[test]
fn only_the_owner_gets_through_the_gateway() {
    let alice = render_for(&owner("alice", Some(ALICE_SUB))).expect("alice renders");
    let bob = render_for(&owner("bob", Some(BOB_SUB))).expect("bob renders");
    let mut all = policies(&alice);
    all.extend(policies(&bob));
    assert_eq!(all.len(), 2, "one policy per instance");
    for p in &all {
        assert_eq!(p["metadata"]["namespace"], "istio-system");
        assert_eq!(
            p["spec"]["selector"]["matchLabels"],
            json!({"istio": "ingressgateway"}),
            "selects the ingress gateway workload"
        );
    }
    let alice_host = "code-alice.devplatform.local";
    let bob_host = "code-bob.devplatform.local";
    let alice_token = Token::Valid {
        iss: ISSUER,
        sub: ALICE_SUB,
    };
    let bob_token = Token::Valid {
        iss: ISSUER,
        sub: BOB_SUB,
    };
    let table: &[(&str, &str, Token<'_>, Verdict)] = &[
        ("the owner", alice_host, alice_token, Verdict::Allowed),
        (
            "the owner, host with a port",
            "code-alice.devplatform.local:443",
            alice_token,
            Verdict::Allowed,
        ),
        (
            "another user's token",
            alice_host,
            bob_token,
            Verdict::Denied,
        ),
        (
            "another user's token, host in capitals",
            "CODE-ALICE.DevPlatform.local",
            bob_token,
            Verdict::Denied,
        ),
        (
            "another user's token, host with a port",
            "code-alice.devplatform.local:8443",
            bob_token,
            Verdict::Denied,
        ),
        ("no token", alice_host, Token::None, Verdict::Denied),
        (
            "no token, host with a port",
            "code-alice.devplatform.local:80",
            Token::None,
            Verdict::Denied,
        ),
        (
            "an expired token",
            alice_host,
            Token::Expired,
            Verdict::Unauthenticated,
        ),
        (
            "the owner's sub from another issuer",
            alice_host,
            Token::Valid {
                iss: "https://evil.example/realms/devplatform",
                sub: ALICE_SUB,
            },
            Verdict::Denied,
        ),
        (
            "the owner's token for another instance's host",
            bob_host,
            alice_token,
            Verdict::Denied,
        ),
        (
            "the other owner on their own host",
            bob_host,
            bob_token,
            Verdict::Allowed,
        ),
        (
            "another host on the gateway (the API), no token",
            "codeserver.devplatform.local",
            Token::None,
            Verdict::Allowed,
        ),
        (
            "a host that only starts like the instance's",
            "code-alice.devplatform.local.evil.example",
            Token::None,
            Verdict::Allowed,
        ),
    ];
    let mut wrong = Vec::new();
    for (case, host, token, expected) in table {
        let got = decide(&all, host, *token);
        if got != *expected {
            wrong.push(format!(
                "{case}: {host} {token:?} -> {got:?}, expected {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn an_owner_without_a_sub_gets_a_policy_that_lets_nobody_in() {
    let objects = render_for(&owner("carol", None)).expect("renders");
    let all = policies(&objects);
    assert_eq!(all.len(), 1);
    for token in [
        Token::None,
        Token::Valid {
            iss: ISSUER,
            sub: "anyone",
        },
    ] {
        assert_eq!(
            decide(&all, "code-carol.devplatform.local", token),
            Verdict::Denied
        );
    }
}
