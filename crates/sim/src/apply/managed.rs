//! `metadata.managedFields`: reading and writing the entries, and recording an Update.

use serde_json::{Map, Value, json};

use crate::fields::{self, FieldPath, FieldSet, Schema};

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
    pub(crate) fn same_slot(
        &self,
        manager: &str,
        operation: &str,
        subresource: Option<&str>,
    ) -> bool {
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

pub(crate) fn str_of(v: &Value, k: &str) -> String {
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
pub(crate) const UNOWNED_META: &[&str] = &[
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

pub(crate) fn under_any(p: &FieldPath, set: &FieldSet) -> bool {
    set.iter().any(|r| r == p || fields::is_strict_prefix(r, p))
}
