//! The warp filter and the request handler: accounting, faults, then the verb.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use warp::Filter;
use warp::http::{HeaderMap, Method};

use crate::faults::{self, RecordedRequest};
use crate::ops::{self, PatchKind};
use crate::resources::{def, ids};
use crate::status::ApiError;
use crate::{Shared, discovery, lock};

use super::*;

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

pub(crate) fn query_map(q: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn is_true(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

pub(crate) fn verb_of(m: &Method, r: &ResourceRoute, q: &HashMap<String, String>) -> &'static str {
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

pub(crate) fn user_agent_manager(h: &HeaderMap) -> String {
    // NB: the real server names a missing fieldManager after the User-Agent's first word.
    h.get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

pub(crate) async fn handle(
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
