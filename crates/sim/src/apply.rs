//! Server-side apply and `managedFields` bookkeeping for every write.

use serde_json::{Map, Value, json};

use super::fields::{self, FieldPath, FieldSet, Schema};
use super::status::{ApiError, Cause};

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// apiVersion the manager wrote with.
    pub api_version: String,
    /// RFC 3339 time of the last change.
    pub time: String,
    /// `status` for writes through the status subresource.
    pub subresource: Option<String>,
    /// Owned fields.
    pub set: FieldSet,
}

impl ManagedEntry {
    fn same_slot(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

/// Read the entries of an object.
pub fn parse_managed(obj: &Value) -> Vec<ManagedEntry> {
    let Some(arr) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    arr.iter()
        .map(|e| ManagedEntry {
            manager: str_of(e, "manager"),
            operation: str_of(e, "operation"),
            api_version: str_of(e, "apiVersion"),
            time: str_of(e, "time"),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .map(str::to_string),
            set: e.get("fieldsV1").map(fields::decode).unwrap_or_default(),
        })
        .collect()
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Write the entries into an object (entries that own nothing are dropped, as the real
/// server does).
pub fn store_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let arr: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut m = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::encode(&e.set),
            });
            if let Some(s) = &e.subresource {
                m["subresource"] = json!(s);
            }
            m
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if arr.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(arr));
        }
    }
}

/// Metadata fields that are never owned by a manager.
const UNOWNED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The part of an object field ownership is tracked on: no apiVersion/kind, no identity
/// metadata, and only the half (main or status) the endpoint may change.
pub fn tracked_part(v: &Value, subresource: Option<&str>, has_status: bool) -> Value {
    let mut out = Map::new();
    let Value::Object(m) = v else {
        return Value::Object(out);
    };
    for (k, child) in m {
        let keep = match (k.as_str(), subresource) {
            ("apiVersion" | "kind", _) => false,
            ("status", Some("status")) => true,
            (_, Some("status")) => false,
            ("status", _) => !has_status,
            _ => true,
        };
        if !keep {
            continue;
        }
        if k == "metadata" {
            // NB: never deep-clone managedFields: they are the largest part of many objects.
            if let Value::Object(meta) = child {
                let kept: Map<String, Value> = meta
                    .iter()
                    .filter(|(mk, _)| !UNOWNED_META.contains(&mk.as_str()))
                    .map(|(mk, mv)| (mk.clone(), mv.clone()))
                    .collect();
                if !kept.is_empty() {
                    out.insert(k.clone(), Value::Object(kept));
                }
            }
            continue;
        }
        out.insert(k.clone(), child.clone());
    }
    Value::Object(out)
}

/// Record an `Update` (create, PUT, merge/JSON patch) by `manager`: it takes ownership of
/// every field it added or changed; removed fields leave every set.
#[allow(clippy::too_many_arguments)]
pub fn record_update(
    entries: &mut Vec<ManagedEntry>,
    old: &Value,
    new: &Value,
    schema: Schema,
    manager: &str,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
    has_status: bool,
) {
    let (changed, removed) = fields::diff(
        &tracked_part(old, subresource, has_status),
        &tracked_part(new, subresource, has_status),
        schema,
    );
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.set
            .retain(|p| !changed.contains(p) && !under_any(p, &removed));
    }
    match entries
        .iter_mut()
        .find(|e| e.same_slot(manager, "Update", subresource))
    {
        Some(e) => {
            e.set.extend(changed);
            e.time = now.to_string();
            e.api_version = api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            subresource: subresource.map(str::to_string),
            set: changed,
        }),
    }
    entries.retain(|e| !e.set.is_empty());
}

fn under_any(p: &FieldPath, set: &FieldSet) -> bool {
    set.iter().any(|r| r == p || fields::is_strict_prefix(r, p))
}

/// What one apply asks for.
pub struct ApplyRequest<'a> {
    /// The live object (without changes), if it exists.
    pub live: Option<&'a Value>,
    /// The object the apply starts from when creating (apiVersion, kind, name, namespace).
    pub skeleton: Value,
    /// The applied configuration.
    pub applied: &'a Value,
    /// Schema of the resource.
    pub schema: Schema,
    /// fieldManager.
    pub manager: &'a str,
    /// force=true.
    pub force: bool,
    /// apiVersion of the request.
    pub api_version: &'a str,
    /// Current time (RFC 3339).
    pub now: &'a str,
    /// `status` for the status subresource.
    pub subresource: Option<&'a str>,
    /// Whether the resource has a status subresource.
    pub has_status: bool,
}

