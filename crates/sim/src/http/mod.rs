//! The HTTP front: routing REST paths to the verbs, Status error bodies, list and watch
//! encoding, pod logs, request accounting and fault injection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, Method};
use warp::reply::Reply;

use super::faults::{self, RecordedRequest};
use super::ops::{self, DeleteParams, PatchKind, WriteParams};
use super::resources::{self, ResId, ResourceDef, def, ids};
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Event, EventKind, Labels, label_of};
use super::{Shared, discovery, lock};

mod read;
mod watch;

pub(crate) use read::*;
pub(crate) use watch::*;

pub(crate) use crate::reply::{Reply_, bytes_response, error_response, json_response};

/// The warp filter serving everything.
pub(crate) fn filter(
    sh: Arc<Shared>,
) -> impl Filter<Extract = (Reply_,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |m: Method, p: warp::path::FullPath, q: String, h: HeaderMap, b: Bytes| {
                let sh = sh.clone();
                async move { handle(sh, m, p.as_str().to_string(), q, h, b).await }
            },
        )
        .recover(|_r: warp::Rejection| async move {
            Ok::<_, Infallible>(error_response(&ApiError::bad_request(
                "the request could not be read",
            )))
        })
        .unify()
}

/// 404 for a path nothing serves: a Status inside a served group/version (an unknown
/// resource), the Go mux's plain text anywhere else, as the real server answers.
fn not_found(path: &str) -> Reply_ {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let known_gv = match segs.as_slice() {
        ["api", "v1", ..] => true,
        ["apis", g, v, ..] => discovery::group_version_known(g, v),
        _ => false,
    };
    if known_gv {
        error_response(&ApiError::unknown_path())
    } else {
        bytes_response(
            404,
            Bytes::from_static(b"404 page not found\n"),
            "text/plain; charset=utf-8",
        )
    }
}

/// A resource request, parsed from the path.
#[derive(Debug, Clone)]
pub(crate) struct ResourceRoute {
    pub res: ResId,
    pub version: String,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// What a path addresses.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    Resource(ResourceRoute),
    Discovery(discovery::Doc),
}

fn find_in(group: &str, version: &str, plural: &str) -> Option<ResId> {
    resources::find(group, version, plural).map(|(id, _)| id)
}

