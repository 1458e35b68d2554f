//! The Istio kinds the service renders or deploys, against the fields their CRDs define.
//!
//! `k8s-openapi` has no Istio types, and the API server prunes unknown fields of custom
//! resources silently, so a misspelt `gateway:` in a VirtualService template would
//! render, apply and route nothing. These tables hold the part of the upstream schema
//! (istio/api `customresourcedefinitions.gen.yaml`, version `v1`) that the project uses
//! or is likely to use; a field outside them is a render problem. Add a path when you
//! start using a field, after checking it in the CRD.
//!
//! Paths are relative to `spec`: `a.b` is key `b` of object `a`, `[]` an element of a
//! list, and a trailing `.*` a free-form map (labels, header names).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::schema::unknown_fields;

/// The allowed shape of one Istio kind.
pub struct CrdCheck {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// Every path that may appear under `spec`.
    pub allowed: &'static [&'static str],
    /// Objects (by path) and the keys each must have, from the CRD's `required`.
    pub required: &'static [(&'static str, &'static [&'static str])],
    /// String fields (by path) and their values, from the CRD's `enum`.
    pub enums: &'static [(&'static str, &'static [&'static str])],
}

pub const GATEWAY: CrdCheck = CrdCheck {
    api_version: "networking.istio.io/v1",
    kind: "Gateway",
    allowed: &[
        "selector.*",
        "servers[].name",
        "servers[].bind",
        "servers[].hosts",
        "servers[].port.number",
        "servers[].port.name",
        "servers[].port.protocol",
        "servers[].port.targetPort",
        "servers[].tls.mode",
        "servers[].tls.httpsRedirect",
        "servers[].tls.credentialName",
        "servers[].tls.credentialNames",
        "servers[].tls.minProtocolVersion",
        "servers[].tls.maxProtocolVersion",
        "servers[].tls.cipherSuites",
        "servers[].tls.subjectAltNames",
    ],
    required: &[
        ("servers[]", &["port", "hosts"]),
        ("servers[].port", &["number", "protocol", "name"]),
    ],
    enums: &[
        (
            "servers[].port.protocol",
            &["HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"],
        ),
        (
            "servers[].tls.mode",
            &[
                "PASSTHROUGH",
                "SIMPLE",
                "MUTUAL",
                "AUTO_PASSTHROUGH",
                "ISTIO_MUTUAL",
                "OPTIONAL_MUTUAL",
            ],
        ),
        ("servers[].tls.minProtocolVersion", TLS_VERSIONS),
        ("servers[].tls.maxProtocolVersion", TLS_VERSIONS),
    ],
};

const TLS_VERSIONS: &[&str] = &["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"];

pub const VIRTUAL_SERVICE: CrdCheck = CrdCheck {
    api_version: "networking.istio.io/v1",
    kind: "VirtualService",
    allowed: &[
        "hosts",
        "gateways",
        "exportTo",
        "http[].name",
        "http[].match[].name",
        "http[].match[].uri.exact",
        "http[].match[].uri.prefix",
        "http[].match[].uri.regex",
        "http[].match[].authority.exact",
        "http[].match[].authority.prefix",
        "http[].match[].authority.regex",
        "http[].match[].method.exact",
        "http[].match[].method.prefix",
        "http[].match[].method.regex",
        "http[].match[].headers.*",
        "http[].match[].queryParams.*",
        "http[].match[].ignoreUriCase",
        "http[].match[].port",
        "http[].match[].gateways",
        "http[].route[].destination.host",
        "http[].route[].destination.subset",
        "http[].route[].destination.port.number",
        "http[].route[].weight",
        "http[].route[].headers.request.set.*",
        "http[].route[].headers.request.add.*",
        "http[].route[].headers.request.remove",
        "http[].route[].headers.response.set.*",
        "http[].route[].headers.response.add.*",
        "http[].route[].headers.response.remove",
        "http[].headers.request.set.*",
        "http[].headers.request.add.*",
        "http[].headers.request.remove",
        "http[].headers.response.set.*",
        "http[].headers.response.add.*",
        "http[].headers.response.remove",
        "http[].rewrite.uri",
        "http[].rewrite.authority",
        "http[].redirect.uri",
        "http[].redirect.authority",
        "http[].redirect.redirectCode",
        "http[].timeout",
        "http[].retries.attempts",
        "http[].retries.perTryTimeout",
        "http[].retries.retryOn",
    ],
    required: &[
        ("http[].route[]", &["destination"]),
        ("http[].route[].destination", &["host"]),
    ],
    enums: &[],
};

