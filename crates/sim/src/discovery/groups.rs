//! The served groups, versions and resources, legacy and aggregated discovery.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use warp::http::HeaderMap;

use crate::resources::{RESOURCES, ResourceDef};

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

pub(crate) fn groups() -> BTreeMap<&'static str, Vec<&'static str>> {
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

pub(crate) fn group_json(name: &str, versions: &[&str]) -> Value {
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

pub(crate) const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub(crate) fn resource_list(group: &str, version: &str) -> Value {
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
pub(crate) fn wants_aggregated(h: &HeaderMap) -> Option<&'static str> {
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
pub(crate) fn aggregated(core: bool, version: &str) -> Value {
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
