//! The per-instance access policy, through the public render surface: only the owner's
//! validated token gets a request for the instance's host through the gateway; the
//! policy is valid against Istio's own CRD schema; hostile ids and subs name exactly one
//! principal or are refused; a set that publishes workspaces without a policy is refused.

use std::path::PathBuf;

use clap::Parser;
use codeserver_service::{
    cli,
    config::{Cli, Command, InstanceSettings},
    render::{self, Templates},
    values::{Owner, Repo},
};
use serde_json::{Value, json};

const ISSUER: &str = "https://keycloak.test/realms/devplatform";
const ALICE_SUB: &str = "0c8f3a2e-1d4b-4f6a-9b7c-5e2d1a0f9c31";
const BOB_SUB: &str = "7a1e9d40-3c2b-4e8f-a6d5-0b9c8e7f6a52";

fn settings() -> InstanceSettings {
    InstanceSettings {
        jwt_issuer: Some(ISSUER.to_owned()),
        ..InstanceSettings::default()
    }
}

fn repo() -> Repo {
    Repo::new("devteam", "api", "http://gitea:3000/devteam/api.git").expect("a repository")
}

fn owner(user: &str, sub: Option<&str>) -> Owner {
    Owner {
        sub: sub.map(str::to_owned),
        ..Owner::new(user)
    }
}

/// Every object the built-in templates render for `owner`, as JSON.
fn render_for(owner: &Owner) -> Result<Vec<Value>, String> {
    let templates = Templates::builtin().expect("the built-in templates load");
    let values = render::build_values(&templates, &settings(), owner, &[repo()], &[])
        .map_err(|e| e.to_string())?;
    let objects = templates.render(&values).map_err(|e| e.to_string())?;
    Ok(objects
        .iter()
        .map(|r| serde_json::to_value(&r.object).expect("an object serializes"))
        .collect())
}

/// The AuthorizationPolicies among `objects`.
fn policies(objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "AuthorizationPolicy")
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// Istio's documented semantics, for exactly the fields the template uses.
//
// Followed from the Istio reference "Authorization Policy"
// (https://istio.io/latest/docs/reference/config/security/authorization-policy/):
// - evaluation: CUSTOM first, then "if there are any DENY policies that match the
//   request, deny the request", then "if there are no ALLOW policies for the workload,
//   allow the request";
// - a rule matches when all of its `from`, `to` and `when` match, an absent one matching
//   everything; a list of sources (operations) matches when any element does;
// - `Source.notRequestPrincipals`: "a list of negative match of request identities";
//   a request principal is `<iss>/<sub>` of the JWT the RequestAuthentication validated,
//   and a request without a token has none (the documented "require JWT" policy is a DENY
//   with `notRequestPrincipals: ["*"]`);
// - `Operation.hosts`: "a list of hosts as specified in the HTTP request. The match is
//   case-insensitive" (CVE-2021-39155 made it so); and since a route for a host also
//   serves `host:port`, hosts are listed with and without `:*` (Istio's guidance in its
//   1.9/1.10 upgrade notes, "Authorization policies with exact-match hosts");
// - string fields: "exact match, prefix match (`abc*`), suffix match (`*abc`) and
//   presence match (`*`)".
// And from "RequestAuthentication"
// (https://istio.io/latest/docs/reference/config/security/request_authentication/):
// "a request that contains an invalid token (expired, wrong signature, ...) is rejected"
// (401), while "a request without any token is accepted but has no authenticated
// identity".

/// The token a request carries, after the gateway's RequestAuthentication.
#[derive(Debug, Clone, Copy)]
enum Token<'a> {
    /// No token.
    None,
    /// A valid token of `iss` for `sub`.
    Valid { iss: &'a str, sub: &'a str },
    /// An expired (or otherwise invalid) token.
    Expired,
}

/// What the gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
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

fn strings(v: &Value) -> Vec<String> {
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
fn decide(policies: &[Value], host: &str, token: Token<'_>) -> Verdict {
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

// ---------------------------------------------------------------------------------------
// The rendered policy against Istio's CRD schema.

fn crd_schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/istio/authorizationpolicies.security.istio.io.yaml");
    let text = std::fs::read_to_string(&path).expect("the vendored CRD");
    let crd: Value = serde_yaml_ng::from_str(&text).expect("the CRD parses");
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let v1 = versions
        .iter()
        .find(|v| v["name"] == "v1")
        .expect("the CRD serves v1");
    assert_eq!(v1["served"], true);
    v1["schema"]["openAPIV3Schema"].clone()
}

/// The CEL rules of the AuthorizationPolicy schema, as Rust: every rule met on a present
/// value must be here, so none is silently skipped.
fn cel(rule: &str, value: &Value) -> Option<bool> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let has = |key: &str| value.get(key).is_some();
    let rule = rule.split_whitespace().collect::<Vec<_>>().join(" ");
    match rule.as_str() {
        "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1" => {
            Some(
                ["selector", "targetRef", "targetRefs"]
                    .iter()
                    .filter(|k| has(k))
                    .count()
                    <= 1,
            )
        }
        "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) && !has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true" => {
            Some(
                !(has("serviceAccounts") || has("notServiceAccounts"))
                    || !["principals", "notPrincipals", "namespaces", "notNamespaces"]
                        .iter()
                        .any(|k| has(k)),
            )
        }
        r#"!self.contains("*")"# => Some(text(value).is_some_and(|s| !s.contains('*'))),
        r#"self.all(key, !key.contains("*"))"# => Some(
            value
                .as_object()
                .is_some_and(|m| m.keys().all(|k| !k.contains('*'))),
        ),
        "self.all(key, key.size() != 0)" => Some(
            value
                .as_object()
                .is_some_and(|m| m.keys().all(|k| !k.is_empty())),
        ),
        _ => None,
    }
}

