//! The workspaces' CUSTOM policy against Istio's CRD schema.

use super::*;

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
fn the_workspace_policy_is_valid_against_istios_crd_schema() {
    let schema = crd_schema();
    let policy = workspace_policy(&support::manifests());
    assert_eq!(policy["apiVersion"], "security.istio.io/v1");
    let mut problems = Vec::new();
    validate(
        &schema["properties"]["spec"],
        &policy["spec"],
        "spec",
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:#?}");
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
