//! Server-side apply: merging, conflicts between managers, and removing fields a manager
//! stopped applying.

use serde_json::Value;

use crate::fields::{self, FieldPath, FieldSet, Schema};
use crate::status::{ApiError, Cause};

use super::*;

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
pub(crate) const MAP_FIELDS: &[&str] = &[
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
pub(crate) fn prune_empty_parents(merged: &mut Value, removed: &[&FieldPath], schema: Schema) {
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
pub(crate) fn print_manager(e: &ManagedEntry) -> String {
    let mut s = format!("{:?}", e.manager);
    if let Some(sub) = &e.subresource {
        s = format!("{s} with subresource {sub:?}");
    }
    if e.operation == "Update" {
        s = format!("{s} using {}", e.api_version);
    }
    s
}

pub(crate) fn conflict_error(conflicts: &[(String, FieldPath)]) -> ApiError {
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
    use serde_json::json;

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
