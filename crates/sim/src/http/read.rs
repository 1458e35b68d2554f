//! Collection reads and deletes, and pod logs.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use warp::http::HeaderMap;
use warp::reply::Reply;

use crate::ops::{self};
use crate::resources::{def, ids};
use crate::status::ApiError;
use crate::{Shared, discovery, lock};

use super::*;

pub(crate) fn list(
    sh: &Arc<Shared>,
    r: &ResourceRoute,
    q: &HashMap<String, String>,
    h: &HeaderMap,
) -> Reply_ {
    let d = def(r.res);
    let (ls, fs) = match selectors(d, q) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    if let Some(ns) = &r.ns {
        let store = lock(&sh.store);
        if store.get(ids::NAMESPACES, "", ns).is_none() {
            // NB: the real server answers an empty list for a missing namespace.
            drop(store);
        }
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let cont = q.get("continue").and_then(|c| decode_continue(c));
    let res = ops::list(sh, r.res, r.ns.as_deref(), &ls, &fs, limit, cont.as_deref());
    if discovery::wants_table(h) {
        let items: Vec<Value> = res
            .items
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
            .collect();
        return json_response(200, &discovery::table(d, &items, res.rv));
    }
    let mut meta = json!({"resourceVersion": res.rv.to_string()});
    if let Some(c) = &res.continue_token {
        meta["continue"] = json!(encode_continue(c));
    }
    if let Some(n) = res.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    let head = json!({
        "kind": format!("{}List", d.kind),
        "apiVersion": d.api_version(&r.version),
        "metadata": meta,
    })
    .to_string();
    let total: usize = res.items.iter().map(Bytes::len).sum();
    let mut buf = BytesMut::with_capacity(head.len() + total + res.items.len() + 16);
    buf.put_slice(&head.as_bytes()[..head.len() - 1]);
    buf.put_slice(b",\"items\":[");
    for (i, item) in res.items.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(&served_bytes(d, &r.version, item));
    }
    buf.put_slice(b"]}");
    bytes_response(200, buf.freeze(), "application/json")
}

pub(crate) fn encode_continue(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key)
}

pub(crate) fn decode_continue(token: &str) -> Option<String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

pub(crate) fn delete_collection(
    sh: &Arc<Shared>,
    r: &ResourceRoute,
    q: &HashMap<String, String>,
    body: &Bytes,
    dry_run: bool,
) -> Reply_ {
    let d = def(r.res);
    let (ls, fs) = match selectors(d, q) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let res = ops::list(sh, r.res, r.ns.as_deref(), &ls, &fs, None, None);
    let dp = delete_params(q, body, dry_run);
    let mut items = Vec::new();
    for b in &res.items {
        let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
        let ns = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Ok(del) = ops::delete(sh, r.res, &ns, &name, &dp) {
            items.push(served_version(d, &r.version, del.object));
        }
    }
    json_response(
        200,
        &json!({
            "kind": format!("{}List", d.kind),
            "apiVersion": d.api_version(&r.version),
            "metadata": {"resourceVersion": lock(&sh.store).rv().to_string()},
            "items": items,
        }),
    )
}

pub(crate) fn logs(sh: &Arc<Shared>, r: &ResourceRoute, q: &HashMap<String, String>) -> Reply_ {
    let ns = r.ns.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let pod = match ops::get(sh, ids::PODS, &ns, &name) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let names = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mains = names("containers");
    let inits = names("initContainers");
    let container = match q.get("container") {
        Some(c) => c.clone(),
        None if mains.len() == 1 => mains[0].clone(),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                mains.join(" ")
            );
            if !inits.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            return error_response(&ApiError::bad_request(msg));
        }
    };
    if !mains.contains(&container) && !inits.contains(&container) {
        return error_response(&ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let statuses = if inits.contains(&container) {
        "initContainerStatuses"
    } else {
        "containerStatuses"
    };
    let restarts = pod
        .pointer(&format!("/status/{statuses}"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .and_then(|c| c["restartCount"].as_i64())
        .unwrap_or(0);
    if is_true(q, "previous") && restarts == 0 {
        return error_response(&ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let lines = lock(&sh.logs)
        .get(&(ns.clone(), name.clone(), container.clone()))
        .cloned()
        .or_else(|| crate::lifecycle::default_logs(&pod, &container));
    let Some(mut lines) = lines else {
        let list = if inits.contains(&container) {
            "initContainerStatuses"
        } else {
            "containerStatuses"
        };
        let reason = pod
            .pointer(&format!("/status/{list}"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
            .and_then(|c| c.pointer("/state/waiting/reason"))
            .and_then(Value::as_str)
            .unwrap_or("ContainerCreating")
            .to_string();
        let why = match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            other => other.to_string(),
        };
        return error_response(&ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    };
    if let Some(n) = q.get("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut text = String::new();
    let stamp = is_true(q, "timestamps");
    for l in &lines {
        if stamp {
            text.push_str(&ops::now().replace('Z', ".000000000Z"));
            text.push(' ');
        }
        text.push_str(l);
        text.push('\n');
    }
    // NB: like the kubelet, limitBytes cuts at a byte, even inside a UTF-8 character.
    let mut text = text.into_bytes();
    if let Some(limit) = q.get("limitBytes").and_then(|t| t.parse::<usize>().ok()) {
        text.truncate(limit);
    }
    if is_true(q, "follow") {
        return follow(sh, ns, name, ops::uid_of(&pod), container, statuses, text);
    }
    bytes_response(200, Bytes::from(text), "text/plain")
}

/// `follow=true`: the lines so far, then the stream stays open until the container stops
/// or the pod goes away.
fn follow(
    sh: &Arc<Shared>,
    ns: String,
    name: String,
    uid: String,
    container: String,
    statuses: &'static str,
    text: Vec<u8>,
) -> Reply_ {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let sh = sh.clone();
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(text))).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let Ok(pod) = ops::get(&sh, ids::PODS, &ns, &name) else {
                return;
            };
            let stopped = pod
                .pointer(&format!("/status/{statuses}"))
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
                .is_none_or(|c| c.pointer("/state/running").is_none());
            if ops::uid_of(&pod) != uid || stopped || tx.is_closed() {
                return;
            }
        }
    });
    let mut resp =
        warp::reply::stream(tokio_stream::wrappers::ReceiverStream::new(rx)).into_response();
    if let Ok(v) = "text/plain".parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}
