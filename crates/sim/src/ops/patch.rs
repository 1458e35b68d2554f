//! PATCH in its four content types: server-side apply, JSON merge, strategic merge, JSON patch.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::apply::{self, ApplyRequest};
use crate::fields::{self, Schema};
use crate::hooks::{self};
use crate::meta::{name_of, now};
use crate::resources::{ResId, ResourceDef, def};
use crate::status::ApiError;
use crate::{Shared, lock};

/// patch
pub fn patch(
    sh: &Arc<Shared>,
    res: ResId,
    ns: &str,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let d = def(res);
    let schema = Schema::new(d.plural);
    let mut store = lock(&sh.store);
    check_namespace(&store, d, ns, (kind == PatchKind::Apply).then_some(name))?;
    let old = store.get(res, ns, name).map(|s| s.value());
    let (new, managed_done) = match kind {
        PatchKind::Apply => {
            let Some(manager) = p.field_manager.as_deref().filter(|m| !m.is_empty()) else {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply content type require a fieldManager",
                ));
            };
            let applied: Value = serde_yaml_ng::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            let mut applied = yaml_to_json(applied);
            // NB: compare like with like: live quantities are canonical (500m, 1Gi).
            crate::quantity::canonicalise(d.plural, &mut applied);
            if !applied.is_object() {
                return Err(ApiError::bad_request(
                    "the applied configuration must be an object",
                ));
            }
            check_applied(d, &applied, name, &p.version)?;
            if applied
                .pointer("/metadata/managedFields")
                .is_some_and(|m| !m.is_null())
            {
                return Err(ApiError::bad_request("metadata.managedFields must be nil"));
            }
            if let Some(old) = &old {
                check_preconditions(d, name, old, &applied)?;
            }
            let mut skeleton = json!({
                "apiVersion": d.api_version(d.storage_version()),
                "kind": d.kind,
                "metadata": {"name": name},
            });
            if d.namespaced {
                skeleton["metadata"]["namespace"] = json!(ns);
            }
            let now = now();
            let merged = apply::server_side_apply(ApplyRequest {
                live: old.as_ref(),
                skeleton,
                applied: &applied,
                schema,
                manager,
                force: p.force,
                api_version: &d.api_version(&p.version),
                now: &now,
                subresource: p.subresource.as_deref(),
                has_status: d.subresources.contains(&"status"),
            })?;
            (merged, true)
        }
        _ => {
            let Some(old) = &old else {
                return Err(ApiError::not_found(d, name));
            };
            let mut doc = old.clone();
            match kind {
                PatchKind::Merge | PatchKind::Strategic => {
                    let patch: Value = serde_json::from_slice(body)
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    if !patch.is_object() {
                        return Err(ApiError::bad_request("the patch must be a JSON object"));
                    }
                    check_preconditions(d, name, old, &patch)?;
                    if kind == PatchKind::Merge {
                        json_patch::merge(&mut doc, &patch);
                    } else {
                        strategic_merge(&mut doc, &patch, "", schema);
                    }
                }
                _ => {
                    let ops: json_patch::Patch = serde_json::from_slice(body)
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    json_patch::patch(&mut doc, &ops).map_err(|e| {
                        let mut err = ApiError::bad_request(format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ));
                        err.code = 422;
                        err.reason = "Invalid";
                        err
                    })?;
                }
            }
            (doc, false)
        }
    };
    let creating = old.is_none();
    let (out, hooks) = finish_write(
        sh,
        &mut store,
        res,
        ns,
        name,
        old.as_ref(),
        new,
        p,
        !managed_done,
    )?;
    drop(store);
    if creating {
        tracing::debug!(resource = d.plural, name, "created by apply");
    }
    hooks::run(sh, hooks);
    Ok(out)
}

pub(crate) fn check_applied(
    d: &ResourceDef,
    applied: &Value,
    name: &str,
    version: &str,
) -> Result<(), ApiError> {
    if applied.get("apiVersion").is_none() || applied.get("kind").is_none() {
        return Err(ApiError::bad_request(
            "invalid object type: apiVersion and kind must be set in an applied configuration",
        ));
    }
    check_type(d, applied, version)?;
    let n = name_of(applied);
    if n != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// Convert YAML-decoded JSON (numbers may come as floats) back to the JSON the client meant.
pub(crate) fn yaml_to_json(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(yaml_to_json).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, yaml_to_json(v))).collect())
        }
        other => other,
    }
}

/// A strategic merge patch: maps merge, `null` deletes, lists with merge keys merge by key
/// (`$patch: delete` removes an element), other lists are replaced.
pub(crate) fn strategic_merge(doc: &mut Value, patch: &Value, spath: &str, schema: Schema) {
    let Value::Object(pm) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = json!({});
    }
    let Some(dm) = doc.as_object_mut() else {
        return;
    };
    for (k, pv) in pm {
        if k.starts_with('$') {
            continue;
        }
        let child_path = fields::join(spath, k);
        match pv {
            Value::Null => {
                dm.remove(k);
            }
            Value::Object(_) if !schema.atomic_map(&child_path) => {
                let entry = dm.entry(k.clone()).or_insert_with(|| json!({}));
                strategic_merge(entry, pv, &child_path, schema);
            }
            Value::Array(items) => match schema.list_type(&child_path) {
                fields::ListType::Map(keys) => {
                    let entry = dm.entry(k.clone()).or_insert_with(|| json!([]));
                    if !entry.is_array() {
                        *entry = json!([]);
                    }
                    if let Some(list) = entry.as_array_mut() {
                        for item in items {
                            let key = fields::element_key(item, keys);
                            let pos = list
                                .iter()
                                .position(|x| fields::element_key(x, keys) == key);
                            let delete =
                                item.get("$patch").and_then(Value::as_str) == Some("delete");
                            match (pos, delete) {
                                (Some(i), true) => {
                                    list.remove(i);
                                }
                                (None, true) => {}
                                (Some(i), false) => {
                                    strategic_merge(&mut list[i], item, &child_path, schema)
                                }
                                (None, false) => {
                                    let mut fresh = json!({});
                                    strategic_merge(&mut fresh, item, &child_path, schema);
                                    list.push(fresh);
                                }
                            }
                        }
                    }
                }
                _ => {
                    dm.insert(k.clone(), pv.clone());
                }
            },
            _ => {
                dm.insert(k.clone(), pv.clone());
            }
        }
    }
}
