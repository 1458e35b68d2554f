//! Answering the non-resource paths: discovery, `/version`, health and OpenAPI.

use serde_json::{Value, json};
use warp::http::HeaderMap;

use crate::reply::json_response;
use crate::resources::RESOURCES;

use super::*;

/// Answer a discovery request.
pub(crate) fn respond(doc: &Doc, h: &HeaderMap, addr: &str) -> warp::reply::Response {
    if let (Some(v), Doc::CoreVersions | Doc::Groups) = (wants_aggregated(h), doc) {
        let body = aggregated(matches!(doc, Doc::CoreVersions), v);
        let mut r = json_response(200, &body);
        let ct = format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList");
        if let Ok(hv) = ct.parse() {
            r.headers_mut().insert("content-type", hv);
        }
        return r;
    }
    match doc {
        Doc::Root => {
            let mut paths = vec![
                "/api".to_string(),
                "/api/v1".to_string(),
                "/apis".to_string(),
            ];
            for (g, vs) in groups() {
                paths.push(format!("/apis/{g}"));
                for v in vs {
                    paths.push(format!("/apis/{g}/{v}"));
                }
            }
            paths.extend(["/healthz", "/livez", "/readyz", "/version"].map(String::from));
            json_response(200, &json!({"paths": paths}))
        }
        Doc::CoreVersions => json_response(
            200,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
            }),
        ),
        Doc::Groups => {
            let gs: Vec<Value> = groups().iter().map(|(g, vs)| group_json(g, vs)).collect();
            json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}),
            )
        }
        Doc::Group(g) => {
            let gs = groups();
            let vs = gs.get(g.as_str()).cloned().unwrap_or_default();
            let mut body = group_json(g, &vs);
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            json_response(200, &body)
        }
        Doc::Resources(g, v) => json_response(200, &resource_list(g, v)),
        Doc::Version => json_response(
            200,
            &json!({
                "major": "1",
                "minor": "32",
                "emulationMajor": "1",
                "emulationMinor": "32",
                "gitVersion": "v1.32.0-sim",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.23.4",
                "compiler": "gc",
                "platform": "linux/amd64",
            }),
        ),
        Doc::OpenApiRoot => {
            let mut paths = serde_json::Map::new();
            let mut gvs = vec![(String::new(), "v1".to_string())];
            for (g, vs) in groups() {
                gvs.extend(vs.iter().map(|v| (g.to_string(), v.to_string())));
            }
            for (g, v) in gvs {
                let key = if g.is_empty() {
                    "api/v1".to_string()
                } else {
                    format!("apis/{g}/{v}")
                };
                let url = format!("/openapi/v3/{key}?hash=SIM{}", key.len());
                paths.insert(key, json!({"serverRelativeURL": url}));
            }
            json_response(200, &json!({"paths": paths}))
        }
        Doc::OpenApiGroupVersion(g, v) => json_response(200, &openapi_doc(g, v)),
        Doc::Health => {
            let mut r = warp::reply::Response::new("ok".into());
            if let Ok(v) = "text/plain; charset=utf-8".parse() {
                r.headers_mut().insert("content-type", v);
            }
            r
        }
    }
}

/// A minimal OpenAPI v3 document for one group/version: the PATCH operations with their
/// query parameters, which is what kubectl reads to learn that the server validates fields
/// itself (`fieldValidation`), so that it does not need the full schemas.
pub(crate) fn openapi_doc(group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.versions.contains(&version))
    {
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", r.kind),
            "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation"), param("force")],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
        });
        paths.insert(path, json!({"patch": op}));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}
