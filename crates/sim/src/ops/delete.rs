//! delete with grace periods, preconditions and propagation, and owner references.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::hooks::{self, Hook};
use crate::meta::uid_of;
use crate::resources::{ResId, def, ids};
use crate::status::ApiError;
use crate::store::Store;
use crate::{Shared, admission, lock};

/// What a delete answered.
pub struct Deleted {
    /// The object (pending or last state).
    pub object: Value,
    /// Whether it was removed now (vs. pending finalizers or grace).
    pub removed: bool,
}

/// delete
pub fn delete(
    sh: &Arc<Shared>,
    res: ResId,
    ns: &str,
    name: &str,
    dp: &DeleteParams,
) -> Result<Deleted, ApiError> {
    let d = def(res);
    let mut store = lock(&sh.store);
    let Some(mut obj) = store.get(res, ns, name).map(|s| s.value()) else {
        check_namespace(&store, d, ns, None)?;
        return Err(ApiError::not_found(d, name));
    };
    let uid = uid_of(&obj);
    if let Some(want) = &dp.uid
        && *want != uid
    {
        return Err(ApiError::conflict(
            d,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    if let Some(want) = &dp.resource_version {
        let have = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if want != have {
            return Err(ApiError::conflict(
                d,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"
                ),
            ));
        }
    }
    let orphan = match dp.propagation.as_deref() {
        Some("Orphan") => true,
        Some(_) => false,
        // NB: batch/v1 Jobs orphan their pods by default when deleted through the API.
        None => res == ids::JOBS,
    };
    // Foreground: the owner waits (finalizer foregroundDeletion) until its dependents are gone.
    let foreground = dp.propagation.as_deref() == Some("Foreground")
        && obj.pointer("/metadata/deletionTimestamp").is_none()
        && !dependents(&store, ns, &uid).is_empty();
    if foreground {
        let meta = obj.get_mut("metadata").and_then(Value::as_object_mut);
        if let Some(m) = meta {
            let f = m.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(a) = f.as_array_mut() {
                a.push(json!("foregroundDeletion"));
            }
        }
    }
    let finalizers: Vec<Value> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let already = obj.pointer("/metadata/deletionTimestamp").is_some();
    let grace = if res == ids::PODS {
        admission::pod_grace(&obj, dp.grace)
    } else {
        0
    };
    let mut hooks = Vec::new();
    let result = if res == ids::NAMESPACES || !finalizers.is_empty() || grace > 0 {
        // Graceful: mark and leave removal to the lifecycle or to finalizer removal.
        if !already || (res == ids::PODS && grace < current_grace(&obj)) {
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("deletionTimestamp".into(), json!(now_plus(grace)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if res == ids::NAMESPACES {
                obj["status"]["phase"] = json!("Terminating");
            }
            if dp.dry_run {
                return Ok(Deleted {
                    object: obj,
                    removed: false,
                });
            }
            let stored = store.put(res, ns, name, obj);
            hooks.push(Hook::Deleting {
                res,
                ns: ns.to_string(),
                name: name.to_string(),
                uid: uid.clone(),
                grace,
                orphan,
                foreground,
            });
            Deleted {
                object: stored,
                removed: false,
            }
        } else {
            Deleted {
                object: obj,
                removed: false,
            }
        }
    } else {
        if dp.dry_run {
            return Ok(Deleted {
                object: obj,
                removed: true,
            });
        }
        let last = store.remove(res, ns, name).unwrap_or(obj);
        hooks.push(Hook::Removed {
            res,
            ns: ns.to_string(),
            name: name.to_string(),
            uid,
            orphan,
        });
        Deleted {
            object: last,
            removed: true,
        }
    };
    drop(store);
    hooks::run(sh, hooks);
    Ok(result)
}

fn current_grace(obj: &Value) -> i64 {
    obj.pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX)
}

/// Objects in a namespace whose owner references include `uid`.
pub(crate) fn dependents(store: &Store, ns: &str, uid: &str) -> Vec<(ResId, String, String)> {
    let mut out = Vec::new();
    for res in 0..crate::resources::RESOURCES.len() as ResId {
        if !def(res).namespaced {
            continue;
        }
        for (k, s) in store.iter(res, Some(ns)) {
            if s.owners.iter().any(|o| &**o == uid) {
                out.push((res, k.1.clone(), k.2.clone()));
            }
        }
    }
    out
}

/// Remove the owner reference to `uid` from an object (orphaning).
pub(crate) fn drop_owner_ref(obj: &mut Value, uid: &str) {
    if let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        if refs.is_empty()
            && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("ownerReferences");
        }
    }
}
