//! Checks on every rendered object: what an admin's template must get right before
//! anything reaches the cluster.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{istio, schema};
use crate::naming;

/// What an object must match: the configured namespace and the ownership labels.
pub struct Expect<'a> {
    /// The configured namespace.
    pub namespace: &'a str,
    /// Label key to required value.
    pub labels: &'a BTreeMap<&'static str, String>,
    /// Structures that already passed the schema checks.
    pub passed: &'a SchemaCache,
}

/// Fingerprints of object structures that passed the schema checks.
///
/// NB: for every kind checked here but Secret and ConfigMap, whether an object matches its
/// schema depends only on its structure: keys, nesting, and the JSON type of each scalar
/// (k8s-openapi keeps quantities, enums and int-or-string values as given). So a passing
/// result is reused for every object of the same structure; Secret and ConfigMap are always
/// checked, since their base64 fields depend on string contents.
#[derive(Default)]
pub struct SchemaCache {
    passed: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchemaCache")
    }
}

/// Structures kept before the cache starts over (bounded memory).
const MAX_STRUCTURES: usize = 4096;

impl SchemaCache {
    fn problems(&self, api_version: &str, kind: &str, obj: &Value) -> Vec<String> {
        if matches!(kind, "Secret" | "ConfigMap") {
            return typed_problems(api_version, kind, obj);
        }
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(api_version, kind), &mut hasher);
        structure(obj, &mut hasher);
        let key = std::hash::Hasher::finish(&hasher);
        let lock = || {
            self.passed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if lock().contains(&key) {
            return Vec::new();
        }
        let problems = typed_problems(api_version, kind, obj);
        if problems.is_empty() {
            let mut passed = lock();
            if passed.len() >= MAX_STRUCTURES {
                passed.clear();
            }
            passed.insert(key);
        }
        problems
    }
}

/// Feeds the structure of `v` (keys, nesting, scalar types; not string contents).
fn structure(v: &Value, h: &mut impl std::hash::Hasher) {
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(_) => h.write_u8(1),
        Value::Number(n) if n.is_u64() => h.write_u8(2),
        Value::Number(n) if n.is_i64() => h.write_u8(3),
        Value::Number(_) => h.write_u8(4),
        Value::String(_) => h.write_u8(5),
        Value::Array(items) => {
            h.write_u8(6);
            h.write_usize(items.len());
            items.iter().for_each(|i| structure(i, h));
        }
        Value::Object(map) => {
            h.write_u8(7);
            h.write_usize(map.len());
            for (k, v) in map {
                h.write(k.as_bytes());
                h.write_u8(0xff);
                structure(v, h);
            }
        }
    }
}

/// Every problem with one rendered object (empty when it is fine).
pub fn object_problems(obj: &Value, expect: &Expect<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(map) = obj.as_object() else {
        return vec!["a document must be a mapping (an object)".to_owned()];
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version.is_empty() {
        problems.push("apiVersion is missing".to_owned());
    }
    if kind.is_empty() {
        problems.push("kind is missing".to_owned());
    }
    let meta = map.get("metadata").and_then(Value::as_object);
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        problems.push("metadata.name is missing".to_owned());
    } else if !name_is_valid(kind, name) {
        problems.push(format!(
            "metadata.name {name:?} is not a valid {} name",
            if kind == "Service" {
                "DNS-1035 label (Service)"
            } else {
                "DNS-1123"
            }
        ));
    }
    let want_ns = expect.namespace;
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) if ns == want_ns => {}
        Some(ns) => problems.push(format!(
            "metadata.namespace is {ns:?}; {kind} objects must be in {want_ns:?} (the `namespace` value)"
        )),
        None => problems.push(format!(
            "metadata.namespace is missing; set it to {want_ns:?} (the `namespace` value)"
        )),
    }
    let labels = meta.and_then(|m| m.get("labels"));
    problems.extend(string_map_problems("metadata.labels", labels, true));
    for (key, want) in expect.labels {
        match labels.and_then(|l| l.get(*key)).and_then(Value::as_str) {
            Some(v) if v == want => {}
            Some(v) => problems.push(format!("label {key} is {v:?}; it must be {want:?}")),
            None => problems.push(format!(
                "ownership label {key} is missing (expected {want:?})"
            )),
        }
    }
    problems.extend(string_map_problems(
        "metadata.annotations",
        meta.and_then(|m| m.get("annotations")),
        false,
    ));
    problems.extend(expect.passed.problems(api_version, kind, obj));
    problems
}

