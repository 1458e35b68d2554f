//! Parsing REST paths into resource routes or discovery documents.

use bytes::Bytes;

use crate::discovery;
use crate::resources::{self, ResId, def};
use crate::status::ApiError;

use super::*;

/// 404 for a path nothing serves: a Status inside a served group/version (an unknown
/// resource), the Go mux's plain text anywhere else, as the real server answers.
pub(crate) fn not_found(path: &str) -> Reply_ {
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

pub(crate) fn find_in(group: &str, version: &str, plural: &str) -> Option<ResId> {
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
