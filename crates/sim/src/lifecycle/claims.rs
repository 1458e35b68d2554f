//! The PersistentVolumeClaim binder and the `kubernetes.io/pvc-protection` controller.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::ops::{self, controller_write, uid_of};
use crate::resources::ids;
use crate::{Shared, lock};

use super::*;

pub(crate) async fn bind_pvc(sh: Arc<Shared>, ns: String, name: String, uid: String) {
    sleep(sh.opts.pvc_bind_delay).await;
    let volume = format!("pvc-{uid}");
    let ok = controller_write(
        &sh,
        ids::PVCS,
        &ns,
        &name,
        &uid,
        "kube-controller-manager",
        None,
        |p| {
            p["spec"]["volumeName"] = json!(volume);
            if p.pointer("/metadata/annotations").is_none() {
                p["metadata"]["annotations"] = json!({});
            }
            p["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
            p["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        },
    );
    if !ok {
        return;
    }
    controller_write(
        &sh,
        ids::PVCS,
        &ns,
        &name,
        &uid,
        "kube-controller-manager",
        Some("status"),
        |p| {
            let modes = p.pointer("/spec/accessModes").cloned().unwrap_or(json!([]));
            let storage = p
                .pointer("/spec/resources/requests/storage")
                .cloned()
                .unwrap_or(Value::Null);
            p["status"] =
                json!({"phase": "Bound", "accessModes": modes, "capacity": {"storage": storage}});
        },
    );
    // NB: the external provisioner reports the volume it made on the claim.
    if let Ok(pvc) = ops::get(&sh, ids::PVCS, &ns, &name) {
        record_event(
            &sh,
            "PersistentVolumeClaim",
            &pvc,
            &EventSpec {
                type_: "Normal",
                reason: "ProvisioningSucceeded",
                message: &format!("Successfully provisioned volume {volume}"),
                component: "sim.devplatform.io/provisioner",
                field_path: None,
            },
        );
    }
}

/// Release `kubernetes.io/pvc-protection` on deleting claims no pod uses any more.
pub(crate) fn pvc_sweep(sh: &Arc<Shared>, ns: &str) {
    let candidates: Vec<(String, String)> = {
        let store = lock(&sh.store);
        let deleting: Vec<(String, String)> = store
            .iter(ids::PVCS, Some(ns))
            // NB: a byte check first; parsing every claim on every pod removal is too slow
            // with thousands of claims.
            .filter(|(_, s)| {
                s.bytes
                    .windows(b"deletionTimestamp".len())
                    .any(|w| w == b"deletionTimestamp")
            })
            .map(|(k, s)| (k.2.clone(), s.value()))
            .filter(|(_, v)| v.pointer("/metadata/deletionTimestamp").is_some())
            .map(|(n, v)| (n, uid_of(&v)))
            .collect();
        if deleting.is_empty() {
            return;
        }
        let mut used: Vec<String> = Vec::new();
        for (_, s) in store.iter(ids::PODS, Some(ns)) {
            let v = s.value();
            let phase = v
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if matches!(phase, "Succeeded" | "Failed") {
                continue;
            }
            for vol in v
                .pointer("/spec/volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(c) = vol
                    .pointer("/persistentVolumeClaim/claimName")
                    .and_then(Value::as_str)
                {
                    used.push(c.to_string());
                }
            }
        }
        deleting
            .into_iter()
            .filter(|(n, _)| !used.contains(n))
            .collect()
    };
    for (name, uid) in candidates {
        controller_write(
            sh,
            ids::PVCS,
            ns,
            &name,
            &uid,
            "kube-controller-manager",
            None,
            |p| remove_finalizer(p, "kubernetes.io/pvc-protection"),
        );
    }
}
