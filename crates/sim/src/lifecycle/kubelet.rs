//! The scheduler and kubelet stand-in: a pod goes Pending, runs its init containers, then
//! its containers, and becomes Ready, or fails the way it was asked to.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::ops::{self, controller_write, now, uid_of};
use crate::resources::ids;
use crate::{Shared, lock};

use super::*;

pub(crate) fn expire_grace(sh: &Arc<Shared>, ns: &str, name: &str, uid: &str, orphan: bool) {
    lock(&sh.grace_expired).insert(uid.to_string());
    lock(&sh.drivers).remove(uid);
    // The kubelet stops the containers; the job controller drops its tracking finalizer.
    let _ = controller_write(
        sh,
        ids::PODS,
        ns,
        name,
        uid,
        "kube-controller-manager",
        None,
        |p| remove_finalizer(p, JOB_FINALIZER),
    );
    ops::remove_now(sh, ids::PODS, ns, name, uid, orphan);
}

pub(crate) fn behaviour_of(sh: &Shared, name: &str, pod: &Value) -> PodBehaviour {
    if let Some(b) = lock(&sh.pod_behaviours).get(name) {
        return *b;
    }
    let marker = pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            BEHAVIOUR_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let images = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("image").and_then(Value::as_str))
                    .map(str::to_lowercase)
                    .collect()
            })
            .unwrap_or_default()
    };
    let main = images("containers");
    let init = images("initContainers");
    let has = |imgs: &[String], m: &str| marker == m || imgs.iter().any(|i| i.contains(m));
    if has(&main, "unschedulable") || has(&init, "unschedulable") {
        PodBehaviour::Unschedulable
    } else if has(&init, "initfail") {
        PodBehaviour::InitFail
    } else if has(&main, "errimagepull") || has(&init, "errimagepull") {
        PodBehaviour::ErrImagePull
    } else if has(&main, "createconfigerror") {
        PodBehaviour::CreateContainerConfigError
    } else if has(&main, "crashloop") {
        PodBehaviour::CrashLoop
    } else if marker == "neverready" {
        PodBehaviour::NeverReady
    } else {
        PodBehaviour::Normal
    }
}

/// The containers of a list, reduced to what the kubelet stand-in needs (name, image, first
/// port), so that thousands of waiting drivers stay small.
pub(crate) fn containers(pod: &Value, list: &str) -> Vec<Value> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let mut slim = json!({"name": c.get("name"), "image": c.get("image")});
                    if let Some(p) = c.pointer("/ports/0/containerPort") {
                        slim["ports"] = json!([{"containerPort": p}]);
                    }
                    slim
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Write the pod's status as the kubelet; false when the pod is gone, replaced, deleting
/// or handed to a newer driver.
pub(crate) fn kubelet_write(
    sh: &Arc<Shared>,
    ns: &str,
    name: &str,
    uid: &str,
    token: u64,
    f: impl FnOnce(&mut Value),
) -> bool {
    if !is_current(sh, uid, token) {
        return false;
    }
    let mut alive = true;
    let ok = controller_write(
        sh,
        ids::PODS,
        ns,
        name,
        uid,
        "kubelet",
        Some("status"),
        |p| {
            if p.pointer("/metadata/deletionTimestamp").is_some() {
                alive = false;
                return;
            }
            f(&mut p["status"]);
        },
    );
    ok && alive
}

/// The pod a lifecycle driver is in charge of.
pub(crate) struct PodRun {
    /// Shared state.
    pub sh: Arc<Shared>,
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
    /// The driver's token (a newer driver takes over).
    pub token: u64,
}