/// Server-side apply: merge, detect conflicts with other managers, move ownership on force,
/// remove fields the manager stopped applying that nobody else owns. Returns the new object
/// (with `managedFields` written).
pub fn server_side_apply(req: ApplyRequest<'_>) -> Result<Value, ApiError> {
    let schema = req.schema;
    let sub = req.subresource;
    let base = req.live.cloned().unwrap_or(req.skeleton);
    let mut entries = parse_managed(&base);
    let config = tracked_part(req.applied, sub, req.has_status);
    let applied_set = fields::set_from_value(&config, schema);

    let mut merged = fields::merge(&base, &config, "", schema);
    if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let before = tracked_part(&base, sub, req.has_status);
    let after_merge = tracked_part(&merged, sub, req.has_status);

    // Conflicts: a field another manager owns whose value this apply changes.
    let mut conflicts: Vec<(String, FieldPath)> = Vec::new();
    for e in &entries {
        if e.same_slot(req.manager, "Apply", sub) {
            continue;
        }
        for p in e.set.intersection(&applied_set) {
            let has_children = applied_set
                .range(p.clone()..)
                .nth(1)
                .is_some_and(|q| fields::is_strict_prefix(p, q));
            if has_children {
                continue;
            }
            if fields::value_at(&before, p, schema) != fields::value_at(&after_merge, p, schema) {
                conflicts.push((print_manager(e), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            return Err(conflict_error(&conflicts));
        }
        for e in entries.iter_mut() {
            if e.same_slot(req.manager, "Apply", sub) {
                continue;
            }
            e.set
                .retain(|p| !applied_set.contains(p) || !conflicts.iter().any(|(_, c)| c == p));
        }
    }

    // Fields this manager applied before but no longer applies.
    let previous = entries
        .iter()
        .find(|e| e.same_slot(req.manager, "Apply", sub))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !e.same_slot(req.manager, "Apply", sub))
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    let mut to_remove: Vec<&FieldPath> = previous
        .iter()
        .filter(|p| !applied_set.contains(*p))
        .filter(|p| !applied_set.iter().any(|q| fields::is_strict_prefix(p, q)))
        .filter(|p| {
            !others
                .iter()
                .any(|q| q == *p || fields::is_strict_prefix(p, q))
        })
        .collect();
    // NB: shallowest first: removing a list element's key fields before the element would
    // change its identity and leave a husk behind.
    to_remove.sort_by_key(|p| p.len());
    for p in &to_remove {
        fields::remove_at(&mut merged, p, schema);
    }
    prune_empty_parents(&mut merged, &to_remove, schema);

    let applied_part = !applied_set.is_empty() || !previous.is_empty();
    match entries
        .iter_mut()
        .find(|e| e.same_slot(req.manager, "Apply", sub))
    {
        Some(e) => {
            if e.set != applied_set {
                e.time = req.now.to_string();
            }
            e.set = applied_set;
            e.api_version = req.api_version.to_string();
        }
        None if applied_part => entries.push(ManagedEntry {
            manager: req.manager.to_string(),
            operation: "Apply".into(),
            api_version: req.api_version.to_string(),
            time: req.now.to_string(),
            subresource: sub.map(str::to_string),
            set: applied_set,
        }),
        None => {}
    }
    entries.retain(|e| !e.set.is_empty());
    store_managed(&mut merged, &entries);
    Ok(merged)
}

/// Go map fields: emptied, they disappear from the stored object (`omitempty`), while an
/// emptied struct (`securityContext: {}`) stays.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "nodeSelector",
    "selector",
    "matchLabels",
    "requests",
    "limits",
];

/// After removing fields, drop the containers they emptied, as decoding into the typed
/// object (`omitempty`) does on the real server: empty lists always, empty maps for Go map
/// fields.
fn prune_empty_parents(merged: &mut Value, removed: &[&FieldPath], schema: Schema) {
    for p in removed {
        let Some((_, parent)) = p.split_last() else {
            continue;
        };
        let Some(fields::PathElement::Field(name)) = parent.last() else {
            continue;
        };
        let empty = match fields::value_at(merged, parent, schema) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(m)) => m.is_empty() && MAP_FIELDS.contains(&name.as_str()),
            _ => false,
        };
        if empty {
            fields::remove_at(merged, parent, schema);
        }
    }
}

/// The manager as the real server prints it in conflict messages.
fn print_manager(e: &ManagedEntry) -> String {
    let mut s = format!("{:?}", e.manager);
    if let Some(sub) = &e.subresource {
        s = format!("{s} with subresource {sub:?}");
    }
    if e.operation == "Update" {
        s = format!("{s} using {}", e.api_version);
    }
    s
}

fn conflict_error(conflicts: &[(String, FieldPath)]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(m, p)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {m}"),
            field: fields::path_string(p),
        })
        .collect();
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].0,
            fields::path_string(&conflicts[0].1)
        )
    } else {
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for (_, p) in conflicts.iter().filter(|(cm, _)| cm == m) {
                lines.push(format!("- {}", fields::path_string(p)));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(message, causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        server_side_apply(ApplyRequest {
            live,
            skeleton: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}}),
            applied,
            schema: Schema::new("configmaps"),
            manager,
            force,
            api_version: "v1",
            now: "2026-01-01T00:00:00Z",
            subresource: None,
            has_status: false,
        })
    }

    #[test]
    fn ownership_conflict_force_and_removal() {
        let a1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1", "y": "1"}});
        let o1 = apply(None, &a1, "one", false).unwrap();
        assert_eq!(o1["data"], json!({"x": "1", "y": "1"}));
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "2"}});
        let err = apply(Some(&o1), &b, "two", false).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"one\": .data.x"
        );
        assert_eq!(err.causes[0].reason, "FieldManagerConflict");
        let o2 = apply(Some(&o1), &b, "two", true).unwrap();
        assert_eq!(o2["data"]["x"], "2");
        // "one" stops applying y: nobody else owns it, so it goes.
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let o3 = apply(Some(&o2), &a2, "one", false).unwrap();
        assert_eq!(o3["data"], json!({"x": "2"}));
        let managers: Vec<&str> = o3["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, vec!["two"]);
    }

    #[test]
    fn same_value_is_shared_not_conflicting() {
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}});
        let o1 = apply(None, &a, "one", false).unwrap();
        let o2 = apply(Some(&o1), &a, "two", false).unwrap();
        assert_eq!(o2["metadata"]["managedFields"].as_array().unwrap().len(), 2);
    }
}