pub const REQUEST_AUTHENTICATION: CrdCheck = CrdCheck {
    api_version: "security.istio.io/v1",
    kind: "RequestAuthentication",
    allowed: &[
        "selector.matchLabels.*",
        "targetRefs[].group",
        "targetRefs[].kind",
        "targetRefs[].name",
        "jwtRules[].issuer",
        "jwtRules[].audiences",
        "jwtRules[].jwksUri",
        "jwtRules[].jwks",
        "jwtRules[].fromHeaders[].name",
        "jwtRules[].fromHeaders[].prefix",
        "jwtRules[].fromParams",
        "jwtRules[].fromCookies",
        "jwtRules[].forwardOriginalToken",
        "jwtRules[].outputPayloadToHeader",
        "jwtRules[].outputClaimToHeaders[].header",
        "jwtRules[].outputClaimToHeaders[].claim",
        "jwtRules[].timeout",
    ],
    required: &[
        ("jwtRules[]", &["issuer"]),
        ("jwtRules[].fromHeaders[]", &["name"]),
        ("jwtRules[].outputClaimToHeaders[]", &["header", "claim"]),
        ("targetRefs[]", &["kind", "name"]),
    ],
    enums: &[],
};

pub const AUTHORIZATION_POLICY: CrdCheck = CrdCheck {
    api_version: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    allowed: &[
        "selector.matchLabels.*",
        "targetRefs[].group",
        "targetRefs[].kind",
        "targetRefs[].name",
        "action",
        "provider.name",
        "rules[].from[].source.principals",
        "rules[].from[].source.notPrincipals",
        "rules[].from[].source.requestPrincipals",
        "rules[].from[].source.notRequestPrincipals",
        "rules[].from[].source.namespaces",
        "rules[].from[].source.notNamespaces",
        "rules[].from[].source.serviceAccounts",
        "rules[].from[].source.notServiceAccounts",
        "rules[].from[].source.ipBlocks",
        "rules[].from[].source.notIpBlocks",
        "rules[].from[].source.remoteIpBlocks",
        "rules[].from[].source.notRemoteIpBlocks",
        "rules[].to[].operation.hosts",
        "rules[].to[].operation.notHosts",
        "rules[].to[].operation.ports",
        "rules[].to[].operation.notPorts",
        "rules[].to[].operation.methods",
        "rules[].to[].operation.notMethods",
        "rules[].to[].operation.paths",
        "rules[].to[].operation.notPaths",
        "rules[].when[].key",
        "rules[].when[].values",
        "rules[].when[].notValues",
    ],
    required: &[
        ("rules[].when[]", &["key"]),
        ("targetRefs[]", &["kind", "name"]),
    ],
    enums: &[("action", &["ALLOW", "DENY", "AUDIT", "CUSTOM"])],
};

/// Every Istio kind the project checks.
pub const CHECKS: &[&CrdCheck] = &[
    &GATEWAY,
    &VIRTUAL_SERVICE,
    &REQUEST_AUTHENTICATION,
    &AUTHORIZATION_POLICY,
];

/// The check for `api_version`/`kind`, if the project has one. The VirtualService is
/// served as v1 and v1beta1 with one schema; either is checked.
pub fn check_for(api_version: &str, kind: &str) -> Option<&'static CrdCheck> {
    let api_version = match (api_version, kind) {
        ("networking.istio.io/v1beta1", "VirtualService") => "networking.istio.io/v1",
        _ => api_version,
    };
    CHECKS
        .iter()
        .find(|c| c.api_version == api_version && c.kind == kind)
        .copied()
}