/// Validates `value` against an OpenAPI v3 structural schema as the API server does for
/// the keywords the CRD uses; every problem, with its path.
fn validate(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        for r in rules {
            let rule = r["rule"].as_str().unwrap_or_default();
            match cel(rule, value) {
                Some(true) => {}
                Some(false) => problems.push(format!("{path}: {}", r["message"])),
                None => problems.push(format!("{path}: CEL rule not modelled: {rule}")),
            }
        }
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|o| {
                let mut p = Vec::new();
                validate_combinator(o, value, &mut p);
                p.is_empty()
            })
            .count();
        if matching != 1 {
            problems.push(format!("{path}: matches {matching} of oneOf"));
        }
    }
    if schema.get("pattern").is_some() {
        problems.push(format!("{path}: pattern not modelled"));
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(map) = value.as_object() else {
                problems.push(format!("{path}: not an object"));
                return;
            };
            for key in strings(&schema["required"]) {
                if !map.contains_key(&key) {
                    problems.push(format!("{path}: lacks required {key}"));
                }
            }
            if let Some(max) = schema["maxProperties"].as_u64()
                && map.len() as u64 > max
            {
                problems.push(format!("{path}: more than {max} properties"));
            }
            let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if let Some(s) = schema["properties"].get(key) {
                    validate(s, child, &child_path, problems);
                } else if let Some(s) = schema.get("additionalProperties") {
                    validate(s, child, &child_path, problems);
                } else if !preserve {
                    // NB: the API server prunes unknown fields silently; here that is
                    // a problem, since the policy would not say what was rendered.
                    problems.push(format!("{child_path}: unknown field (would be pruned)"));
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                problems.push(format!("{path}: not an array"));
                return;
            };
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                problems.push(format!("{path}: more than {max} items"));
            }
            for (i, item) in items.iter().enumerate() {
                validate(&schema["items"], item, &format!("{path}[{i}]"), problems);
            }
        }
        Some("string") => {
            let Some(s) = value.as_str() else {
                problems.push(format!("{path}: not a string"));
                return;
            };
            if let Some(max) = schema["maxLength"].as_u64()
                && s.chars().count() as u64 > max
            {
                problems.push(format!("{path}: longer than {max}"));
            }
            if let Some(values) = schema["enum"].as_array()
                && !values.iter().any(|v| v == value)
            {
                problems.push(format!("{path}: {s:?} is not one of {values:?}"));
            }
        }
        Some("integer") if !value.is_i64() && !value.is_u64() => {
            problems.push(format!("{path}: not an integer"));
        }
        Some("boolean") if !value.is_boolean() => {
            problems.push(format!("{path}: not a boolean"));
        }
        _ => {}
    }
}

/// The `required`/`not`/`anyOf` combinators of a oneOf branch.
fn validate_combinator(schema: &Value, value: &Value, problems: &mut Vec<String>) {
    for key in strings(&schema["required"]) {
        if value.get(&key).is_none() {
            problems.push(format!("lacks {key}"));
        }
    }
    if let Some(any) = schema["anyOf"].as_array() {
        let ok = any.iter().any(|o| {
            let mut p = Vec::new();
            validate_combinator(o, value, &mut p);
            p.is_empty()
        });
        if !ok {
            problems.push("no anyOf branch".to_owned());
        }
    }
    if let Some(not) = schema.get("not") {
        let mut p = Vec::new();
        validate_combinator(not, value, &mut p);
        if p.is_empty() {
            problems.push("matches `not`".to_owned());
        }
    }
}

