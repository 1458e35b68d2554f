//! Watch streams: replay from a resourceVersion or initial ADDED events, then live
//! changes filtered by selectors, bookmarks, and the timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use warp::http::HeaderMap;
use warp::reply::Reply;

use crate::resources::{ResId, def};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, EventKind, Labels, label_of};
use crate::{Shared, discovery, lock};

use super::*;

/// Whether an event is visible to a watch with these selectors; may turn a MODIFIED that
/// leaves or enters the selection into DELETED or ADDED, as the real watch cache does.
pub(crate) fn visible(
    ev: &Event,
    res: ResId,
    ns: Option<&str>,
    ls: &LabelSelector,
    fs: &FieldSelector,
) -> Option<EventKind> {
    if ev.res != res || ns.is_some_and(|n| n != &*ev.ns) {
        return None;
    }
    if let Some(n) = fs.name()
        && n != &*ev.name
    {
        return None;
    }
    let matches = |labels: &Labels| ls.matches(|k| label_of(labels, k));
    let now = matches(&ev.labels);
    match (ev.kind, &ev.prev_labels) {
        (EventKind::Modified, Some(prev)) if !ls.is_empty() => match (matches(prev), now) {
            (true, true) => Some(EventKind::Modified),
            (true, false) => Some(EventKind::Deleted),
            (false, true) => Some(EventKind::Added),
            (false, false) => None,
        },
        (kind, _) => now.then_some(kind),
    }
}

pub(crate) fn event_line(kind: &str, obj: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(obj.len() + 32);
    b.put_slice(b"{\"type\":\"");
    b.put_slice(kind.as_bytes());
    b.put_slice(b"\",\"object\":");
    b.put_slice(obj);
    b.put_slice(b"}\n");
    b.freeze()
}

pub(crate) fn watch(
    sh: &Arc<Shared>,
    r: &ResourceRoute,
    q: &HashMap<String, String>,
    h: &HeaderMap,
) -> Reply_ {
    let d = def(r.res);
    let as_table = discovery::wants_table(h);
    // kubectl get -w asks for Table rows in watch events too.
    let render = move |version: &str, b: &Bytes| -> Bytes {
        let served = served_bytes(d, version, b);
        if !as_table {
            return served;
        }
        let obj: Value = serde_json::from_slice(&served).unwrap_or(Value::Null);
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Bytes::from(serde_json::to_vec(&discovery::table(d, &[obj], rv)).unwrap_or_default())
    };
    let (ls, fs) = match selectors(d, q) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = is_true(q, "sendInitialEvents");
    let bookmarks = is_true(q, "allowWatchBookmarks");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let ns = r.ns.clone();
    let (rx, initial, start_rv, expired) = {
        let store = lock(&sh.store);
        let rx = store.subscribe();
        let mut initial: Vec<(EventKind, Bytes)> = Vec::new();
        let mut expired = None;
        if rv_param.is_empty() || rv_param == "0" || send_initial {
            for (_, s) in store.iter(r.res, ns.as_deref()) {
                if !ls.is_empty() && !ls.matches(|k| s.label(k)) {
                    continue;
                }
                if !fs.is_empty() && !fs.matches(&s.value()) {
                    continue;
                }
                initial.push((EventKind::Added, s.bytes.clone()));
            }
        } else {
            match rv_param
                .parse::<u64>()
                .ok()
                .and_then(|rv| store.history_since(rv))
            {
                Some(events) => {
                    for ev in &events {
                        if let Some(kind) = visible(ev, r.res, ns.as_deref(), &ls, &fs)
                            && (fs.is_empty()
                                || fs.matches(
                                    &serde_json::from_slice::<Value>(&ev.bytes)
                                        .unwrap_or(Value::Null),
                                ))
                        {
                            initial.push((kind, ev.bytes.clone()));
                        }
                    }
                }
                None => {
                    expired = Some(ApiError::expired(format!(
                        "too old resource version: {} ({})",
                        rv_param,
                        store.oldest_rv()
                    )));
                }
            }
        }
        (rx, initial, store.rv(), expired)
    };
    let (tx, out) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let res = r.res;
    let version = r.version.clone();
    let sh2 = sh.clone();
    tokio::spawn(async move {
        let _keep = sh2;
        let mut rx = rx;
        if let Some(e) = expired {
            let _ = tx
                .send(Ok(event_line("ERROR", e.to_json().to_string().as_bytes())))
                .await;
            return;
        }
        for (kind, b) in initial {
            if tx
                .send(Ok(event_line(kind.as_str(), &render(&version, &b))))
                .await
                .is_err()
            {
                return;
            }
        }
        let bookmark = |rv: u64, initial_end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            let obj =
                json!({"kind": d.kind, "apiVersion": d.api_version(&version), "metadata": meta});
            event_line("BOOKMARK", obj.to_string().as_bytes())
        };
        if send_initial && bookmarks && tx.send(Ok(bookmark(start_rv, true))).await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_rv = start_rv;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(Ok(bookmark(last_rv, false))).await.is_err() {
                        return;
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= start_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        let Some(kind) = visible(&ev, res, ns.as_deref(), &ls, &fs) else { continue };
                        if !fs.is_empty() && !fs.matches(&serde_json::from_slice::<Value>(&ev.bytes).unwrap_or(Value::Null)) {
                            continue;
                        }
                        if tx.send(Ok(event_line(kind.as_str(), &render(&version, &ev.bytes)))).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let e = ApiError::expired("too old resource version: watch fell behind".into());
                        let _ = tx.send(Ok(event_line("ERROR", e.to_json().to_string().as_bytes()))).await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out);
    let mut resp = warp::reply::stream(stream).into_response();
    if let Ok(v) = "application/json".parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}