fn name_is_valid(kind: &str, name: &str) -> bool {
    match kind {
        // NB: Service names are DNS-1035 labels: they must start with a letter.
        "Service" => {
            naming::is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
        }
        "Pod"
        | "PersistentVolumeClaim"
        | "ConfigMap"
        | "Secret"
        | "Job"
        | "NetworkPolicy"
        | "ServiceAccount"
        | "VirtualService" => naming::is_dns_subdomain(name),
        _ => naming::is_dns_subdomain(name),
    }
}

fn string_map_problems(what: &str, map: Option<&Value>, label_values: bool) -> Vec<String> {
    let Some(map) = map else { return Vec::new() };
    let Some(map) = map.as_object() else {
        return vec![format!("{what} must be a mapping of strings")];
    };
    let mut problems = Vec::new();
    for (key, value) in map {
        if !naming::is_qualified_key(key) {
            problems.push(format!("{what} key {key:?} is not a valid qualified name"));
        }
        match value.as_str() {
            Some(v) if label_values && !naming::is_label_value(v) => problems.push(format!(
                "{what}[{key}] value {v:?} is not a valid label value (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends)"
            )),
            Some(_) => {}
            None => problems.push(format!("{what}[{key}] must be a string, found {value}")),
        }
    }
    problems
}

/// Node-disk problems of a rendered Pod or Job (its pod template): every container, init
/// containers included, must set an ephemeral-storage limit, and every emptyDir a
/// sizeLimit; otherwise one workspace can fill its node's disk. Other kinds have none.
pub fn disk_problems(obj: &Value) -> Vec<String> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let spec = match kind {
        "Pod" => obj.get("spec"),
        "Job" => obj.pointer("/spec/template/spec"),
        _ => None,
    };
    let Some(spec) = spec else { return Vec::new() };
    let mut problems = Vec::new();
    for list in ["initContainers", "containers"] {
        for container in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed)");
            if container
                .pointer("/resources/limits/ephemeral-storage")
                .is_none_or(Value::is_null)
            {
                problems.push(format!(
                    "container {name:?} ({list}) has no ephemeral-storage limit (resources.limits.ephemeral-storage): it could fill its node's disk"
                ));
            }
        }
    }
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(empty_dir) = volume.get("emptyDir") else {
            continue;
        };
        if empty_dir.get("sizeLimit").is_none_or(Value::is_null) {
            let name = volume
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed)");
            problems.push(format!(
                "emptyDir volume {name:?} has no sizeLimit: it could fill its node's disk"
            ));
        }
    }
    problems
}