/// Parse a path into a route; `None` for paths nothing serves.
pub(crate) fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        [] => return Some(Route::Discovery(discovery::Doc::Root)),
        ["api"] => return Some(Route::Discovery(discovery::Doc::CoreVersions)),
        ["apis"] => return Some(Route::Discovery(discovery::Doc::Groups)),
        ["version"] => return Some(Route::Discovery(discovery::Doc::Version)),
        ["healthz"] | ["readyz"] | ["livez"] => {
            return Some(Route::Discovery(discovery::Doc::Health));
        }
        ["openapi", "v3"] => return Some(Route::Discovery(discovery::Doc::OpenApiRoot)),
        ["openapi", "v3", "api", "v1"] => {
            return Some(Route::Discovery(discovery::Doc::OpenApiGroupVersion(
                String::new(),
                "v1".into(),
            )));
        }
        ["openapi", "v3", "apis", g, v] => {
            return discovery::group_version_known(g, v).then(|| {
                Route::Discovery(discovery::Doc::OpenApiGroupVersion(
                    g.to_string(),
                    v.to_string(),
                ))
            });
        }
        ["api", "v1"] => {
            return Some(Route::Discovery(discovery::Doc::Resources(
                String::new(),
                "v1".into(),
            )));
        }
        ["apis", g] => {
            return discovery::group_known(g)
                .then(|| Route::Discovery(discovery::Doc::Group(g.to_string())));
        }
        ["apis", g, v] => {
            return discovery::group_version_known(g, v).then(|| {
                Route::Discovery(discovery::Doc::Resources(g.to_string(), v.to_string()))
            });
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let mk = |res: ResId, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Some(Route::Resource(ResourceRoute {
            res,
            version: version.to_string(),
            ns: ns.map(str::to_string),
            name: name.map(str::to_string),
            sub: sub.map(str::to_string),
        }))
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..]
            if find_in(group, version, plural).is_some_and(|r| def(r).namespaced) =>
        {
            let res = find_in(group, version, plural)?;
            match tail {
                [] => mk(res, Some(ns), None, None),
                [name] => mk(res, Some(ns), Some(name), None),
                [name, sub] if def(res).subresources.contains(sub) => {
                    mk(res, Some(ns), Some(name), Some(sub))
                }
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let res = find_in(group, version, plural)?;
            let d = def(res);
            match tail {
                [] => mk(res, None, None, None),
                [name] if !d.namespaced => mk(res, None, Some(name), None),
                [name, sub]
                    if !d.namespaced && (d.subresources.contains(sub) || *sub == "finalize") =>
                {
                    mk(res, None, Some(name), Some(sub))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn query_map(q: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn is_true(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

fn verb_of(m: &Method, r: &ResourceRoute, q: &HashMap<String, String>) -> &'static str {
    match *m {
        Method::GET | Method::HEAD if r.name.is_none() => {
            if is_true(q, "watch") {
                "watch"
            } else {
                "list"
            }
        }
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if r.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

fn user_agent_manager(h: &HeaderMap) -> String {
    // NB: the real server names a missing fieldManager after the User-Agent's first word.
    h.get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

async fn handle(
    sh: Arc<Shared>,
    m: Method,
    path: String,
    q: String,
    h: HeaderMap,
    body: Bytes,
) -> Reply_ {
    let query = query_map(&q);
    let Some(route) = route(&path) else {
        return not_found(&path);
    };
    let r = match route {
        Route::Discovery(doc) => {
            if m != Method::GET && m != Method::HEAD {
                return error_response(&ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource".to_string(),
                ));
            }
            let addr = lock(&sh.addr).map(|a| a.to_string()).unwrap_or_default();
            return discovery::respond(&doc, &h, &addr);
        }
        Route::Resource(r) => r,
    };
    let d = def(r.res);
    let verb = verb_of(&m, &r, &query);
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All")
        || (m == Method::DELETE && body_dry_run(&body));
    let record = RecordedRequest {
        verb: verb.to_string(),
        api_group: d.group.to_string(),
        resource: d.plural.to_string(),
        subresource: r.sub.clone(),
        namespace: r.ns.clone(),
        name: r.name.clone(),
        dry_run,
        field_manager: query.get("fieldManager").cloned(),
    };
    let action = {
        let mut f = lock(&sh.faults);
        faults::decide(&mut f, &record)
    };
    {
        let mut requests = lock(&sh.requests);
        // NB: a long-running demo must not grow without bound; tests never get near this.
        if requests.len() >= 200_000 {
            requests.drain(..100_000);
        }
        requests.push(record);
    }
    if let Some(l) = action.latency {
        tokio::time::sleep(l).await;
    }
    if let Some((code, retry)) = action.status {
        return error_response(&ApiError::injected(code, retry));
    }
    if verb == "unknown" {
        return error_response(&ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {})",
            m, d.plural
        )));
    }
    if let Some(dv) = query.get("dryRun")
        && dv != "All"
    {
        return error_response(&ApiError::bad_request(format!(
            "Invalid dryRun value: \"{dv}\": supported values: \"All\""
        )));
    }
    let ns = r.ns.clone().unwrap_or_default();
    let warnings: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let result = match verb {
        "get" if r.sub.as_deref() == Some("log") => return logs(&sh, &r, &query),
        "get" => {
            let got = ops::get(&sh, r.res, &ns, r.name.as_deref().unwrap_or_default());
            if let (Ok(obj), true) = (&got, discovery::wants_table(&h)) {
                let rv = lock(&sh.store).rv();
                return json_response(200, &discovery::table(d, std::slice::from_ref(obj), rv));
            }
            got.map(|v| (200, v))
        }
        "list" => return list(&sh, &r, &query, &h),
        "watch" => return watch(&sh, &r, &query, &h),
        "create" => parse_body(&h, &body).and_then(|v| {
            let p = write_params(&r, &query, &h, dry_run, &warnings);
            if r.name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "POST is not allowed on a named resource",
                ));
            }
            ops::create(&sh, r.res, &ns, v, &p).map(|o| (201, o))
        }),
        "update" => parse_body(&h, &body).and_then(|v| {
            let p = write_params(&r, &query, &h, dry_run, &warnings);
            ops::update(
                &sh,
                r.res,
                &ns,
                r.name.as_deref().unwrap_or_default(),
                v,
                &p,
            )
            .map(|o| (200, o))
        }),
        "patch" => {
            let ct = media_type(&h);
            let strategic = !d.group.ends_with(".istio.io");
            let kind = match ct.as_str() {
                "application/apply-patch+yaml" => Some(PatchKind::Apply),
                "application/merge-patch+json" => Some(PatchKind::Merge),
                // NB: custom resources (every Istio kind) do not take strategic merge.
                "application/strategic-merge-patch+json" if strategic => Some(PatchKind::Strategic),
                "application/json-patch+json" => Some(PatchKind::Json),
                _ => None,
            };
            match kind {
                None => Err(ApiError::unsupported_media_type(if strategic {
                    &PATCH_TYPES
                } else {
                    &PATCH_TYPES_CUSTOM
                })),
                Some(kind) => {
                    let mut p = write_params(&r, &query, &h, dry_run, &warnings);
                    if kind == PatchKind::Apply {
                        p.field_manager = query.get("fieldManager").cloned();
                    }
                    let name = r.name.clone().unwrap_or_default();
                    let existed = ops::get(&sh, r.res, &ns, &name).is_ok();
                    ops::patch(&sh, r.res, &ns, &name, kind, &body, &p).map(|o| {
                        (
                            if kind == PatchKind::Apply && !existed {
                                201
                            } else {
                                200
                            },
                            o,
                        )
                    })
                }
            }
        }
        "delete" => {
            let dp = delete_params(&query, &body, dry_run);
            ops::delete(&sh, r.res, &ns, r.name.as_deref().unwrap_or_default(), &dp).map(|del| {
                let returns_object = !del.removed
                    || matches!(r.res, ids::PODS | ids::SERVICES | ids::PVCS | ids::NAMESPACES);
                if returns_object {
                    (200, del.object)
                } else {
                    let mut details = json!({
                        "name": r.name,
                        "kind": d.plural,
                        "uid": ops::uid_of(&del.object),
                    });
                    if !d.group.is_empty() {
                        details["group"] = json!(d.group);
                    }
                    (200, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}))
                }
            })
        }
        "deletecollection" => return delete_collection(&sh, &r, &query, &body, dry_run),
        _ => Err(ApiError::method_not_allowed("unsupported")),
    };
    let mut resp = match result {
        Ok((code, v)) => json_response(code, &served_version(d, &r.version, v)),
        Err(e) => error_response(&e),
    };
    for w in lock(&warnings).iter() {
        let text = format!("299 - {w:?}");
        if let Ok(v) = text.parse() {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

fn body_dry_run(body: &Bytes) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("dryRun").cloned())
        .and_then(|d| d.as_array().cloned())
        .is_some_and(|a| a.iter().any(|x| x == "All"))
}

