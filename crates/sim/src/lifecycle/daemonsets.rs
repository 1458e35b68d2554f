//! The DaemonSet controller stand-in: a DaemonSet's status follows its template and the
//! nodes, as the real controller reports it (`pkg/controller/daemon/daemon_controller.go`,
//! `updateDaemonSetStatus`; which nodes run a daemon pod: `NodeShouldRunDaemonPod` with
//! the scheduler's node-selector and taint/toleration predicates).
//!
//! NB: no daemon pods are stored (nothing here reads them); the status is what the
//! controller would report once the kubelet ran them: every eligible node scheduled and
//! updated to the current template, and ready where the node is Ready and every image of
//! the template can be pulled (an image carrying the `errimagepull` marker cannot, as for
//! pods).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::ops::{controller_write, uid_of};
use crate::resources::ids;
use crate::{Shared, lock};

/// Recomputes the status of every DaemonSet (a node came, changed or went).
pub(crate) fn every_daemonset_status(sh: &Arc<Shared>) {
    let names: Vec<(String, String)> = {
        let store = lock(&sh.store);
        store
            .iter(ids::DAEMONSETS, None)
            .map(|(k, _)| (k.1.clone(), k.2.clone()))
            .collect()
    };
    for (ns, name) in names {
        daemonset_status(sh, &ns, &name);
    }
}

/// Writes the status of DaemonSet `ns`/`name` from its template and the nodes.
pub(crate) fn daemonset_status(sh: &Arc<Shared>, ns: &str, name: &str) {
    let (ds, nodes) = {
        let store = lock(&sh.store);
        let Some(ds) = store.get(ids::DAEMONSETS, ns, name).map(|s| s.value()) else {
            return;
        };
        let nodes: Vec<Value> = store
            .iter(ids::NODES, None)
            .map(|(_, s)| s.value())
            .collect();
        (ds, nodes)
    };
    if ds.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let pod = ds
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or(json!({}));
    let eligible: Vec<&Value> = nodes.iter().filter(|n| should_run(&pod, n)).collect();
    let pullable = images(&pod)
        .iter()
        .all(|image| !image.contains("errimagepull"));
    let ready = if pullable {
        eligible.iter().filter(|n| node_ready(n)).count()
    } else {
        0
    };
    let desired = eligible.len();
    let generation = ds
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let uid = uid_of(&ds);
    controller_write(
        sh,
        ids::DAEMONSETS,
        ns,
        name,
        &uid,
        "kube-controller-manager",
        Some("status"),
        |d| {
            d["status"] = json!({
                "currentNumberScheduled": desired,
                "desiredNumberScheduled": desired,
                "numberMisscheduled": 0,
                "numberReady": ready,
                "numberAvailable": ready,
                "numberUnavailable": desired - ready,
                "updatedNumberScheduled": desired,
                "observedGeneration": generation,
            });
        },
    );
}

/// Every container and init container image of a pod spec.
fn images(pod: &Value) -> Vec<String> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| pod[*list].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}

/// Whether the node's Ready condition is True.
fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Whether a daemon pod of `pod` belongs on `node`: its nodeSelector matches the node's
/// labels, and it tolerates every NoSchedule and NoExecute taint of the node
/// (`v1helper.TolerationsTolerateTaint`). A daemon pod tolerates an unschedulable node
/// (the controller adds `node.kubernetes.io/unschedulable:NoSchedule`).
fn should_run(pod: &Value, node: &Value) -> bool {
    if node.pointer("/metadata/deletionTimestamp").is_some() {
        return false;
    }
    let labels = &node["metadata"]["labels"];
    let selected = pod["nodeSelector"]
        .as_object()
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    if !selected {
        return false;
    }
    let tolerations = pod["tolerations"].as_array().cloned().unwrap_or_default();
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")))
        .filter(|t| t["key"] != "node.kubernetes.io/unschedulable")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

/// `Toleration.ToleratesTaint`: an empty key with `Exists` tolerates everything; else the
/// keys match, the effect is empty or the same, and `Exists` or the values are equal.
fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = toleration["effect"].as_str().unwrap_or_default();
    if !effect.is_empty() && Some(effect) != taint["effect"].as_str() {
        return false;
    }
    let key = toleration["key"].as_str().unwrap_or_default();
    let operator = toleration["operator"].as_str().unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    if Some(key) != taint["key"].as_str() {
        return false;
    }
    match operator {
        "Exists" => true,
        _ => {
            toleration["value"].as_str().unwrap_or_default()
                == taint["value"].as_str().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_pods_go_where_selected_and_tolerated() {
        let node = json!({
            "metadata": {"labels": {"pool": "gpu"}},
            "spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]},
        });
        assert!(!should_run(&json!({}), &node), "an untolerated taint");
        let tolerant = json!({"tolerations": [{"key": "gpu", "operator": "Exists"}]});
        assert!(should_run(&tolerant, &node));
        let elsewhere = json!({
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"operator": "Exists"}],
        });
        assert!(!should_run(&elsewhere, &node), "another pool");
        let wrong_value = json!({"tolerations": [{"key": "gpu", "value": "no"}]});
        assert!(!should_run(&wrong_value, &node));
        let soft = json!({"spec": {"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}});
        assert!(
            should_run(&json!({}), &soft),
            "a soft taint does not keep it away"
        );
    }
}