/// Fields the kind's schema does not have, and type errors: Istio kinds against their
/// CRD tables, kinds `k8s-openapi` knows against their types, other kinds unchecked.
fn typed_problems(api_version: &str, kind: &str, obj: &Value) -> Vec<String> {
    match istio::check_for(api_version, kind) {
        Some(crd) => istio::problems(crd, obj),
        None => schema::builtin_kind_problems(api_version, kind, obj),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::schema::required_labels;

    fn labels() -> BTreeMap<&'static str, String> {
        required_labels("code-server-u", "u", "u")
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "code-server-u", "namespace": "ns",
            "labels": {"app.kubernetes.io/managed-by": "codeserver-service", "app.kubernetes.io/name": "code-server",
                       "app.kubernetes.io/instance": "code-server-u", "devplatform.io/user": "u", "devplatform.io/owner": "u"}},
            "spec": spec})
    }

    fn problems(obj: &Value) -> Vec<String> {
        object_problems(
            obj,
            &Expect {
                namespace: "ns",
                labels: &labels(),
                passed: &SchemaCache::default(),
            },
        )
    }

    #[test]
    fn a_passing_structure_is_reused_but_a_different_one_is_checked() {
        let cache = SchemaCache::default();
        let expect = Expect {
            namespace: "ns",
            labels: &labels(),
            passed: &cache,
        };
        let good = pod(json!({"containers": [{"name": "c", "image": "i"}]}));
        assert!(object_problems(&good, &expect).is_empty());
        let other_strings = pod(json!({"containers": [{"name": "d", "image": "j"}]}));
        assert!(object_problems(&other_strings, &expect).is_empty());
        let wrong_type = pod(json!({"containers": [{"name": "c", "image": 7}]}));
        assert!(
            !object_problems(&wrong_type, &expect).is_empty(),
            "a number where a string belongs"
        );
        let misspelt = pod(json!({"containers": [{"name": "c", "imaeg": "i"}]}));
        assert!(!object_problems(&misspelt, &expect).is_empty());
    }

    #[test]
    fn containers_without_disk_limits_and_unbounded_emptydirs_are_named() {
        let limited = json!({"limits": {"ephemeral-storage": "1Gi"}});
        let obj = pod(json!({
            "initContainers": [{"name": "init", "image": "i"}],
            "containers": [{"name": "c", "image": "i", "resources": limited},
                           {"name": "side", "image": "i", "resources": {"limits": {"cpu": "1"}}}],
            "volumes": [{"name": "scratch", "emptyDir": {}},
                        {"name": "bounded", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "keys", "secret": {"secretName": "s"}}]}));
        let p = disk_problems(&obj).join("\n");
        for needle in [
            "container \"init\" (initContainers) has no ephemeral-storage limit",
            "container \"side\" (containers) has no ephemeral-storage limit",
            "emptyDir volume \"scratch\" has no sizeLimit",
        ] {
            assert!(p.contains(needle), "{needle} not in {p}");
        }
        assert_eq!(disk_problems(&obj).len(), 3, "{p}");
        let job = json!({"kind": "Job", "spec": {"template": {"spec": {
            "containers": [{"name": "sync", "resources": limited}],
            "volumes": [{"name": "m", "emptyDir": {"sizeLimit": "1Gi"}}]}}}});
        assert!(disk_problems(&job).is_empty());
        assert!(disk_problems(&json!({"kind": "Service"})).is_empty());
    }

    #[test]
    fn a_correct_object_has_no_problems() {
        assert_eq!(
            problems(&pod(json!({"containers": [{"name": "c", "image": "i"}]}))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn misspelt_and_mistyped_fields_are_caught() {
        let p = problems(&pod(json!({"contianers": [{"name": "c"}]})));
        assert!(
            p.iter()
                .any(|p| p.contains("unknown field spec.contianers")),
            "{p:?}"
        );
        let p = problems(&pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": "http"}]}]}),
        ));
        assert!(
            p.iter()
                .any(|p| p.contains("does not match the Kubernetes schema")),
            "{p:?}"
        );
    }

    #[test]
    fn ownership_namespace_and_names_are_enforced() {
        let mut obj = pod(json!({"containers": []}));
        obj["metadata"]["namespace"] = json!("other");
        obj["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app.kubernetes.io/managed-by");
        obj["metadata"]["labels"]["devplatform.io/user"] = json!("someone-else");
        obj["metadata"]["name"] = json!("Bad_Name");
        let p = problems(&obj).join("\n");
        for needle in [
            "namespace is \"other\"; Pod objects must be in \"ns\"",
            "app.kubernetes.io/managed-by is missing",
            "devplatform.io/user is \"someone-else\"",
            "Bad_Name",
        ] {
            assert!(p.contains(needle), "{needle} not in {p}");
        }
        let mut svc = pod(json!({}));
        svc["kind"] = json!("Service");
        svc["metadata"]["name"] = json!("1abc");
        assert!(problems(&svc).iter().any(|p| p.contains("DNS-1035")));
    }

    #[test]
    fn missing_identity_fields_and_bad_labels_are_reported() {
        let p = problems(&json!({"metadata": {"labels": {"x": "not ok!"}}})).join("\n");
        for needle in [
            "apiVersion is missing",
            "kind is missing",
            "metadata.name is missing",
            "not a valid label value",
        ] {
            assert!(p.contains(needle), "{needle} not in {p}");
        }
        assert_eq!(problems(&json!([1])).len(), 1);
    }
}