/// The media types a create or update body may use; protobuf (what kubectl sends for
/// built-in kinds) and CBOR are not decoded here.
const BODY_TYPES: [&str; 2] = ["application/json", "application/yaml"];
/// The patch types of built-in kinds, in upstream's order.
const PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
/// The patch types of custom resources (no strategic merge).
const PATCH_TYPES_CUSTOM: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// The request's `Content-Type` without parameters, lower case; empty when absent.
fn media_type(h: &HeaderMap) -> String {
    h.get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A create or update body: JSON or YAML (no `Content-Type` counts as JSON, as upstream);
/// any other media type is 415.
fn parse_body(h: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = media_type(h);
    if !ct.is_empty() && !BODY_TYPES.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media_type(&BODY_TYPES));
    }
    parse_json(body)
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).or_else(|_| {
        serde_yaml_ng::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{}': {e}",
                String::from_utf8_lossy(body)
            ))
        })
    })
}

fn write_params(
    r: &ResourceRoute,
    q: &HashMap<String, String>,
    h: &HeaderMap,
    dry_run: bool,
    warnings: &Arc<std::sync::Mutex<Vec<String>>>,
) -> WriteParams {
    WriteParams {
        warnings: warnings.clone(),
        dry_run,
        field_manager: Some(
            q.get("fieldManager")
                .cloned()
                .unwrap_or_else(|| user_agent_manager(h)),
        ),
        force: is_true(q, "force"),
        subresource: r.sub.clone(),
        version: r.version.clone(),
        strict: q.get("fieldValidation").is_some_and(|v| v == "Strict"),
    }
}

fn delete_params(q: &HashMap<String, String>, body: &Bytes, dry_run: bool) -> DeleteParams {
    let opts: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    DeleteParams {
        dry_run,
        grace: q
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse().ok())
            .or_else(|| opts.get("gracePeriodSeconds").and_then(Value::as_i64)),
        propagation: q
            .get("propagationPolicy")
            .cloned()
            .or_else(|| {
                opts.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .or_else(|| {
                opts.get("orphanDependents")
                    .and_then(Value::as_bool)
                    .map(|o| {
                        if o {
                            "Orphan".to_string()
                        } else {
                            "Background".to_string()
                        }
                    })
            }),
        uid: opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Serve an object in the version the request asked for (VirtualService v1/v1beta1).
fn served_version(d: &ResourceDef, version: &str, mut v: Value) -> Value {
    if version != d.storage_version() && v.get("kind").and_then(Value::as_str) == Some(d.kind) {
        v["apiVersion"] = json!(d.api_version(version));
    }
    v
}

fn served_bytes(d: &ResourceDef, version: &str, b: &Bytes) -> Bytes {
    if version == d.storage_version() {
        return b.clone();
    }
    let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
    Bytes::from(serde_json::to_vec(&served_version(d, version, v)).unwrap_or_default())
}

fn selectors(
    d: &ResourceDef,
    q: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let ls = LabelSelector::parse(
        q.get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fs = FieldSelector::parse(
        q.get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
        d.plural,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((ls, fs))
}
