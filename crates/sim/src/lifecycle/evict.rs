//! The kubelet's eviction of a pod (node pressure, or a pod over its ephemeral-storage
//! limit): its containers are killed and the pod object stays, failed, until someone
//! deletes it.
//!
//! As kubelet's eviction manager does it (`pkg/kubelet/eviction/eviction_manager.go`,
//! `evictPod`, and `pkg/kubelet/eviction/helpers.go`): `status.phase: Failed`,
//! `status.reason: Evicted` (`eviction.Reason`), the eviction message, and (since 1.26,
//! `PodDisruptionConditions`) a `DisruptionTarget` condition with reason
//! `TerminationByKubelet`; the containers terminate and the pod is no longer ready.

use std::sync::Arc;

use serde_json::json;

use crate::ops::{now, uid_of};
use crate::{Shared, lock};

use super::kubelet::kubelet_write;

/// Evicts the pod `ns`/`name` with `message`; false when there is no such pod.
pub(crate) fn evict_pod(sh: &Arc<Shared>, ns: &str, name: &str, message: &str) -> bool {
    let Ok(pod) = crate::ops::get(sh, crate::resources::ids::PODS, ns, name) else {
        return false;
    };
    let uid = uid_of(&pod);
    // NB: the pod's driver stops here; a newer token writes the final status.
    let token = super::new_token(sh, &uid);
    let at = now();
    let written = kubelet_write(sh, ns, name, &uid, token, |status| {
        status["phase"] = json!("Failed");
        status["reason"] = json!("Evicted");
        status["message"] = json!(message);
        let mut conditions: Vec<serde_json::Value> = status["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["type"] != "DisruptionTarget")
            .map(|mut c| {
                if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                    c["status"] = json!("False");
                    c["reason"] = json!("PodFailed");
                    c["lastTransitionTime"] = json!(at);
                }
                c
            })
            .collect();
        conditions.push(json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "TerminationByKubelet",
            "message": message,
            "lastTransitionTime": at,
        }));
        status["conditions"] = json!(conditions);
        if let Some(containers) = status["containerStatuses"].as_array_mut() {
            for c in containers {
                c["ready"] = json!(false);
                c["started"] = json!(false);
                c["state"] = json!({"terminated": {
                    "exitCode": 137,
                    "reason": "Error",
                    "startedAt": c.pointer("/state/running/startedAt").cloned().unwrap_or(json!(at)),
                    "finishedAt": at,
                }});
            }
        }
    });
    lock(&sh.drivers).remove(&uid);
    written
}
