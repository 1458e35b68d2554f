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
use super::{Shared, defaults, lock, prune, validate};

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
    creating: bool,
) -> Result<(), ApiError> {
    if !d.namespaced {
        return Ok(());
    }
    let Some(n) = store.get(ids::NAMESPACES, "", ns) else {
        return Err(ApiError::namespace_not_found(ns));
    };
    if creating && n.value().pointer("/metadata/deletionTimestamp").is_some() {
        let mut e = ApiError::bad_request(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
            d.qualified_plural(),
            "",
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
        None => {
            check_namespace(&store, d, ns, false).ok();
            Err(ApiError::not_found(d, name))
        }
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
    check_namespace(&store, d, ns, true)?;
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
    check_namespace(&store, d, ns, false)?;
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
    check_namespace(&store, d, ns, kind == PatchKind::Apply)?;
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
            let applied = yaml_to_json(applied);
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
    lifecycle::run(sh, hooks);
    Ok(out)
}

fn check_applied(
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
fn yaml_to_json(v: Value) -> Value {
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
fn strategic_merge(doc: &mut Value, patch: &Value, spath: &str, schema: Schema) {
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
    let decoded = prune::decode(d, &p.version, &mut new, p.strict);
    if let Err(e) = &decoded
        && !e.message.contains("missing field")
    {
        return Err(e.clone());
    }
    let errors = validate::validate(d.plural, &new, old);
    if !errors.is_empty() {
        return Err(ApiError::invalid(d, name, errors));
    }
    let dropped = decoded?;
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
        let pod_pending_grace = res == ids::PODS && lifecycle::grace_pending(sh, &new);
        if deleting && !finalizers_left && !pod_pending_grace {
            store.put(res, ns, name, new);
            let last = store.remove(res, ns, name).unwrap_or_else(|| old.clone());
            hooks.push(Hook::Removed {
                res,
                ns: ns.to_string(),
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
                    .and_then(validate::quantity_of)
                    .unwrap_or(0.0)
            };
            let changed = match res {
                ids::PODS => images(old) != images(&stored),
                ids::PVCS => storage(&stored) > storage(old),
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

/// The object's uid.
pub fn uid_of(v: &Value) -> String {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Identity metadata and the resource-specific parts a create gets.
fn prepare_new(sh: &Shared, d: &ResourceDef, obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
    if d.has_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    match d.plural {
        "persistentvolumeclaims" => {
            let f = meta.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(a) = f.as_array_mut()
                && !a.iter().any(|x| x == "kubernetes.io/pvc-protection")
            {
                a.push(json!("kubernetes.io/pvc-protection"));
            }
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
                && spec.get("storageClassName").is_none_or(Value::is_null)
            {
                spec.insert("storageClassName".into(), json!("standard"));
            }
            obj["status"] = json!({"phase": "Pending"});
        }
        "services" => {
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP")
                .to_string();
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                let given = spec
                    .get("clusterIP")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if ty != "ExternalName" && given != "None" && given.is_empty() {
                    let mut c = lock(&sh.counters);
                    c.cluster_ip += 1;
                    let n = c.cluster_ip;
                    let ip = format!("10.96.{}.{}", n / 250, n % 250 + 2);
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                } else if !given.is_empty() {
                    let ip = given.to_string();
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
            }
            obj["status"] = json!({"loadBalancer": {}});
        }
        "pods" => {
            let qos = lifecycle::qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            admit_pod(obj);
        }
        "jobs" => lifecycle::prepare_job(obj),
        "namespaces" => {
            obj["status"] = json!({"phase": "Active"});
        }
        _ => {}
    }
}

/// What the ServiceAccount and DefaultTolerationSeconds admission plugins add to a new pod:
/// the projected API token volume (unless automounting is off) and the not-ready/unreachable
/// tolerations.
fn admit_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        != Some(false)
    {
        let vol = format!("kube-api-access-{}", lifecycle::random_suffix());
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(v) = volumes.as_array_mut() {
            v.push(json!({"name": vol, "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}}));
        }
        for list in ["initContainers", "containers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                    if let Some(m) = mounts.as_array_mut() {
                        m.push(json!({"name": vol, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}));
                    }
                }
            }
        }
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(t) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let tolerated = t.iter().any(|x| {
                (x["key"] == key || x.get("key").is_none())
                    && x["operator"] == "Exists"
                    && (x["effect"] == "NoExecute" || x.get("effect").is_none())
            });
            if !tolerated {
                t.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

/// Keep what a write may not change: identity, deletion state, the other half (spec/status).
fn carry_over(d: &ResourceDef, old: &Value, new: &mut Value, sub: Option<&str>, has_status: bool) {
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
        check_namespace(&store, d, ns, false)?;
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
    if deleting && !finalizers_left && !(res == ids::PODS && lifecycle::grace_pending(sh, &new)) {
        store.put(res, ns, name, new);
        store.remove(res, ns, name);
        hooks.push(Hook::Removed {
            res,
            ns: ns.to_string(),
            uid: uid.to_string(),
            orphan: false,
        });
    } else {
        store.put(res, ns, name, new);
    }
    drop(store);
    lifecycle::run(sh, hooks);
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
    lifecycle::run(
        sh,
        vec![Hook::Removed {
            res,
            ns: ns.to_string(),
            uid: uid.to_string(),
            orphan,
        }],
    );
    true
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
            // NB: cheap byte check first: most objects have no owners.
            if !s.bytes.windows(uid.len()).any(|w| w == uid.as_bytes()) {
                continue;
            }
            let v = s.value();
            let owned = v
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                });
            if owned {
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
