//! The Job controller stand-in: one pod at a time until success or the backoff limit.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Shared;
use crate::admission::random_suffix;
use crate::ops::{self, DeleteParams, WriteParams, controller_write, now, uid_of};
use crate::resources::ids;

use super::*;

pub(crate) const JOB_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

pub(crate) async fn drive_job(sh: Arc<Shared>, ns: String, name: String, uid: String) {
    let opts = sh.opts.clone();
    sleep(opts.schedule_delay).await;
    let Ok(job) = ops::get(&sh, ids::JOBS, &ns, &name) else {
        return;
    };
    if uid_of(&job) != uid || job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let backoff_limit = job
        .pointer("/spec/backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(6);
    let start = now();
    let mut failed = 0i64;
    loop {
        let pod_name = format!("{name}-{}", random_suffix());
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": job.pointer("/spec/template/metadata").cloned().unwrap_or(json!({})),
            "spec": job.pointer("/spec/template/spec").cloned().unwrap_or(json!({})),
        });
        pod["metadata"]["name"] = json!(pod_name);
        pod["metadata"]["namespace"] = json!(ns);
        pod["metadata"]["finalizers"] = json!([JOB_FINALIZER]);
        pod["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
        let p = WriteParams {
            field_manager: Some("kube-controller-manager".into()),
            version: "v1".into(),
            ..WriteParams::default()
        };
        let Ok(created) = ops::create(&sh, ids::PODS, &ns, pod, &p) else {
            return;
        };
        let pod_uid = uid_of(&created);
        let active = controller_write(
            &sh,
            ids::JOBS,
            &ns,
            &name,
            &uid,
            "kube-controller-manager",
            Some("status"),
            |j| {
                j["status"]["startTime"] = json!(start);
                j["status"]["active"] = json!(1);
                j["status"]["ready"] = json!(0);
                j["status"]["terminating"] = json!(0);
                j["status"]["uncountedTerminatedPods"] = json!({});
                if failed > 0 {
                    j["status"]["failed"] = json!(failed);
                }
            },
        );
        if !active {
            return;
        }
        // Wait for the pod to finish.
        let phase = loop {
            sleep(Duration::from_millis(10).max(opts.ready_delay / 4)).await;
            let Ok(p) = ops::get(&sh, ids::PODS, &ns, &pod_name) else {
                break None;
            };
            if uid_of(&p) != pod_uid {
                break None;
            }
            match p.pointer("/status/phase").and_then(Value::as_str) {
                Some("Succeeded") => break Some(true),
                Some("Failed") => break Some(false),
                _ => {}
            }
            if p.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            {
                controller_write(
                    &sh,
                    ids::JOBS,
                    &ns,
                    &name,
                    &uid,
                    "kube-controller-manager",
                    Some("status"),
                    |j| {
                        j["status"]["ready"] = json!(1);
                    },
                );
            }
        };
        // The controller counted the pod: drop the tracking finalizer.
        controller_write(
            &sh,
            ids::PODS,
            &ns,
            &pod_name,
            &pod_uid,
            "kube-controller-manager",
            None,
            |p| {
                if let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("finalizers");
                }
            },
        );
        match phase {
            Some(true) => {
                controller_write(
                    &sh,
                    ids::JOBS,
                    &ns,
                    &name,
                    &uid,
                    "kube-controller-manager",
                    Some("status"),
                    |j| {
                        let s = &mut j["status"];
                        s["active"] = json!(0);
                        s["ready"] = json!(0);
                        s["succeeded"] = json!(1);
                        s["completionTime"] = json!(now());
                        if let Some(m) = s.as_object_mut() {
                            m.remove("active");
                        }
                        set_job_condition(
                            s,
                            "SuccessCriteriaMet",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                        );
                        set_job_condition(
                            s,
                            "Complete",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                        );
                    },
                );
                expire_after_ttl(&sh, &job, &ns, &name, &uid).await;
                return;
            }
            None => return,
            Some(false) => {
                failed += 1;
                let done = failed > backoff_limit;
                let alive = controller_write(
                    &sh,
                    ids::JOBS,
                    &ns,
                    &name,
                    &uid,
                    "kube-controller-manager",
                    Some("status"),
                    |j| {
                        let s = &mut j["status"];
                        s["failed"] = json!(failed);
                        s["ready"] = json!(0);
                        if let Some(m) = s.as_object_mut() {
                            m.remove("active");
                        }
                        if done {
                            set_job_condition(
                                s,
                                "FailureTarget",
                                "BackoffLimitExceeded",
                                "Job has reached the specified backoff limit",
                            );
                            set_job_condition(
                                s,
                                "Failed",
                                "BackoffLimitExceeded",
                                "Job has reached the specified backoff limit",
                            );
                        }
                    },
                );
                if done && alive {
                    expire_after_ttl(&sh, &job, &ns, &name, &uid).await;
                }
                if done || !alive {
                    return;
                }
                sleep(opts.backoff_delay).await;
            }
        }
    }
}

/// The TTL-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is
/// deleted (with its pods) once that many seconds have passed.
async fn expire_after_ttl(sh: &Arc<Shared>, job: &Value, ns: &str, name: &str, uid: &str) {
    let Some(ttl) = job
        .pointer("/spec/ttlSecondsAfterFinished")
        .and_then(Value::as_u64)
    else {
        return;
    };
    sleep(Duration::from_secs(ttl)).await;
    let current = ops::get(sh, ids::JOBS, ns, name).map(|j| uid_of(&j));
    if current.as_deref() == Ok(uid) {
        let dp = DeleteParams {
            propagation: Some("Background".into()),
            ..DeleteParams::default()
        };
        delete_if_present(sh, ids::JOBS, ns, name, &dp);
    }
}

pub(crate) fn set_job_condition(status: &mut Value, ty: &str, reason: &str, message: &str) {
    set_condition(status, ty, "True", Some(reason), Some(message));
    if let Some(c) = status
        .get_mut("conditions")
        .and_then(Value::as_array_mut)
        .and_then(|cs| cs.iter_mut().find(|c| c["type"] == ty))
    {
        c["lastProbeTime"] = json!(now());
    }
}