pub(crate) async fn drive_pod(sh: Arc<Shared>, ns: String, name: String, uid: String, token: u64) {
    let opts = sh.opts.clone();
    sleep(opts.schedule_delay).await;
    let Ok(pod) = ops::get(&sh, ids::PODS, &ns, &name) else {
        return;
    };
    if uid_of(&pod) != uid {
        return;
    }
    let behaviour = behaviour_of(&sh, &name, &pod);
    let inits = containers(&pod, "initContainers");
    let mains = containers(&pod, "containers");
    let restart_policy = pod
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
        .to_string();
    let owner_job = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| refs.iter().find(|r| r["kind"] == "Job"))
        .and_then(|r| r["name"].as_str())
        .map(str::to_string);
    let already_initialized = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Initialized" && c["status"] == "True")
        });
    let job_fail_marker = owner_job.is_some() && job_fail_marker(&pod);
    drop(pod);

    if behaviour == PodBehaviour::Unschedulable {
        const WHY: &str = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
        kubelet_write(&sh, &ns, &name, &uid, token, |s| {
            s["phase"] = json!("Pending");
            set_condition(s, "PodScheduled", "False", Some("Unschedulable"), Some(WHY));
        });
        pod_event(&sh, &ns, &name, None, ("Warning", "FailedScheduling", WHY));
        return;
    }

    // Scheduled: the binding sets the node; the kubelet reports the pod.
    if !is_current(&sh, &uid, token) {
        return;
    }
    controller_write(
        &sh,
        ids::PODS,
        &ns,
        &name,
        &uid,
        "kube-scheduler",
        None,
        |p| {
            if p.pointer("/spec/nodeName").is_none() {
                p["spec"]["nodeName"] = json!("sim-node");
            }
        },
    );
    pod_event(
        &sh,
        &ns,
        &name,
        None,
        (
            "Normal",
            "Scheduled",
            &format!("Successfully assigned {ns}/{name} to sim-node"),
        ),
    );
    let pod_ip = {
        let mut c = lock(&sh.counters);
        c.pod_ip += 1;
        format!("10.244.{}.{}", c.pod_ip / 250, c.pod_ip % 250 + 2)
    };
    let start = now();
    let init_waiting: Vec<Value> = inits
        .iter()
        .map(|c| cstatus(c, waiting("PodInitializing", None), false, 0, json!({})))
        .collect();
    let main_waiting: Vec<Value> = mains
        .iter()
        .map(|c| {
            let reason = if inits.is_empty() || already_initialized {
                "ContainerCreating"
            } else {
                "PodInitializing"
            };
            cstatus(c, waiting(reason, None), false, 0, json!({}))
        })
        .collect();
    let ok = kubelet_write(&sh, &ns, &name, &uid, token, |s| {
        // NB: a restart (new image) keeps the pod Running with its IP and start time.
        if s["phase"] != "Running" {
            s["phase"] = json!("Pending");
        }
        if s.get("podIP").is_none() {
            s["hostIP"] = json!("10.0.0.10");
            s["hostIPs"] = json!([{"ip": "10.0.0.10"}]);
            s["podIP"] = json!(pod_ip);
            s["podIPs"] = json!([{"ip": pod_ip}]);
            s["startTime"] = json!(start);
        }
        set_condition(s, "PodReadyToStartContainers", "True", None, None);
        if inits.is_empty() || already_initialized {
            set_condition(s, "Initialized", "True", None, None);
        } else {
            set_condition(
                s,
                "Initialized",
                "False",
                Some("ContainersNotInitialized"),
                Some(&format!(
                    "containers with incomplete status: [{}]",
                    names(&inits)
                )),
            );
            s["initContainerStatuses"] = json!(init_waiting);
        }
        set_condition(
            s,
            "Ready",
            "False",
            Some("ContainersNotReady"),
            Some(&format!(
                "containers with unready status: [{}]",
                names(&mains)
            )),
        );
        set_condition(
            s,
            "ContainersReady",
            "False",
            Some("ContainersNotReady"),
            Some(&format!(
                "containers with unready status: [{}]",
                names(&mains)
            )),
        );
        set_condition(s, "PodScheduled", "True", None, None);
        s["containerStatuses"] = json!(main_waiting);
    });
    if !ok {
        return;
    }
    // NB: the kubelet mounts the pod's volumes before it starts containers, and grows
    // the file system of a volume that grew meanwhile (NodeExpandVolume).
    mount_volumes(&sh, &ns, &name);
    let run = PodRun {
        sh,
        ns,
        name,
        uid,
        token,
    };
    if !already_initialized && !run_inits(&run, &inits, behaviour, &restart_policy).await {
        return;
    }
    sleep(run.sh.opts.start_delay).await;
    run_mains(
        &run,
        MainRun {
            mains: &mains,
            behaviour,
            owner_job,
            job_fail_marker,
        },
    )
    .await;
}

/// A container's name and image.
pub(crate) fn name_and_image(c: &Value) -> (&str, &str) {
    (
        c.get("name").and_then(Value::as_str).unwrap_or_default(),
        c.get("image").and_then(Value::as_str).unwrap_or_default(),
    )
}

/// The kubelet's events for a container it starts: image present, created, started.
pub(crate) fn container_started(sh: &Arc<Shared>, ns: &str, pod: &str, c: &Value) {
    let (cname, image) = name_and_image(c);
    let events = [
        (
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        ),
        ("Created", format!("Created container: {cname}")),
        ("Started", format!("Started container {cname}")),
    ];
    for (reason, message) in &events {
        pod_event(sh, ns, pod, Some(cname), ("Normal", reason, message));
    }
}

pub(crate) fn names(cs: &[Value]) -> String {
    cs.iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn job_fail_marker(pod: &Value) -> bool {
    let marker = pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            BEHAVIOUR_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        == Some("jobfail");
    marker
        || containers(pod, "containers")
            .iter()
            .chain(containers(pod, "initContainers").iter())
            .any(|c| {
                c.get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| i.to_lowercase().contains("jobfail"))
            })
}
