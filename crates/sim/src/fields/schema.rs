//! The schema facts merging needs: list types, merge keys, atomic maps.

use serde_json::{Map, Value};

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Scalars merged as a set.
    Set,
    /// Elements merged by these key fields.
    Map(&'static [&'static str]),
}

/// Schema lookups for one resource.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    plural: &'static str,
}

impl Schema {
    /// The schema of a resource (by plural).
    pub fn new(plural: &'static str) -> Self {
        Schema { plural }
    }

    /// Map a dotted field path to the pod-spec form (job templates share the pod schema).
    fn normalise<'a>(&self, path: &'a str) -> (&'static str, &'a str) {
        if self.plural == "jobs"
            && let Some(rest) = path.strip_prefix("spec.template.")
        {
            return ("pods", rest);
        }
        (self.plural, path)
    }

    /// The list type at a dotted field path (`spec.containers.ports`).
    pub fn list_type(&self, path: &str) -> ListType {
        let (plural, path) = self.normalise(path);
        match path {
            "metadata.finalizers" => return ListType::Set,
            "metadata.ownerReferences" => return ListType::Map(&["uid"]),
            _ => {}
        }
        match plural {
            "pods" => pod_list_type(path),
            "services" => match path {
                "spec.ports" => ListType::Map(&["port", "protocol"]),
                "status.conditions" => ListType::Map(&["type"]),
                _ => ListType::Atomic,
            },
            "persistentvolumeclaims" => match path {
                "status.conditions" => ListType::Map(&["type"]),
                _ => ListType::Atomic,
            },
            _ => ListType::Atomic,
        }
    }

    /// Whether the map or struct at this dotted path is atomic (replaced as a whole).
    pub fn atomic_map(&self, path: &str) -> bool {
        let (plural, path) = self.normalise(path);
        match plural {
            "pods" => matches!(path, "spec.nodeSelector") || path.ends_with(".labelSelector"),
            "services" => path == "spec.selector",
            "persistentvolumeclaims" => path == "spec.selector",
            "networkpolicies" => path == "spec.podSelector",
            "jobs" => path == "spec.selector",
            _ => false,
        }
    }
}

pub(crate) fn pod_list_type(path: &str) -> ListType {
    let container_lists = [
        "spec.containers",
        "spec.initContainers",
        "spec.ephemeralContainers",
    ];
    if container_lists.contains(&path) {
        return ListType::Map(&["name"]);
    }
    for c in container_lists {
        if let Some(rest) = path.strip_prefix(c).and_then(|r| r.strip_prefix('.')) {
            return match rest {
                "ports" => ListType::Map(&["containerPort", "protocol"]),
                "env" => ListType::Map(&["name"]),
                "volumeMounts" => ListType::Map(&["mountPath"]),
                "volumeDevices" => ListType::Map(&["devicePath"]),
                "resizePolicy" => ListType::Atomic,
                "resources.claims" => ListType::Map(&["name"]),
                _ => ListType::Atomic,
            };
        }
    }
    match path {
        "spec.volumes"
        | "spec.imagePullSecrets"
        | "spec.resourceClaims"
        | "spec.schedulingGates" => ListType::Map(&["name"]),
        "spec.hostAliases" => ListType::Map(&["ip"]),
        "spec.topologySpreadConstraints" => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        "status.conditions" => ListType::Map(&["type"]),
        "status.podIPs" | "status.hostIPs" => ListType::Map(&["ip"]),
        _ => ListType::Atomic,
    }
}

/// The key of an associative-list element (sorted JSON of the key fields), with the schema
/// default `TCP` for a missing `protocol`, as the real server computes it.
pub fn element_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        match item.get(*k) {
            Some(v) if !v.is_null() => {
                m.insert((*k).to_string(), v.clone());
            }
            _ if *k == "protocol" => {
                m.insert((*k).to_string(), Value::String("TCP".into()));
            }
            _ => {}
        }
    }
    Value::Object(m).to_string()
}

/// Join a dotted schema path.
pub fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}