#[test]
fn the_rendered_policy_is_valid_against_istios_crd_schema() {
    let schema = crd_schema();
    for (user, sub) in [("alice", Some(ALICE_SUB)), ("carol", None)] {
        let objects = render_for(&owner(user, sub)).expect("renders");
        let [policy] = policies(&objects).try_into().expect("one policy");
        assert_eq!(policy["apiVersion"], "security.istio.io/v1");
        let mut problems = Vec::new();
        validate(
            &schema["properties"]["spec"],
            &policy["spec"],
            "spec",
            &mut problems,
        );
        assert!(problems.is_empty(), "{user}: {problems:#?}");
    }
    // The validator is not a pass-through: a misspelt field, a wrong action, a wildcard
    // selector are caught.
    let bad = json!({"action": "REJECT", "selector": {"matchLabels": {"istio": "*"}},
                     "rules": [{"to": [{"operation": {"host": ["x"]}}]}]});
    let mut problems = Vec::new();
    validate(&schema["properties"]["spec"], &bad, "spec", &mut problems);
    let text = problems.join("\n");
    for needle in [
        "REJECT",
        "wildcard not allowed",
        "operation.host: unknown field",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
}

// ---------------------------------------------------------------------------------------
// Hostile ids and subs.

#[test]
fn hostile_ids_and_subs_name_exactly_one_principal_or_are_refused() {
    let long = "s".repeat(300);
    let subs = [
        "o'brien\"; rm -rf /",
        "a/b/../c",
        "日本語-ユーザー",
        long.as_str(),
        "{{ 7 + 7 }} {% if true %}",
        "- x\n",
        "line\u{2028}separator",
        "a, b",
    ];
    for (i, sub) in subs.iter().enumerate() {
        let user = render::SAMPLE_USERS[i % render::SAMPLE_USERS.len()];
        let result = render_for(&owner(user, Some(sub)));
        if sub.chars().any(char::is_control) {
            let err = result.expect_err("a control character is refused");
            assert!(
                err.contains("cannot be named in an access policy"),
                "{sub:?}: {err}"
            );
            continue;
        }
        let objects = result.unwrap_or_else(|e| panic!("{sub:?}: {e}"));
        let [policy] = policies(&objects).try_into().expect("one policy");
        let rules = policy["spec"]["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 1, "{sub:?}");
        let from = rules[0]["from"].as_array().expect("from");
        assert_eq!(from.len(), 1, "{sub:?}");
        assert_eq!(
            from[0]["source"]["notRequestPrincipals"],
            json!([format!("{ISSUER}/{sub}")]),
            "{sub:?}"
        );
        // The owner gets in; a sub that merely shares a prefix does not.
        let host = policy["spec"]["rules"][0]["to"][0]["operation"]["hosts"][0]
            .as_str()
            .expect("a host")
            .to_owned();
        let all = [policy.clone()];
        assert_eq!(
            decide(&all, &host, Token::Valid { iss: ISSUER, sub }),
            Verdict::Allowed,
            "{sub:?}"
        );
        let longer = format!("{sub}x");
        assert_eq!(
            decide(
                &all,
                &host,
                Token::Valid {
                    iss: ISSUER,
                    sub: &longer
                }
            ),
            Verdict::Denied,
            "{sub:?}"
        );
    }
    for sub in ["*", "alice*", "*x", "a*b"] {
        let err = render_for(&owner("mallory", Some(sub))).expect_err("a wildcard is refused");
        assert!(err.contains("wildcard"), "{sub:?}: {err}");
    }
}

#[test]
fn the_printed_policy_names_the_host_and_the_principal_and_egress_is_restricted() {
    let cli = Cli::try_parse_from([
        "codeserver-service",
        "render",
        "--jwt-issuer",
        ISSUER,
        "--user",
        "alice",
        "--sub",
        "S-1",
        "--repo-owner",
        "devteam",
        "--repo-name",
        "api",
    ])
    .expect("render parses");
    let Some(Command::Render(args)) = cli.command else {
        panic!("not render");
    };
    let mut out = Vec::new();
    cli::render_command(&args, &mut out).expect("renders");
    let text = String::from_utf8(out).expect("UTF-8");
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d.trim_start_matches("---\n")).expect("YAML"))
        .collect();
    let policy = docs
        .iter()
        .find(|d| d["kind"] == "AuthorizationPolicy")
        .expect("a policy is printed");
    assert_eq!(
        policy["spec"]["rules"][0]["to"][0]["operation"]["hosts"][0],
        "code-alice.devplatform.local"
    );
    assert_eq!(
        policy["spec"]["rules"][0]["from"][0]["source"]["notRequestPrincipals"],
        json!([format!("{ISSUER}/S-1")])
    );
    let network = docs
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .expect("a NetworkPolicy is printed");
    assert_eq!(network["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let egress = network["spec"]["egress"].as_array().expect("egress rules");
    let text = serde_json::to_string(egress).expect("JSON");
    assert!(text.contains("\"port\":53"), "DNS: {text}");
    assert!(
        text.contains("\"app.kubernetes.io/name\":\"gitea\""),
        "Gitea: {text}"
    );
    for block in egress
        .iter()
        .flat_map(|r| r["to"].as_array().into_iter().flatten())
        .filter_map(|peer| peer.get("ipBlock"))
    {
        let except = strings(&block["except"]);
        if block["cidr"] == "0.0.0.0/0" {
            for never in ["169.254.169.254/32", "10.244.0.0/16", "10.96.0.0/12"] {
                assert!(except.contains(&never.to_owned()), "{never} not excluded");
            }
        }
    }
    // NB: egress never selects pods of the instances namespace or the service's pods.
    for peer in egress
        .iter()
        .flat_map(|r| r["to"].as_array().into_iter().flatten())
    {
        assert_ne!(
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "codeserver-instances"
        );
        if peer.get("namespaceSelector").is_some() {
            assert!(
                peer["podSelector"]["matchLabels"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty()),
                "a namespace rule names its pods: {peer}"
            );
        }
    }

    // Without JWT_ISSUER, the error says what to set.
    let cli = Cli::try_parse_from([
        "codeserver-service",
        "render",
        "--user",
        "alice",
        "--sub",
        "S-1",
        "--repo-owner",
        "devteam",
        "--repo-name",
        "api",
    ])
    .expect("render parses");
    let Some(Command::Render(args)) = cli.command else {
        panic!("not render");
    };
    let err = cli::render_command(&args, &mut Vec::new()).expect_err("no issuer");
    assert!(err.to_string().contains("JWT_ISSUER is not set"), "{err}");
}

#[test]
fn an_egress_block_inside_an_excluded_range_is_refused() {
    let templates = Templates::builtin().expect("the built-in templates load");
    let set = "networkPolicy.egress.allowed=null".to_owned();
    // A block inside the pod CIDR would open other users' pods.
    let mut values = render::build_values(
        &templates,
        &settings(),
        &owner("alice", Some(ALICE_SUB)),
        &[repo()],
        &[set],
    )
    .expect("values");
    std::sync::Arc::make_mut(&mut values.extra)["networkPolicy"]["egress"]["allowed"] =
        json!([{"cidr": "10.244.3.0/24", "ports": [{"port": 8080, "protocol": "TCP"}]}]);
    let err = templates.render(&values).expect_err("refused").to_string();
    assert!(
        err.contains("10.244.3.0/24 lies inside the excluded block 10.244.0.0/16"),
        "{err}"
    );
    // The metadata address alone, too.
    std::sync::Arc::make_mut(&mut values.extra)["networkPolicy"]["egress"]["allowed"] =
        json!([{"cidr": "169.254.169.254/32", "ports": [{"port": 80, "protocol": "TCP"}]}]);
    assert!(templates.render(&values).is_err());
}

/// Whether `selector` (a `matchLabels` map) selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn the_sync_jobs_pod_is_held_to_dns_and_gitea_and_nothing_reaches_it() {
    let templates = Templates::builtin().expect("the built-in templates load");
    let alice = owner("alice", Some(ALICE_SUB));
    let values =
        render::build_values(&templates, &settings(), &alice, &[repo()], &[]).expect("values");
    let job = templates
        .render_sync_job(
            &values,
            &render::JobValues {
                name: "sync-alice".to_owned(),
                node: None,
            },
        )
        .expect("the sync Job renders");
    let job = serde_json::to_value(&job).expect("JSON");
    let pod_labels = &job["spec"]["template"]["metadata"]["labels"];
    let objects = render_for(&alice).expect("alice renders");
    let selecting: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "NetworkPolicy")
        .filter(|o| selects(&o["spec"]["podSelector"]["matchLabels"], pod_labels))
        .collect();
    assert_eq!(
        selecting.len(),
        1,
        "one policy selects the sync pod: {pod_labels}"
    );
    let policy = selecting[0];
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(
        policy["spec"].get("ingress").is_none(),
        "no ingress: {policy}"
    );
    let peers: Vec<&Value> = policy["spec"]["egress"]
        .as_array()
        .expect("egress rules")
        .iter()
        .flat_map(|r| r["to"].as_array().into_iter().flatten())
        .collect();
    let namespaces: Vec<&Value> = peers
        .iter()
        .map(|p| &p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        .collect();
    assert_eq!(namespaces, [&json!("kube-system"), &json!("dev-platform")]);
    assert!(
        peers.iter().all(|p| p.get("ipBlock").is_none()),
        "no address blocks (the allow list is the workspace's, not the Job's): {policy}"
    );

    // Bob's sync pod is not alice's: her policy does not select it.
    let bob = render_for(&owner("bob", Some(BOB_SUB))).expect("bob renders");
    let bob_sync = bob
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "sync-bob")
        .expect("bob's sync policy");
    assert!(!selects(
        &bob_sync["spec"]["podSelector"]["matchLabels"],
        pod_labels
    ));
}
