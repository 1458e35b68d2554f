//! The shared tail of every write (identity, admission, defaults, validation, decoding,
//! managedFields, no-op detection, commit) and the controllers' own writes.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::apply::{self};
use crate::fields::{self, Schema};
use crate::hooks::{self, Hook};
use crate::meta::{now, uid_of};
use crate::resources::{ResId, ResourceDef, def, ids};
use crate::status::ApiError;
use crate::store::Store;
use crate::{Shared, admission, crd, defaults, lock, prune, validate};

/// Shared tail of every write: identity metadata, defaulting, validation, generation,
/// `managedFields` for Update operations, no-op detection, deletion completion, commit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_write(
    sh: &Arc<Shared>,
    store: &mut Store,
    res: ResId,
    ns: &str,
    name: &str,
    old: Option<&Value>,
    mut new: Value,
    p: &WriteParams,
    record_update: bool,
) -> Result<(Value, Vec<Hook>), ApiError> {
    let d = def(res);
    let schema = Schema::new(d.plural);
    let has_status = d.subresources.contains(&"status");
    let sub = p.subresource.as_deref();
    let mut hooks = Vec::new();
    let Some(nm) = new.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    nm.insert(
        "apiVersion".into(),
        json!(d.api_version(d.storage_version())),
    );
    nm.insert("kind".into(), json!(d.kind));
    let meta = nm.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("name".into(), json!(name));
        if d.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
    }
    match old {
        None => {
            prepare_new(sh, d, &mut new);
        }
        Some(old) => {
            carry_over(d, old, &mut new, sub, has_status);
        }
    }
    defaults::apply(d.plural, &mut new);
    // NB: the real server decodes (type errors: 400) before validating (422); a missing
    // required field is a validation error there, so those go to validation first.
    let version = if p.version.is_empty() {
        d.storage_version()
    } else {
        p.version.as_str()
    };
    let decoded = prune::decode(d, version, &mut new, p.strict);
    if let Err(e) = &decoded
        && !e.message.contains("missing field")
    {
        return Err(e.clone());
    }
    let mut errors = validate::validate(d.plural, &new, old);
    if let Some(root) = crd::schema_for(d, version) {
        errors.extend(crd::validate(&new, root));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(d, name, errors));
    }
    let dropped = decoded?;
    // NB: validating admission runs after validation; LimitRanger and
    // PersistentVolumeClaimResize judge claims.
    if res == ids::PVCS && sub.is_none() {
        super::claim_admission::admit_claim(store, d, ns, name, old, &new)?;
    }
    lock(&p.warnings).extend(dropped.iter().map(|f| format!("unknown field \"{f}\"")));
    if !dropped.is_empty() && !record_update {
        // An apply claimed fields the schema does not have: they go, and so does their
        // ownership.
        let mut entries = apply::parse_managed(&new);
        for e in entries.iter_mut() {
            e.set
                .retain(|path| fields::value_at(&new, path, schema).is_some());
        }
        apply::store_managed(&mut new, &entries);
    }
    if let Some(old) = old
        && d.has_generation()
        && sub.is_none()
        && old.get("spec") != new.get("spec")
    {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    if record_update {
        let manager = p.field_manager.clone().unwrap_or_else(|| "unknown".into());
        let base_entries_from = match new.pointer("/metadata/managedFields") {
            Some(m) if !m.is_null() => new.clone(),
            _ => old.cloned().unwrap_or_else(|| json!({})),
        };
        let mut entries = apply::parse_managed(&base_entries_from);
        let empty = json!({"metadata": {}});
        apply::record_update(
            &mut entries,
            old.unwrap_or(&empty),
            &new,
            schema,
            &manager,
            &d.api_version(&p.version),
            &now(),
            sub,
            has_status,
        );
        apply::store_managed(&mut new, &entries);
    }
    if let Some(old) = old {
        if let Some(rv) = old.pointer("/metadata/resourceVersion") {
            new["metadata"]["resourceVersion"] = rv.clone();
        }
        if *old == new {
            return Ok((new, hooks));
        }
    }
    let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
    let finalizers_left = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if p.dry_run {
        if old.is_none()
            && let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("resourceVersion");
        }
        return Ok((new, hooks));
    }
    if let Some(old) = old {
        let pod_pending_grace = res == ids::PODS && admission::grace_pending(sh, &new);
        if deleting && !finalizers_left && !pod_pending_grace {
            store.put(res, ns, name, new);
            let last = store.remove(res, ns, name).unwrap_or_else(|| old.clone());
            hooks.push(Hook::Removed {
                res,
                ns: ns.to_string(),
                name: name.to_string(),
                uid: uid_of(&last),
                orphan: false,
            });
            return Ok((last, hooks));
        }
    }
    let stored = store.put(res, ns, name, new);
    match old {
        None => hooks.push(Hook::Created {
            res,
            ns: ns.to_string(),
            name: name.to_string(),
            uid: uid_of(&stored),
        }),
        Some(old) => {
            let images = |v: &Value| -> Vec<Value> {
                ["/spec/initContainers", "/spec/containers"]
                    .iter()
                    .flat_map(|p| {
                        v.pointer(p)
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    })
                    .map(|c| c.get("image").cloned().unwrap_or(Value::Null))
                    .collect()
            };
            let storage = |v: &Value| {
                v.pointer("/spec/resources/requests/storage")
                    .and_then(crate::quantity::quantity_of)
            };
            let changed = match res {
                ids::PODS => images(old) != images(&stored),
                ids::PVCS => storage(&stored) > storage(old),
                // NB: the DaemonSet controller follows a DaemonSet's template and the nodes.
                ids::DAEMONSETS => old.pointer("/spec") != stored.pointer("/spec"),
                ids::NODES => {
                    old.pointer("/spec") != stored.pointer("/spec")
                        || old.pointer("/metadata/labels") != stored.pointer("/metadata/labels")
                        || old.pointer("/status/conditions") != stored.pointer("/status/conditions")
                }
                _ => false,
            };
            if changed {
                hooks.push(Hook::SpecChanged {
                    res,
                    ns: ns.to_string(),
                    name: name.to_string(),
                    uid: uid_of(&stored),
                });
            }
        }
    }
    Ok((stored, hooks))
}

