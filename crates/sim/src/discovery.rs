//! Discovery documents, `/version`, health endpoints and server-side table printing.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use warp::http::HeaderMap;

use super::reply::json_response;
use super::resources::{RESOURCES, ResourceDef};

/// A non-resource document.
#[derive(Debug, Clone)]
pub(crate) enum Doc {
    Root,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Version,
    Health,
    /// `/openapi/v3`
    OpenApiRoot,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`
    OpenApiGroupVersion(String, String),
}

/// Whether a group is served.
pub(crate) fn group_known(g: &str) -> bool {
    RESOURCES.iter().any(|r| r.group == g && !g.is_empty())
}

/// Whether a group/version is served.
pub(crate) fn group_version_known(g: &str, v: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| r.group == g && !g.is_empty() && r.versions.contains(&v))
}

fn groups() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut out: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        let e = out.entry(r.group).or_default();
        for v in r.versions {
            if !e.contains(v) {
                e.push(v);
            }
        }
    }
    out
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": {"groupVersion": format!("{name}/{}", versions[0]), "version": versions[0]},
    })
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.versions.contains(&version))
    {
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": if r.plural == "namespaces" { json!(["create", "delete", "get", "list", "patch", "update", "watch"]) } else { json!(VERBS) },
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if matches!(r.plural, "pods" | "services" | "jobs") {
            main["categories"] = json!(["all"]);
        }
        resources.push(main);
        for sub in r.subresources {
            let verbs = if *sub == "log" {
                json!(["get"])
            } else {
                json!(["get", "patch", "update"])
            };
            resources.push(json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": if *sub == "log" { "Pod" } else { r.kind },
                "verbs": verbs,
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// Whether the client asked for aggregated discovery (apidiscovery.k8s.io/v2).
fn wants_aggregated(h: &HeaderMap) -> Option<&'static str> {
    let accept = h.get("accept").and_then(|v| v.to_str().ok())?;
    let first = accept.split(',').next()?;
    if !first.contains("as=APIGroupDiscoveryList") {
        return None;
    }
    Some(if first.contains("v=v2beta1") {
        "v2beta1"
    } else {
        "v2"
    })
}

/// The aggregated discovery document for the core group (`core`) or all named groups.
fn aggregated(core: bool, version: &str) -> Value {
    let mut groups: BTreeMap<&str, Vec<&ResourceDef>> = BTreeMap::new();
    for r in RESOURCES.iter().filter(|r| r.group.is_empty() == core) {
        groups.entry(r.group).or_default().push(r);
    }
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, rs)| {
            let mut versions: Vec<&str> = Vec::new();
            for r in rs {
                for v in r.versions {
                    if !versions.contains(v) {
                        versions.push(v);
                    }
                }
            }
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = rs
                        .iter()
                        .filter(|r| r.versions.contains(v))
                        .map(|r| {
                            let kind = json!({"group": g, "version": v, "kind": r.kind});
                            let subs: Vec<Value> = r
                                .subresources
                                .iter()
                                .map(|sub| {
                                    let verbs = if *sub == "log" {
                                        json!(["get"])
                                    } else {
                                        json!(["get", "patch", "update"])
                                    };
                                    let rk = if *sub == "log" {
                                        json!({"group": "", "version": "v1", "kind": "Pod"})
                                    } else {
                                        kind.clone()
                                    };
                                    json!({"subresource": sub, "responseKind": rk, "verbs": verbs})
                                })
                                .collect();
                            let mut res = json!({
                                "resource": r.plural,
                                "responseKind": kind,
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.singular,
                                "verbs": VERBS,
                            });
                            if !r.short_names.is_empty() {
                                res["shortNames"] = json!(r.short_names);
                            }
                            if matches!(r.plural, "pods" | "services" | "jobs") {
                                res["categories"] = json!(["all"]);
                            }
                            if !subs.is_empty() {
                                res["subresources"] = json!(subs);
                            }
                            res
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

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
fn openapi_doc(group: &str, version: &str) -> Value {
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

/// Whether the client asked for the Table rendering (kubectl get).
pub(crate) fn wants_table(h: &HeaderMap) -> bool {
    h.get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

fn age(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn pod_status_text(p: &Value) -> String {
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let waiting = |list: &str| -> Option<String> {
        p.pointer(&format!("/status/{list}"))
            .and_then(Value::as_array)?
            .iter()
            .find_map(|c| {
                c.pointer("/state/waiting/reason")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    };
    let init_failed = p
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter().find_map(|c| {
                c.pointer("/state/terminated/exitCode")
                    .and_then(Value::as_i64)
                    .filter(|c| *c != 0)
            })
        });
    if let Some(code) = init_failed {
        return format!("Init:ExitCode:{code}");
    }
    if let Some(r) = waiting("initContainerStatuses").filter(|r| r != "PodInitializing") {
        return format!("Init:{r}");
    }
    if let Some(r) = waiting("containerStatuses") {
        if r != "PodInitializing" || p.pointer("/status/initContainerStatuses").is_none() {
            return r;
        }
        let n = p
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let done = p
            .pointer("/status/initContainerStatuses")
            .and_then(Value::as_array)
            .map_or(0, |cs| {
                cs.iter()
                    .filter(|c| c.pointer("/state/terminated").is_some())
                    .count()
            });
        return format!("Init:{done}/{n}");
    }
    p.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
        .to_string()
}

/// A `meta.k8s.io/v1` Table for `kubectl get`.
pub(crate) fn table(d: &ResourceDef, items: &[Value], rv: u64) -> Value {
    let col = |name: &str, ty: &str| json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": "", "priority": 0});
    let columns: Vec<Value> = match d.plural {
        "pods" => vec![
            col("Name", "string"),
            col("Ready", "string"),
            col("Status", "string"),
            col("Restarts", "string"),
            col("Age", "string"),
        ],
        "persistentvolumeclaims" => vec![
            col("Name", "string"),
            col("Status", "string"),
            col("Volume", "string"),
            col("Capacity", "string"),
            col("Age", "string"),
        ],
        "services" => vec![
            col("Name", "string"),
            col("Type", "string"),
            col("Cluster-IP", "string"),
            col("Age", "string"),
        ],
        "namespaces" => vec![
            col("Name", "string"),
            col("Status", "string"),
            col("Age", "string"),
        ],
        _ => vec![col("Name", "string"), col("Age", "string")],
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let s = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let name = s("/metadata/name");
            let a = age(&s("/metadata/creationTimestamp"));
            let cells = match d.plural {
                "pods" => {
                    let cs = o
                        .pointer("/status/containerStatuses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let total = o
                        .pointer("/spec/containers")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let ready = cs.iter().filter(|c| c["ready"] == true).count();
                    let restarts: i64 = cs.iter().filter_map(|c| c["restartCount"].as_i64()).sum();
                    json!([
                        name,
                        format!("{ready}/{total}"),
                        pod_status_text(o),
                        restarts.to_string(),
                        a
                    ])
                }
                "persistentvolumeclaims" => json!([
                    name,
                    s("/status/phase"),
                    s("/spec/volumeName"),
                    s("/status/capacity/storage"),
                    a
                ]),
                "services" => json!([name, s("/spec/type"), s("/spec/clusterIP"), a]),
                "namespaces" => json!([name, s("/status/phase"), a]),
                _ => json!([name, a]),
            };
            let partial = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
            });
            json!({"cells": cells, "object": partial})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}
