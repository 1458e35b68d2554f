//! What a new object gets on create: identity metadata and, for pods, what the
//! ServiceAccount and DefaultTolerationSeconds admission plugins add.

use serde_json::{Value, json};

use crate::meta::now;
use crate::resources::ResourceDef;
use crate::{Shared, admission, lock};

/// Identity metadata and the resource-specific parts a create gets.
pub(crate) fn prepare_new(sh: &Shared, d: &ResourceDef, obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
    if d.has_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    match d.plural {
        "persistentvolumeclaims" => {
            let f = meta.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(a) = f.as_array_mut()
                && !a.iter().any(|x| x == "kubernetes.io/pvc-protection")
            {
                a.push(json!("kubernetes.io/pvc-protection"));
            }
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
                && spec.get("storageClassName").is_none_or(Value::is_null)
            {
                spec.insert("storageClassName".into(), json!("standard"));
            }
            obj["status"] = json!({"phase": "Pending"});
        }
        "services" => {
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP")
                .to_string();
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                let given = spec
                    .get("clusterIP")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if ty != "ExternalName" && given != "None" && given.is_empty() {
                    let mut c = lock(&sh.counters);
                    c.cluster_ip += 1;
                    let n = c.cluster_ip;
                    let ip = format!("10.96.{}.{}", n / 250, n % 250 + 2);
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                } else if !given.is_empty() {
                    let ip = given.to_string();
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
            }
            obj["status"] = json!({"loadBalancer": {}});
        }
        "pods" => {
            let qos = admission::qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            admit_pod(obj);
        }
        "jobs" => admission::prepare_job(obj),
        "namespaces" => {
            obj["status"] = json!({"phase": "Active"});
        }
        _ => {}
    }
}

/// What the ServiceAccount and DefaultTolerationSeconds admission plugins add to a new pod:
/// the projected API token volume (unless automounting is off) and the not-ready/unreachable
/// tolerations.
pub(crate) fn admit_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        != Some(false)
    {
        let vol = format!("kube-api-access-{}", admission::random_suffix());
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(v) = volumes.as_array_mut() {
            v.push(json!({"name": vol, "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}}));
        }
        for list in ["initContainers", "containers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                    if let Some(m) = mounts.as_array_mut() {
                        m.push(json!({"name": vol, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}));
                    }
                }
            }
        }
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(t) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let tolerated = t.iter().any(|x| {
                (x["key"] == key || x.get("key").is_none())
                    && x["operator"] == "Exists"
                    && (x["effect"] == "NoExecute" || x.get("effect").is_none())
            });
            if !tolerated {
                t.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}
