//! Volume expansion after a claim's storage request grew: the external-resizer's part
//! (the controller grows the volume) and the kubelet's (it grows the file system when a
//! pod mounts the volume), written on the claim's status the way upstream writes it
//! (`pkg/volume/util/resize_util.go`: `MarkResizeInProgressWithResizer`,
//! `MarkForFSResize`, `MarkFSResizeFinished`; with `RecoverVolumeExpansionFailure`, on by
//! default from 1.32, `status.allocatedResources` and `status.allocatedResourceStatuses`).
//!
//! 1. The resizer takes the claim: condition `Resizing` (True), `allocatedResources.storage`
//!    the new request, `allocatedResourceStatuses.storage` `ControllerResizeInProgress`,
//!    event `Resizing`.
//! 2. The volume grew; a file system volume needs the node's part: `Resizing` is replaced
//!    by `FileSystemResizePending` ("Waiting for user to (re-)start a pod to finish file
//!    system resize of volume on node."), `allocatedResourceStatuses.storage`
//!    `NodeResizePending`, event `FileSystemResizeRequired`. `status.capacity` still has
//!    the old size.
//! 3. When the kubelet next mounts the volume for a pod (a pod started after step 2; the
//!    simulated kubelet does not expand volumes in use), it grows the file system:
//!    `status.capacity` becomes the allocated size, the resize conditions and the
//!    allocated status go, event `FileSystemResizeSuccessful` on the pod.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::Shared;
use crate::ops::{self, controller_write, now, uid_of};
use crate::quantity::quantity_of;
use crate::resources::ids;

use super::*;

/// The message upstream's `MarkForFSResize` sets.
pub(crate) const FS_RESIZE_PENDING_MESSAGE: &str =
    "Waiting for user to (re-)start a pod to finish file system resize of volume on node.";
/// The external-resizer's field manager (the CSI resizer sidecar).
const RESIZER: &str = "csi-resizer";

/// The external-resizer's work on claim `ns`/`name` (uid `uid`) whose request grew.
pub(crate) async fn expand_claim(sh: Arc<Shared>, ns: String, name: String, uid: String) {
    sleep(sh.opts.pvc_bind_delay).await;
    let mut started = false;
    let ok = controller_write(
        &sh,
        ids::PVCS,
        &ns,
        &name,
        &uid,
        RESIZER,
        Some("status"),
        |p| {
            let Some(want) = p.pointer("/spec/resources/requests/storage").cloned() else {
                return;
            };
            let has = p.pointer("/status/capacity/storage").and_then(quantity_of);
            if p.pointer("/status/phase").and_then(Value::as_str) != Some("Bound")
                || quantity_of(&want) <= has
            {
                return;
            }
            let status = &mut p["status"];
            status["allocatedResources"]["storage"] = want;
            status["allocatedResourceStatuses"]["storage"] = json!("ControllerResizeInProgress");
            merge_resize_conditions(status, Some(condition("Resizing", None)));
            started = true;
        },
    );
    if !ok || !started {
        return;
    }
    claim_event(
        &sh,
        &ns,
        &name,
        "Resizing",
        "External resizer is resizing volume",
    );
    sleep(sh.opts.pvc_bind_delay).await;
    let mut grown = false;
    controller_write(
        &sh,
        ids::PVCS,
        &ns,
        &name,
        &uid,
        RESIZER,
        Some("status"),
        |p| {
            if p.pointer("/status/allocatedResourceStatuses/storage")
                != Some(&json!("ControllerResizeInProgress"))
            {
                return;
            }
            let status = &mut p["status"];
            status["allocatedResourceStatuses"]["storage"] = json!("NodeResizePending");
            merge_resize_conditions(
                status,
                Some(condition(
                    "FileSystemResizePending",
                    Some(FS_RESIZE_PENDING_MESSAGE),
                )),
            );
            grown = true;
        },
    );
    if grown {
        claim_event(
            &sh,
            &ns,
            &name,
            "FileSystemResizeRequired",
            "Require file system resize of volume on node",
        );
    }
}

/// The kubelet mounting the volumes of pod `ns`/`pod_name`: a claim whose volume grew and
/// waits for its file system (`NodeResizePending`) gets it grown.
pub(crate) fn mount_volumes(sh: &Arc<Shared>, ns: &str, pod_name: &str) {
    let Ok(pod) = ops::get(sh, ids::PODS, ns, pod_name) else {
        return;
    };
    let claims: Vec<String> = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName")?.as_str())
        .map(str::to_owned)
        .collect();
    for claim in claims {
        let Ok(pvc) = ops::get(sh, ids::PVCS, ns, &claim) else {
            continue;
        };
        let mut size = None;
        controller_write(
            sh,
            ids::PVCS,
            ns,
            &claim,
            &uid_of(&pvc),
            "kubelet",
            Some("status"),
            |p| {
                if p.pointer("/status/allocatedResourceStatuses/storage")
                    != Some(&json!("NodeResizePending"))
                {
                    return;
                }
                let Some(allocated) = p.pointer("/status/allocatedResources/storage").cloned()
                else {
                    return;
                };
                let status = &mut p["status"];
                status["capacity"]["storage"] = allocated.clone();
                if let Some(statuses) = status
                    .get_mut("allocatedResourceStatuses")
                    .and_then(Value::as_object_mut)
                {
                    statuses.remove("storage");
                }
                if status["allocatedResourceStatuses"]
                    .as_object()
                    .is_some_and(Map::is_empty)
                    && let Some(s) = status.as_object_mut()
                {
                    s.remove("allocatedResourceStatuses");
                }
                merge_resize_conditions(status, None);
                size = Some(allocated);
            },
        );
        if let Some(size) = size {
            let message = format!(
                "MountVolume.NodeExpandVolume succeeded for volume \"pvc-{}\" {pod_name}, new size {}",
                uid_of(&pvc),
                size.as_str().unwrap_or_default()
            );
            pod_event(
                sh,
                ns,
                pod_name,
                None,
                ("Normal", "FileSystemResizeSuccessful", &message),
            );
        }
    }
}

/// A claim condition of `type_`, status True, as of now.
fn condition(type_: &str, message: Option<&str>) -> Value {
    let mut c = json!({"type": type_, "status": "True", "lastProbeTime": null, "lastTransitionTime": now()});
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// Upstream's `MergeResizeConditionOnPVC`: the resize conditions (`Resizing`,
/// `FileSystemResizePending`) become `new` (none for `None`); others stay.
fn merge_resize_conditions(status: &mut Value, new: Option<Value>) {
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            !matches!(
                c["type"].as_str(),
                Some("Resizing" | "FileSystemResizePending")
            )
        })
        .collect();
    conditions.extend(new);
    if !conditions.is_empty() {
        status["conditions"] = Value::Array(conditions);
    } else if let Some(s) = status.as_object_mut() {
        s.remove("conditions");
    }
}

/// A Normal event of the external-resizer about claim `ns`/`name`.
fn claim_event(sh: &Arc<Shared>, ns: &str, name: &str, reason: &str, message: &str) {
    let Ok(pvc) = ops::get(sh, ids::PVCS, ns, name) else {
        return;
    };
    let volume = pvc
        .pointer("/spec/volumeName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    record_event(
        sh,
        "PersistentVolumeClaim",
        &pvc,
        &EventSpec {
            type_: "Normal",
            reason,
            message: &format!("{message} {volume}"),
            component: "external-resizer sim.devplatform.io",
            field_path: None,
        },
    );
}
