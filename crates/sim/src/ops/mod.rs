//! The verbs: get, list, create, update, patch (apply, merge, strategic, JSON) and delete,
//! with preconditions, defaulting, validation, `managedFields` and resourceVersions.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::apply::{self, ApplyRequest};
use super::fields::{self, Schema};
use super::lifecycle::{self, Hook};
use super::resources::{ResId, ResourceDef, def, ids};
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::Store;
use super::{Shared, crd, defaults, lock, prune, validate};

mod patch;
mod write;

pub(crate) use patch::*;
pub(crate) use write::*;

/// Parameters common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteParams {
    /// dryRun=All.
    pub dry_run: bool,
    /// fieldManager (or the one derived from the User-Agent).
    pub field_manager: Option<String>,
    /// force=true (apply).
    pub force: bool,
    /// Subresource (`status`).
    pub subresource: Option<String>,
    /// The version the request used.
    pub version: String,
    /// fieldValidation=Strict: unknown fields are refused instead of dropped.
    pub strict: bool,
    /// Warnings for the response (`Warning: 299 - "..."` headers), e.g. dropped fields.
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// application/apply-patch+yaml
    Apply,
    /// application/merge-patch+json
    Merge,
    /// application/strategic-merge-patch+json
    Strategic,
    /// application/json-patch+json
    Json,
}

/// Delete options.
#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    /// dryRun=All.
    pub dry_run: bool,
    /// gracePeriodSeconds.
    pub grace: Option<i64>,
    /// propagationPolicy.
    pub propagation: Option<String>,
    /// preconditions.uid.
    pub uid: Option<String>,
    /// preconditions.resourceVersion.
    pub resource_version: Option<String>,
}

/// RFC 3339 time, seconds precision, as metav1.Time serialises.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// RFC 3339 time `secs` from now.
pub fn now_plus(secs: i64) -> String {
    let t = jiff::Timestamp::now().as_second() + secs;
    jiff::Timestamp::from_second(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| now())
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn check_namespace(
    store: &Store,
    d: &ResourceDef,
    ns: &str,
    creating: Option<&str>,
) -> Result<(), ApiError> {
    if !d.namespaced {
        return Ok(());
    }
    let Some(n) = store.get(ids::NAMESPACES, "", ns) else {
        return Err(ApiError::namespace_not_found(ns));
    };
    if let Some(name) = creating
        && n.value().pointer("/metadata/deletionTimestamp").is_some()
    {
        let mut e = ApiError::bad_request(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
            d.qualified_plural(),
            name,
            ns
        ));
        e.code = 403;
        e.reason = "Forbidden";
        return Err(e);
    }
    Ok(())
}

/// get
pub fn get(sh: &Shared, res: ResId, ns: &str, name: &str) -> Result<Value, ApiError> {
    let store = lock(&sh.store);
    let d = def(res);
    match store.get(res, ns, name) {
        Some(s) => Ok(s.value()),
        None => Err(ApiError::not_found(d, name)),
    }
}

/// A list answer: resourceVersion and the serialized items.
pub struct ListResult {
    /// List resourceVersion.
    pub rv: u64,
    /// Items.
    pub items: Vec<Bytes>,
    /// `metadata.continue` token.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount`.
    pub remaining: Option<usize>,
}

/// list
pub fn list(
    sh: &Shared,
    res: ResId,
    ns: Option<&str>,
    ls: &LabelSelector,
    fs: &FieldSelector,
    limit: Option<usize>,
    continue_after: Option<&str>,
) -> ListResult {
    let store = lock(&sh.store);
    let mut items = Vec::new();
    let mut last_key: Option<String> = None;
    let mut remaining = 0usize;
    for (k, s) in store.iter(res, ns) {
        if let Some(after) = continue_after
            && format!("{}/{}", k.1, k.2).as_str() <= after
        {
            continue;
        }
        if !ls.is_empty() && !ls.matches(|key| s.label(key)) {
            continue;
        }
        if !fs.is_empty() {
            if let Some(n) = fs.name()
                && n != k.2
            {
                continue;
            }
            if !fs.matches(&s.value()) {
                continue;
            }
        }
        if limit.is_some_and(|l| items.len() >= l) {
            remaining += 1;
            continue;
        }
        last_key = Some(format!("{}/{}", k.1, k.2));
        items.push(s.bytes.clone());
    }
    let continue_token = if remaining > 0 { last_key } else { None };
    ListResult {
        rv: store.rv(),
        items,
        continue_token,
        remaining: (remaining > 0).then_some(remaining),
    }
}

