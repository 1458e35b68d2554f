//! What the API server itself decides for pods and jobs on write: the QoS class, a Job's
//! selector and template labels, the grace period a delete gives, whether a terminating
//! pod still waits, and generated name suffixes.

use serde_json::{Value, json};

use crate::meta::uid_of;
use crate::{Shared, lock};

/// Five characters from the alphabet the real name generator uses.
pub fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The pod's QoS class from its resources.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        let full = lim.is_some_and(|l| l.contains_key("cpu") && l.contains_key("memory"))
            && req.is_none_or(|r| lim.is_some_and(|l| r.iter().all(|(k, v)| l.get(k) == Some(v))));
        if !full {
            guaranteed = false;
        }
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// The grace period a delete gives a pod.
pub fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let scheduled = pod.pointer("/spec/nodeName").is_some();
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !scheduled || matches!(phase, "Succeeded" | "Failed") {
        return 0;
    }
    let g = requested.unwrap_or_else(|| {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    });
    g.max(0)
}

/// Whether a terminating pod still waits for its grace period.
pub fn grace_pending(sh: &Shared, pod: &Value) -> bool {
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    grace > 0 && !lock(&sh.grace_expired).contains(&uid_of(pod))
}

/// Defaults the job controller's admission gives a new Job: selector and template labels.
pub fn prepare_job(job: &mut Value) {
    let uid = uid_of(job);
    let name = job
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let manual = job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if !manual {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
    }
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if template.get("metadata").is_none_or(|m| !m.is_object()) {
        template["metadata"] = json!({});
    }
    let labels = template["metadata"]
        .as_object_mut()
        .map(|m| m.entry("labels").or_insert_with(|| json!({})));
    if let Some(Value::Object(l)) = labels {
        l.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
        l.insert("batch.kubernetes.io/job-name".into(), name.clone());
        l.insert("controller-uid".into(), json!(uid));
        l.insert("job-name".into(), name);
    }
}
