//! Container states and conditions in the shapes the kubelet reports them.

use serde_json::{Value, json};

use crate::ops::now;

pub(crate) fn container_id() -> String {
    format!("containerd://{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn image_id(image: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(image.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let repo = image.split(['@', ':']).next().unwrap_or(image);
    let repo = if repo.contains('/') {
        repo.to_string()
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{repo}@sha256:{hex}")
}

/// One container status.
pub(crate) fn cstatus(c: &Value, state: Value, ready: bool, restarts: i64, last: Value) -> Value {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let running_or_done = state.get("running").is_some() || state.get("terminated").is_some();
    let mut s = json!({
        "name": c.get("name").cloned().unwrap_or(Value::Null),
        "image": image,
        "imageID": if running_or_done { image_id(image) } else { String::new() },
        "ready": ready,
        "restartCount": restarts,
        "started": state.get("running").is_some(),
        "state": state,
        "lastState": last,
    });
    if running_or_done {
        s["containerID"] = json!(container_id());
    }
    s
}

pub(crate) fn waiting(reason: &str, message: Option<String>) -> Value {
    match message {
        Some(m) => json!({"waiting": {"reason": reason, "message": m}}),
        None => json!({"waiting": {"reason": reason}}),
    }
}

pub(crate) fn running() -> Value {
    json!({"running": {"startedAt": now()}})
}

pub(crate) fn terminated(code: i64, reason: &str, started: &str) -> Value {
    json!({"terminated": {
        "exitCode": code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": now(),
        "containerID": container_id(),
    }})
}

/// Set a pod/job condition, keeping lastTransitionTime when the status does not change.
pub(crate) fn set_condition(
    status: &mut Value,
    ty: &str,
    st: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if !status.is_object() {
        *status = json!({});
    }
    let conds = status
        .as_object_mut()
        .map(|m| m.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    let mut c =
        json!({"type": ty, "status": st, "lastProbeTime": null, "lastTransitionTime": now()});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    match conds.iter_mut().find(|x| x["type"] == ty) {
        Some(existing) => {
            if existing["status"] == st {
                c["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = c;
        }
        None => conds.push(c),
    }
}