/// Keep what a write may not change: identity, deletion state, the other half (spec/status).
pub(crate) fn carry_over(
    d: &ResourceDef,
    old: &Value,
    new: &mut Value,
    sub: Option<&str>,
    has_status: bool,
) {
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old.pointer(&format!("/metadata/{k}")) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove(k);
                }
            }
        }
    }
    if sub == Some("status") {
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        if let Some(m) = merged.as_object_mut() {
            match status {
                Some(s) => {
                    m.insert("status".into(), s);
                }
                None => {
                    m.remove("status");
                }
            }
        }
        if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
            merged["metadata"]["managedFields"] = mf;
        }
        *new = merged;
    } else if has_status && let Some(m) = new.as_object_mut() {
        match old.get("status") {
            Some(s) => {
                m.insert("status".into(), s.clone());
            }
            None => {
                m.remove("status");
            }
        }
    }
    if d.plural == "services" {
        // NB: a PUT without clusterIP keeps the allocated one, as the real server does.
        let given = new
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if given.is_empty()
            && let (Some(ip), Some(spec)) = (
                old.pointer("/spec/clusterIP").cloned(),
                new.get_mut("spec").and_then(Value::as_object_mut),
            )
        {
            spec.insert("clusterIP".into(), ip);
            if let Some(ips) = old.pointer("/spec/clusterIPs") {
                spec.insert("clusterIPs".into(), ips.clone());
            }
        }
    }
    if d.plural == "persistentvolumeclaims" {
        if let Some(v) = old.pointer("/spec/volumeName").cloned()
            && new.pointer("/spec/volumeName").is_none()
            && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("volumeName".into(), v);
        }
        if let Some(v) = old.pointer("/spec/storageClassName").cloned()
            && new.pointer("/spec/storageClassName").is_none()
            && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("storageClassName".into(), v);
        }
    }
}

/// Modify an object as a controller would (status writes by the kubelet, the job
/// controller, ...), recording an Update by `manager`. Returns false when the object is gone
/// or was replaced (uid differs).
#[allow(clippy::too_many_arguments)]
pub(crate) fn controller_write(
    sh: &Arc<Shared>,
    res: ResId,
    ns: &str,
    name: &str,
    uid: &str,
    manager: &str,
    subresource: Option<&str>,
    mutate: impl FnOnce(&mut Value),
) -> bool {
    let d = def(res);
    let mut store = lock(&sh.store);
    let Some(old) = store.get(res, ns, name).map(|s| s.value()) else {
        return false;
    };
    if uid_of(&old) != uid {
        return false;
    }
    let mut new = old.clone();
    mutate(&mut new);
    if new == old {
        return true;
    }
    let mut entries = apply::parse_managed(&old);
    apply::record_update(
        &mut entries,
        &old,
        &new,
        Schema::new(d.plural),
        manager,
        &d.api_version(d.storage_version()),
        &now(),
        subresource,
        d.subresources.contains(&"status"),
    );
    apply::store_managed(&mut new, &entries);
    let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
    let finalizers_left = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let mut hooks = Vec::new();
    if deleting && !finalizers_left && !(res == ids::PODS && admission::grace_pending(sh, &new)) {
        store.put(res, ns, name, new);
        store.remove(res, ns, name);
        hooks.push(Hook::Removed {
            res,
            ns: ns.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            orphan: false,
        });
    } else {
        store.put(res, ns, name, new);
    }
    drop(store);
    hooks::run(sh, hooks);
    true
}

/// Remove an object outright (grace period over, finalizers gone); false if absent.
pub(crate) fn remove_now(
    sh: &Arc<Shared>,
    res: ResId,
    ns: &str,
    name: &str,
    uid: &str,
    orphan: bool,
) -> bool {
    let mut store = lock(&sh.store);
    let Some(s) = store.get(res, ns, name) else {
        return false;
    };
    let obj = s.value();
    if uid_of(&obj) != uid {
        return false;
    }
    let finalizers_left = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if finalizers_left {
        return false;
    }
    store.remove(res, ns, name);
    drop(store);
    hooks::run(
        sh,
        vec![Hook::Removed {
            res,
            ns: ns.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            orphan,
        }],
    );
    true
}
