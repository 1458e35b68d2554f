//! create, update (PUT) and seeding, with their type and precondition checks.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::hooks::{self};
use crate::meta::{name_of, uid_of};
use crate::resources::{ResId, ResourceDef, def};
use crate::status::ApiError;
use crate::{Shared, admission, lock};

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
        let name = format!("{g}{}", admission::random_suffix());
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
    hooks::run(sh, hooks);
    Ok(out)
}

pub(super) fn check_type(d: &ResourceDef, obj: &Value, version: &str) -> Result<(), ApiError> {
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
    hooks::run(sh, hooks);
    Ok(out)
}

pub(super) fn check_preconditions(
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

/// Seed an object as if created (used by the test handle).
pub(crate) fn seed(sh: &Arc<Shared>, obj: Value) -> Result<Value, ApiError> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some((res, d)) = crate::resources::find_kind(api_version, kind) else {
        return Err(ApiError::bad_request(format!(
            "no resource serves kind {kind} in {api_version}"
        )));
    };
    let (_, version) = crate::resources::split_api_version(api_version);
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
