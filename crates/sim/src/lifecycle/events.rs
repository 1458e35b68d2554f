//! core/v1 Events as the scheduler and the kubelet record them: one object per
//! (involved object, type, reason, message), its `count` and `lastTimestamp` bumped when it
//! happens again (client-go's event correlator).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::Shared;
use crate::ops::{self, WriteParams, controller_write, now, uid_of};
use crate::resources::ids;

/// What happened to an object, for [`record_event`].
pub(crate) struct EventSpec<'a> {
    /// `Normal` or `Warning`.
    pub type_: &'a str,
    /// The machine-readable reason (`Scheduled`, `Pulling`, `BackOff`, ...).
    pub reason: &'a str,
    /// For people.
    pub message: &'a str,
    /// The reporting component (`default-scheduler`, `kubelet`).
    pub component: &'a str,
    /// The container the event is about (`spec.containers{name}`), if any.
    pub field_path: Option<String>,
}

/// Records `event` about `object` (a live object of `kind`) in its namespace, or bumps the
/// count of the same event recorded before.
pub(crate) fn record_event(sh: &Arc<Shared>, kind: &str, object: &Value, event: &EventSpec<'_>) {
    let meta = &object["metadata"];
    let (Some(ns), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str()) else {
        return;
    };
    let uid = meta["uid"].as_str().unwrap_or_default();
    let key = format!(
        "{uid}/{}/{}/{}/{}",
        event.type_,
        event.reason,
        event.message,
        event.field_path.as_deref().unwrap_or_default()
    );
    // NB: real names are `<object>.<hex timestamp>`; a hash of the correlation key keeps
    // repeats on one object.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let event_name = format!("{name}.{hash:016x}");
    let stamp = now();
    let bumped = ops::get(sh, ids::EVENTS, ns, &event_name)
        .ok()
        .is_some_and(|existing| {
            controller_write(
                sh,
                ids::EVENTS,
                ns,
                &event_name,
                &uid_of(&existing),
                event.component,
                None,
                |e| {
                    let count = e["count"].as_i64().unwrap_or(1);
                    e["count"] = json!(count + 1);
                    e["lastTimestamp"] = json!(stamp);
                },
            )
        });
    if bumped {
        return;
    }
    let mut involved = json!({
        "kind": kind,
        "namespace": ns,
        "name": name,
        "uid": uid,
        "apiVersion": object["apiVersion"].as_str().unwrap_or("v1"),
        "resourceVersion": meta["resourceVersion"],
    });
    if let Some(path) = &event.field_path {
        involved["fieldPath"] = json!(path);
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name, "namespace": ns},
        "involvedObject": involved,
        "reason": event.reason,
        "message": event.message,
        "source": {"component": event.component, "host": "sim-node"},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": event.type_,
        "eventTime": null,
        "reportingComponent": event.component,
        "reportingInstance": "sim-node",
    });
    let params = WriteParams {
        field_manager: Some(event.component.to_owned()),
        version: "v1".into(),
        ..WriteParams::default()
    };
    let _ = ops::create(sh, ids::EVENTS, ns, body, &params);
}

/// Records an event the kubelet reports about container `container` of `pod`.
pub(crate) fn pod_event(
    sh: &Arc<Shared>,
    ns: &str,
    name: &str,
    container: Option<&str>,
    (type_, reason, message): (&str, &str, &str),
) {
    let Ok(pod) = ops::get(sh, ids::PODS, ns, name) else {
        return;
    };
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let field_path = container.map(|c| {
        let list = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|x| x["name"] == c));
        if list {
            format!("spec.initContainers{{{c}}}")
        } else {
            format!("spec.containers{{{c}}}")
        }
    });
    let component = if reason == "Scheduled" || reason == "FailedScheduling" {
        "default-scheduler"
    } else {
        "kubelet"
    };
    record_event(
        sh,
        "Pod",
        &pod,
        &EventSpec {
            type_,
            reason,
            message,
            component,
            field_path,
        },
    );
}
