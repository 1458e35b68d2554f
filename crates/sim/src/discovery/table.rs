//! Server-side printing: the Table rendering kubectl asks for.

use serde_json::{Value, json};
use warp::http::HeaderMap;

use crate::resources::ResourceDef;

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

pub(crate) fn age(ts: &str) -> String {
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

pub(crate) fn pod_status_text(p: &Value) -> String {
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