/// Every problem of one document against `crd`, empty when it is valid.
pub fn problems(crd: &CrdCheck, value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = value.as_object() else {
        return vec!["not a mapping".to_owned()];
    };
    for key in object.keys() {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "spec") {
            problems.push(format!("unknown top-level field `{key}`"));
        }
    }
    match object.get("metadata") {
        Some(metadata) => {
            problems.extend(
                unknown_fields::<ObjectMeta>(metadata)
                    .into_iter()
                    .map(|p| format!("metadata {p}")),
            );
        }
        None => problems.push("no metadata".to_owned()),
    }
    match object.get("spec") {
        Some(spec @ Value::Object(_)) => walk(crd, "", spec, &mut problems),
        Some(_) => problems.push("spec is not a mapping".to_owned()),
        None => problems.push("no spec".to_owned()),
    }
    problems
}

fn walk(crd: &CrdCheck, path: &str, value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some((_, keys)) = crd.required.iter().find(|(p, _)| *p == path) {
                for key in keys.iter().filter(|key| !map.contains_key(**key)) {
                    problems.push(format!("spec.{path} lacks required field `{key}`"));
                }
            }
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if is_free_form(crd, &child_path) {
                    continue;
                }
                if !is_allowed(crd, &child_path) {
                    problems.push(format!("unknown field spec.{child_path}"));
                    continue;
                }
                walk(crd, &child_path, child, problems);
            }
        }
        Value::Array(items) => {
            let item_path = format!("{path}[]");
            for item in items {
                walk(crd, &item_path, item, problems);
            }
        }
        Value::String(text) => {
            if let Some((_, values)) = crd.enums.iter().find(|(p, _)| *p == path)
                && !values.contains(&text.as_str())
            {
                problems.push(format!("spec.{path}: `{text}` is not one of {values:?}"));
            }
        }
        _ => {}
    }
}

/// A path is allowed when it is, or leads to, an allowed path.
fn is_allowed(crd: &CrdCheck, path: &str) -> bool {
    crd.allowed.iter().any(|allowed| {
        *allowed == path
            || allowed
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
    })
}

/// A path is free-form below a `.*` entry: the keys of a map (labels, header names).
fn is_free_form(crd: &CrdCheck, path: &str) -> bool {
    crd.allowed.iter().any(|allowed| {
        allowed.strip_suffix(".*").is_some_and(|map| {
            path.strip_prefix(map)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn misspelt_misplaced_and_invalid_fields_are_caught() {
        let policy = json!({
            "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "x", "lables": {}},
            "spec": {"action": "REJECT", "rules": [{"to": [{"operation": {"path": ["/graphql"]}}],
                                                     "when": [{"values": ["a"]}]}]}
        });
        let crd = check_for("security.istio.io/v1", "AuthorizationPolicy").unwrap();
        let found = problems(crd, &policy).join("\n");
        for needle in [
            "unknown field spec.rules[].to[].operation.path",
            "`REJECT` is not one of",
            "spec.rules[].when[] lacks required field `key`",
            "metadata unknown field lables",
        ] {
            assert!(found.contains(needle), "{needle} not in {found}");
        }
    }

    #[test]
    fn free_form_maps_accept_any_key_but_only_there() {
        let route = json!({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "x"},
            "spec": {"hosts": ["a"], "gateway": ["g"],
                     "http": [{"match": [{"headers": {"x-any": {"exact": "1"}}}],
                               "route": [{"destination": {"host": "a", "port": {"numbr": 1}}}]}]}
        });
        let crd = check_for("networking.istio.io/v1beta1", "VirtualService").unwrap();
        assert_eq!(
            problems(crd, &route),
            vec![
                "unknown field spec.gateway".to_owned(),
                "unknown field spec.http[].route[].destination.port.numbr".to_owned(),
            ]
        );
        assert!(check_for("security.istio.io/v1", "PeerAuthentication").is_none());
    }
}