/// create
pub fn create(
    sh: &Arc<Shared>,
    res: ResId,
    ns: &str,
    body: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let d = def(res);
    let mut obj = body;
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    check_type(d, &obj, &p.version)?;
    let meta = obj
        .as_object_mut()
        .map(|m| m.entry("metadata").or_insert_with(|| json!({})));
    let Some(Value::Object(meta)) = meta else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    if let Some(bns) = meta.get("namespace").and_then(Value::as_str)
        && d.namespaced
        && !bns.is_empty()
        && bns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && let Some(g) = meta.get("generateName").and_then(Value::as_str)
    {
        let name = format!("{g}{}", lifecycle::random_suffix());
        meta.insert("name".into(), json!(name));
    }
    let name = name_of(&obj).to_string();
    let mut store = lock(&sh.store);
    check_namespace(&store, d, ns, Some(&name))?;
    if !name.is_empty() && store.get(res, ns, &name).is_some() {
        return Err(ApiError::already_exists(d, &name));
    }
    let (out, hooks) = finish_write(sh, &mut store, res, ns, &name, None, obj, p, true)?;
    drop(store);
    lifecycle::run(sh, hooks);
    Ok(out)
}

fn check_type(d: &ResourceDef, obj: &Value, version: &str) -> Result<(), ApiError> {
    let want = d.api_version(version);
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != want
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != d.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            d.kind
        )));
    }
    Ok(())
}

/// update (PUT)
pub fn update(
    sh: &Arc<Shared>,
    res: ResId,
    ns: &str,
    name: &str,
    body: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let d = def(res);
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    check_type(d, &body, &p.version)?;
    let bname = name_of(&body);
    if bname != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({bname}) does not match the name on the URL ({name})"
        )));
    }
    let mut store = lock(&sh.store);
    check_namespace(&store, d, ns, None)?;
    let Some(old) = store.get(res, ns, name).map(|s| s.value()) else {
        return Err(ApiError::not_found(d, name));
    };
    check_preconditions(d, name, &old, &body)?;
    let (out, hooks) = finish_write(sh, &mut store, res, ns, name, Some(&old), body, p, true)?;
    drop(store);
    lifecycle::run(sh, hooks);
    Ok(out)
}

fn check_preconditions(
    d: &ResourceDef,
    name: &str,
    old: &Value,
    body: &Value,
) -> Result<(), ApiError> {
    let old_rv = old
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    if let Some(rv) = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && !rv.is_empty()
        && Some(rv) != old_rv
    {
        return Err(ApiError::conflict_modified(d, name));
    }
    let old_uid = old
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(uid) = body.pointer("/metadata/uid").and_then(Value::as_str)
        && !uid.is_empty()
        && uid != old_uid
    {
        return Err(ApiError::conflict(
            d,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
            ),
        ));
    }
    Ok(())
}

/// The object's uid.
pub fn uid_of(v: &Value) -> String {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

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
        lifecycle::pod_grace(&obj, dp.grace)
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
    lifecycle::run(sh, hooks);
    Ok(result)
}

fn current_grace(obj: &Value) -> i64 {
    obj.pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX)
}

/// Seed an object as if created (used by the test handle).
pub(crate) fn seed(sh: &Arc<Shared>, obj: Value) -> Result<Value, ApiError> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some((res, d)) = super::resources::find_kind(api_version, kind) else {
        return Err(ApiError::bad_request(format!(
            "no resource serves kind {kind} in {api_version}"
        )));
    };
    let (_, version) = super::resources::split_api_version(api_version);
    let ns = if d.namespaced {
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    let mut body = obj.clone();
    if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    let status = body.get("status").cloned();
    let p = WriteParams {
        field_manager: Some("sim-seed".into()),
        version: version.to_string(),
        ..WriteParams::default()
    };
    let created = create(sh, res, &ns, body, &p)?;
    // Seeded status is kept as given (a test may seed a Running pod).
    match status {
        Some(s) if d.subresources.contains(&"status") => {
            let name = name_of(&created).to_string();
            let uid = uid_of(&created);
            controller_write(sh, res, &ns, &name, &uid, "sim-seed", Some("status"), |o| {
                o["status"] = s;
            });
            get(sh, res, &ns, &name)
        }
        _ => Ok(created),
    }
}

/// Objects in a namespace whose owner references include `uid`.
pub(crate) fn dependents(store: &Store, ns: &str, uid: &str) -> Vec<(ResId, String, String)> {
    let mut out = Vec::new();
    for res in 0..super::resources::RESOURCES.len() as ResId {
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
