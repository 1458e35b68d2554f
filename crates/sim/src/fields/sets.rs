//! The field sets of an applied configuration and of an update's changes.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::*;

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

pub(crate) fn walk_apply(
    v: &Value,
    path: &mut FieldPath,
    spath: &str,
    schema: Schema,
    out: &mut FieldSet,
) {
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
pub(crate) fn walk_diff(
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
