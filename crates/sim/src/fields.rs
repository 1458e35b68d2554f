//! Field paths and field sets in the API server's `FieldsV1` format, and the schema facts
//! (list types, merge keys, atomic maps) that decide how objects merge.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// `f:name`: a field of a struct or map.
    Field(String),
    /// `k:{"name":"x"}`: an element of an associative list, by its key fields (sorted JSON).
    Key(String),
    /// `v:"x"`: an element of a set list, by value (JSON).
    Value(String),
    /// `i:3`: an element of an atomic list by index (not produced, but parsed).
    Index(usize),
}

/// A field path from the object root.
pub type FieldPath = Vec<PathElement>;
/// A set of owned field paths.
pub type FieldSet = BTreeSet<FieldPath>;

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<PathElement> {
        let (kind, rest) = s.split_once(':')?;
        Some(match kind {
            "f" => PathElement::Field(rest.to_string()),
            "k" => PathElement::Key(rest.to_string()),
            "v" => PathElement::Value(rest.to_string()),
            "i" => PathElement::Index(rest.parse().ok()?),
            _ => return None,
        })
    }
}

/// `.spec.containers[name="x"].image`, the form used in conflict messages.
pub fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for pe in path {
        match pe {
            PathElement::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElement::Key(k) => {
                let parts: Vec<String> = match serde_json::from_str::<Map<String, Value>>(k) {
                    Ok(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    Err(_) => vec![k.clone()],
                };
                out.push('[');
                out.push_str(&parts.join(","));
                out.push(']');
            }
            PathElement::Value(v) => {
                out.push_str("[=");
                out.push_str(v);
                out.push(']');
            }
            PathElement::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Encode a field set as a `fieldsV1` object.
pub fn encode(set: &FieldSet) -> Value {
    let paths: Vec<&FieldPath> = set.iter().collect();
    encode_level(&paths, 0)
}

// NB: the set is sorted, so paths sharing a prefix are contiguous and a member node's own
// path comes right before its children.
fn encode_level(paths: &[&FieldPath], depth: usize) -> Value {
    let mut m = Map::new();
    let mut i = 0;
    while i < paths.len() {
        if paths[i].len() == depth {
            m.insert(".".to_string(), Value::Object(Map::new()));
            i += 1;
            continue;
        }
        let pe = &paths[i][depth];
        let mut j = i;
        while j < paths.len() && paths[j].len() > depth && paths[j][depth] == *pe {
            j += 1;
        }
        m.insert(pe.encode(), encode_level(&paths[i..j], depth + 1));
        i = j;
    }
    if m.len() == 1 && m.contains_key(".") {
        return Value::Object(Map::new());
    }
    Value::Object(m)
}

/// Decode a `fieldsV1` object.
pub fn decode(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    decode_into(v, &mut path, &mut out);
    out
}

fn decode_into(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Value::Object(m) = v else { return };
    for (k, child) in m {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        let Some(pe) = PathElement::decode(k) else {
            continue;
        };
        path.push(pe);
        match child {
            Value::Object(cm) if !cm.is_empty() => decode_into(child, path, out),
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

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

fn pod_list_type(path: &str) -> ListType {
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

/// The field set an applied configuration claims: every leaf, every atomic value and every
/// associative-list element, as the real server records for `Apply`.
pub fn set_from_value(v: &Value, schema: Schema) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    if let Value::Object(m) = v {
        for (k, child) in m {
            path.push(PathElement::Field(k.clone()));
            walk_apply(child, &mut path, k, schema, &mut out);
            path.pop();
        }
    }
    out
}

fn walk_apply(v: &Value, path: &mut FieldPath, spath: &str, schema: Schema, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() && !schema.atomic_map(spath) => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                walk_apply(child, path, &join(spath, k), schema, out);
                path.pop();
            }
        }
        Value::Array(items) => match schema.list_type(spath) {
            ListType::Map(keys) => {
                for item in items {
                    path.push(PathElement::Key(element_key(item, keys)));
                    out.insert(path.clone());
                    if let Value::Object(m) = item {
                        for (k, child) in m {
                            path.push(PathElement::Field(k.clone()));
                            walk_apply(child, path, &join(spath, k), schema, out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
            ListType::Set => {
                for item in items {
                    path.push(PathElement::Value(item.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListType::Atomic => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The paths an update changed (added or modified, with `.` members for new maps and list
/// elements) and the paths it removed, as the real server computes for `Update` managers.
pub fn diff(old: &Value, new: &Value, schema: Schema) -> (FieldSet, FieldSet) {
    let mut changed = FieldSet::new();
    let mut removed = FieldSet::new();
    let mut path = Vec::new();
    let empty = Map::new();
    let om = old.as_object().unwrap_or(&empty);
    let nm = new.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
    for k in keys {
        path.push(PathElement::Field(k.clone()));
        match (om.get(k), nm.get(k)) {
            // Top-level structs exist (empty) in every object: never members themselves.
            (None, Some(n)) if n.is_object() => walk_diff(
                Some(&Value::Object(Map::new())),
                Some(n),
                &mut path,
                k,
                schema,
                &mut changed,
                &mut removed,
            ),
            (o, n) => walk_diff(o, n, &mut path, k, schema, &mut changed, &mut removed),
        }
        path.pop();
    }
    (changed, removed)
}

#[allow(clippy::too_many_arguments)]
fn walk_diff(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut FieldPath,
    spath: &str,
    schema: Schema,
    changed: &mut FieldSet,
    removed: &mut FieldSet,
) {
    if old == new {
        return;
    }
    let Some(new) = new else {
        removed.insert(path.clone());
        return;
    };
    match new {
        Value::Object(nm) if !nm.is_empty() && !schema.atomic_map(spath) => {
            let om = match old {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            };
            if om.is_none() {
                changed.insert(path.clone());
            }
            let empty = Map::new();
            let omr = om.unwrap_or(&empty);
            let keys: BTreeSet<&String> = omr.keys().chain(nm.keys()).collect();
            for k in keys {
                path.push(PathElement::Field(k.clone()));
                walk_diff(
                    omr.get(k),
                    nm.get(k),
                    path,
                    &join(spath, k),
                    schema,
                    changed,
                    removed,
                );
                path.pop();
            }
        }
        Value::Array(items) => match schema.list_type(spath) {
            ListType::Map(keys) => {
                let olds: Vec<&Value> = match old {
                    Some(Value::Array(o)) => o.iter().collect(),
                    _ => Vec::new(),
                };
                for item in items {
                    let key = element_key(item, keys);
                    let before = olds.iter().find(|o| element_key(o, keys) == key).copied();
                    path.push(PathElement::Key(key));
                    if before.is_none() {
                        changed.insert(path.clone());
                    }
                    if before != Some(item) {
                        let empty = Map::new();
                        let bm = before.and_then(Value::as_object).unwrap_or(&empty);
                        let im = item.as_object().unwrap_or(&empty);
                        let fkeys: BTreeSet<&String> = bm.keys().chain(im.keys()).collect();
                        for k in fkeys {
                            path.push(PathElement::Field(k.clone()));
                            walk_diff(
                                bm.get(k),
                                im.get(k),
                                path,
                                &join(spath, k),
                                schema,
                                changed,
                                removed,
                            );
                            path.pop();
                        }
                    }
                    path.pop();
                }
                for o in olds {
                    let key = element_key(o, keys);
                    if !items.iter().any(|i| element_key(i, keys) == key) {
                        path.push(PathElement::Key(key));
                        removed.insert(path.clone());
                        path.pop();
                    }
                }
            }
            ListType::Set => {
                let olds: Vec<&Value> = match old {
                    Some(Value::Array(o)) => o.iter().collect(),
                    _ => Vec::new(),
                };
                for item in items {
                    if !olds.contains(&item) {
                        path.push(PathElement::Value(item.to_string()));
                        changed.insert(path.clone());
                        path.pop();
                    }
                }
                for o in olds {
                    if !items.contains(o) {
                        path.push(PathElement::Value(o.to_string()));
                        removed.insert(path.clone());
                        path.pop();
                    }
                }
            }
            ListType::Atomic => {
                changed.insert(path.clone());
            }
        },
        _ => {
            changed.insert(path.clone());
        }
    }
}

/// The value at a path, if present.
pub fn value_at<'a>(v: &'a Value, path: &[PathElement], schema: Schema) -> Option<&'a Value> {
    let mut cur = v;
    let mut spath = String::new();
    for pe in path {
        cur = match pe {
            PathElement::Field(f) => {
                spath = join(&spath, f);
                cur.get(f)?
            }
            PathElement::Key(k) => {
                let ListType::Map(keys) = schema.list_type(&spath) else {
                    return None;
                };
                cur.as_array()?
                    .iter()
                    .find(|item| element_key(item, keys) == *k)?
            }
            PathElement::Value(want) => cur
                .as_array()?
                .iter()
                .find(|item| item.to_string() == *want)?,
            PathElement::Index(i) => cur.as_array()?.get(*i)?,
        };
    }
    Some(cur)
}

/// Remove the value at a path (a field, a list element); no-op when absent.
pub fn remove_at(v: &mut Value, path: &[PathElement], schema: Schema) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    let mut spath = String::new();
    for pe in parent_path {
        let next = match pe {
            PathElement::Field(f) => {
                spath = join(&spath, f);
                cur.get_mut(f)
            }
            PathElement::Key(k) => {
                let ListType::Map(keys) = schema.list_type(&spath) else {
                    return;
                };
                cur.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|item| element_key(item, keys) == *k))
            }
            PathElement::Value(_) | PathElement::Index(_) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        PathElement::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        PathElement::Key(k) => {
            if let ListType::Map(keys) = schema.list_type(&spath)
                && let Some(a) = cur.as_array_mut()
            {
                a.retain(|item| element_key(item, keys) != *k);
            }
        }
        PathElement::Value(want) => {
            if let Some(a) = cur.as_array_mut() {
                let want: Value = serde_json::from_str(want).unwrap_or(Value::Null);
                a.retain(|item| *item != want);
            }
        }
        PathElement::Index(i) => {
            if let Some(a) = cur.as_array_mut()
                && *i < a.len()
            {
                a.remove(*i);
            }
        }
    }
}

/// Merge an applied configuration into a live object following the schema.
pub fn merge(live: &Value, applied: &Value, spath: &str, schema: Schema) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !schema.atomic_map(spath) => {
            let mut out = l.clone();
            for (k, av) in a {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, av, &join(spath, k), schema),
                    None => av.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match schema.list_type(spath) {
            ListType::Map(keys) => {
                let mut out = l.clone();
                for item in a {
                    let key = element_key(item, keys);
                    match out.iter().position(|x| element_key(x, keys) == key) {
                        Some(pos) => out[pos] = merge(&out[pos], item, spath, schema),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            ListType::Set => {
                let mut out = l.clone();
                for item in a {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Atomic => applied.clone(),
        },
        (_, a) => a.clone(),
    }
}

/// True when `prefix` is a strict prefix of `path`.
pub fn is_strict_prefix(prefix: &[PathElement], path: &[PathElement]) -> bool {
    path.len() > prefix.len() && path[..prefix.len()] == *prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_set_matches_the_real_format() {
        let v = json!({
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}
        });
        let set = set_from_value(&v, Schema::new("pods"));
        let enc = encode(&set);
        assert_eq!(
            enc,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                }}}
            })
        );
        assert_eq!(decode(&enc), set);
    }

    #[test]
    fn update_diff_marks_new_maps() {
        let old = json!({"metadata": {"name": "a"}});
        let new = json!({"metadata": {"name": "a", "labels": {"x": "1"}}});
        let (changed, removed) = diff(&old, &new, Schema::new("configmaps"));
        assert_eq!(
            encode(&changed),
            json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
        );
        assert!(removed.is_empty());
    }

    #[test]
    fn path_strings() {
        let p = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("ports".into()),
            PathElement::Key("{\"port\":80,\"protocol\":\"TCP\"}".into()),
            PathElement::Field("name".into()),
        ];
        assert_eq!(
            path_string(&p),
            ".spec.ports[port=80,protocol=\"TCP\"].name"
        );
    }
}
