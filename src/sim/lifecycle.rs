//! Standing in for the scheduler, the kubelet and the controllers: pod phases and container
//! states, pod logs, graceful deletion, PVC binding and protection, jobs, garbage
//! collection and namespace termination.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::ops::{self, DeleteParams, WriteParams, controller_write, now, uid_of};
use super::resources::{ResId, ids};
use super::{GracePeriod, Shared, lock};

/// How a pod behaves, chosen per pod by the handle, an annotation or an image marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodBehaviour {
    /// Pending → init containers → Running and Ready.
    Normal,
    /// Containers wait with ErrImagePull, then ImagePullBackOff (image marker `errimagepull`).
    ErrImagePull,
    /// Containers start, exit 1 and go to CrashLoopBackOff (image marker `crashloop`).
    CrashLoop,
    /// Containers wait with CreateContainerConfigError (image marker `createconfigerror`).
    CreateContainerConfigError,
    /// The first init container exits 1 with git-style error lines in its log
    /// (init image marker `initfail`).
    InitFail,
    /// The scheduler finds no node: PodScheduled False, reason Unschedulable
    /// (image marker `unschedulable`).
    Unschedulable,
    /// Containers run but never become Ready.
    NeverReady,
}

/// How a Job's pod ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobBehaviour {
    /// The pod exits 0 and the Job completes.
    Succeed,
    /// Every pod exits 1 until the backoff limit is reached (image marker `jobfail`).
    Fail,
}

/// Annotation that selects a pod behaviour (`errimagepull`, `crashloop`, `createconfigerror`,
/// `initfail`, `unschedulable`, `neverready`, `jobfail`).
pub const BEHAVIOUR_ANNOTATION: &str = "sim.devplatform.io/behaviour";

/// Work to start after a write was committed (run outside the store lock).
#[derive(Debug, Clone)]
pub enum Hook {
    /// An object was created.
    Created {
        /// Resource.
        res: ResId,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
    },
    /// An object got a deletionTimestamp.
    Deleting {
        /// Resource.
        res: ResId,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
        /// Grace period in seconds (pods).
        grace: i64,
        /// Orphan dependents.
        orphan: bool,
    },
    /// A pod's images changed (the kubelet restarts its containers) or a claim grew (the
    /// volume is expanded).
    SpecChanged {
        /// Resource.
        res: ResId,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
    },
    /// An object was removed from the store.
    Removed {
        /// Resource.
        res: ResId,
        /// Namespace.
        ns: String,
        /// uid.
        uid: String,
        /// Orphan dependents.
        orphan: bool,
    },
}

/// Start the work hooks ask for.
pub(crate) fn run(sh: &Arc<Shared>, hooks: Vec<Hook>) {
    if hooks.is_empty() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for h in hooks {
        let sh = sh.clone();
        match h {
            Hook::Created { .. } if !sh.opts.lifecycle => {}
            Hook::Created { res, ns, name, uid } => match res {
                ids::PODS => {
                    let token = new_token(&sh, &uid);
                    rt.spawn(drive_pod(sh, ns, name, uid, token));
                }
                ids::JOBS => {
                    rt.spawn(drive_job(sh, ns, name, uid));
                }
                ids::PVCS => {
                    rt.spawn(bind_pvc(sh, ns, name, uid));
                }
                _ => {}
            },
            Hook::Deleting {
                res,
                ns,
                name,
                uid,
                grace,
                orphan,
            } => match res {
                ids::PODS => {
                    let delay = match sh.opts.grace {
                        _ if grace <= 0 => Duration::ZERO,
                        GracePeriod::Fixed(d) => d,
                        GracePeriod::Real => Duration::from_secs(grace as u64),
                    };
                    rt.spawn(async move {
                        tokio::time::sleep(delay).await;
                        expire_grace(&sh, &ns, &name, &uid, orphan);
                    });
                }
                ids::PVCS => {
                    rt.spawn(async move { pvc_sweep(&sh, &ns) });
                }
                ids::NAMESPACES => {
                    rt.spawn(terminate_namespace(sh, name, uid));
                }
                _ => {}
            },
            Hook::SpecChanged { .. } if !sh.opts.lifecycle => {}
            Hook::SpecChanged { res, ns, name, uid } => match res {
                ids::PODS => {
                    let token = new_token(&sh, &uid);
                    rt.spawn(drive_pod(sh, ns, name, uid, token));
                }
                ids::PVCS => {
                    rt.spawn(async move {
                        sleep(sh.opts.pvc_bind_delay).await;
                        controller_write(
                            &sh,
                            ids::PVCS,
                            &ns,
                            &name,
                            &uid,
                            "kube-controller-manager",
                            Some("status"),
                            |p| {
                                if let Some(q) =
                                    p.pointer("/spec/resources/requests/storage").cloned()
                                {
                                    p["status"]["capacity"]["storage"] = q;
                                }
                            },
                        );
                    });
                }
                _ => {}
            },
            Hook::Removed {
                res,
                ns,
                uid,
                orphan,
            } => {
                lock(&sh.drivers).remove(&uid);
                lock(&sh.grace_expired).remove(&uid);
                rt.spawn(async move {
                    collect_garbage(&sh, &ns, &uid, orphan);
                    if res == ids::PODS {
                        pvc_sweep(&sh, &ns);
                    }
                });
            }
        }
    }
}

/// Five characters from the alphabet the real name generator uses.
pub fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn new_token(sh: &Shared, uid: &str) -> u64 {
    let token = {
        let mut c = lock(&sh.counters);
        c.driver += 1;
        c.driver
    };
    lock(&sh.drivers).insert(uid.to_string(), token);
    token
}

fn is_current(sh: &Shared, uid: &str, token: u64) -> bool {
    lock(&sh.drivers).get(uid) == Some(&token)
}

/// Restart the lifecycle of an existing pod (after its behaviour was changed).
pub(crate) fn restart_pod(sh: &Arc<Shared>, ns: &str, name: &str) {
    let Ok(pod) = ops::get(sh, ids::PODS, ns, name) else {
        return;
    };
    let uid = uid_of(&pod);
    let token = new_token(sh, &uid);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(drive_pod(
            sh.clone(),
            ns.to_string(),
            name.to_string(),
            uid,
            token,
        ));
    }
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

fn expire_grace(sh: &Arc<Shared>, ns: &str, name: &str, uid: &str, orphan: bool) {
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
        |p| {
            if let Some(f) = p
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                f.retain(|x| x != JOB_FINALIZER);
                if f.is_empty()
                    && let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    m.remove("finalizers");
                }
            }
        },
    );
    ops::remove_now(sh, ids::PODS, ns, name, uid, orphan);
}

const JOB_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

fn behaviour_of(sh: &Shared, name: &str, pod: &Value) -> PodBehaviour {
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
fn containers(pod: &Value, list: &str) -> Vec<Value> {
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

fn container_id() -> String {
    format!("containerd://{}", uuid::Uuid::new_v4().simple())
}

fn image_id(image: &str) -> String {
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
fn cstatus(c: &Value, state: Value, ready: bool, restarts: i64, last: Value) -> Value {
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

fn waiting(reason: &str, message: Option<String>) -> Value {
    match message {
        Some(m) => json!({"waiting": {"reason": reason, "message": m}}),
        None => json!({"waiting": {"reason": reason}}),
    }
}

fn running() -> Value {
    json!({"running": {"startedAt": now()}})
}

fn terminated(code: i64, reason: &str, started: &str) -> Value {
    json!({"terminated": {
        "exitCode": code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": now(),
        "containerID": container_id(),
    }})
}

/// Set a pod/job condition, keeping lastTransitionTime when the status does not change.
fn set_condition(
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

fn set_logs(sh: &Shared, ns: &str, pod: &str, container: &str, lines: Vec<String>) {
    lock(&sh.logs).insert(
        (ns.to_string(), pod.to_string(), container.to_string()),
        lines,
    );
}

fn ts() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The log lines of a container that started normally, derived from the pod (so that
/// thousands of healthy pods keep no log text in memory).
pub(crate) fn default_logs(pod: &Value, container: &str) -> Option<Vec<String>> {
    for (list, statuses, init) in [
        ("containers", "containerStatuses", false),
        ("initContainers", "initContainerStatuses", true),
    ] {
        let Some(spec) = pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        else {
            continue;
        };
        let status = pod
            .pointer(&format!("/status/{statuses}"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["name"] == container))?;
        let started = status
            .pointer("/state/running/startedAt")
            .or_else(|| status.pointer("/state/terminated/startedAt"))
            .or_else(|| status.pointer("/lastState/terminated/startedAt"))
            .and_then(Value::as_str)?;
        let t = started.replace('Z', ".000Z");
        return Some(if init {
            init_log_lines(spec, false)
        } else {
            main_log_lines(spec, &t)
        });
    }
    None
}

fn main_log_lines(c: &Value, t: &str) -> Vec<String> {
    let name = c.get("name").and_then(Value::as_str).unwrap_or("main");
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let port = c
        .pointer("/ports/0/containerPort")
        .and_then(Value::as_i64)
        .unwrap_or(8080);
    if image.contains("code-server") {
        vec![
            format!("[{t}] info  code-server 4.96.4 b1e5c3cd6d6e1ad3e4e1a1e6c6e2a3b1d8e3a2f9"),
            format!("[{t}] info  Using user-data-dir /home/coder/.local/share/code-server"),
            format!("[{t}] info  Using config file /home/coder/.config/code-server/config.yaml"),
            format!("[{t}] info  HTTP server listening on http://0.0.0.0:{port}/"),
            format!("[{t}] info    - Authentication is disabled"),
            format!("[{t}] info    - Not serving HTTPS"),
            format!(
                "[{t}] info  Session server listening on /home/coder/.local/share/code-server/code-server-ipc.sock"
            ),
        ]
    } else {
        vec![
            format!("{t} starting {name} ({image})"),
            format!("{t} {name} listening on :{port}"),
        ]
    }
}

fn init_log_lines(c: &Value, fail: bool) -> Vec<String> {
    let name = c.get("name").and_then(Value::as_str).unwrap_or("init");
    if fail {
        vec![
            "Cloning into '/home/coder/workspace/repo'...".to_string(),
            "remote: Repository not found.".to_string(),
            "fatal: repository not found".to_string(),
            format!("{name}: clone failed, exiting with status 1"),
        ]
    } else {
        vec![
            "Cloning into '/home/coder/workspace/repo'...".to_string(),
            format!("{name}: workspace ready"),
        ]
    }
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// Write the pod's status as the kubelet; false when the pod is gone, replaced, deleting
/// or handed to a newer driver.
fn kubelet_write(
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

async fn drive_pod(sh: Arc<Shared>, ns: String, name: String, uid: String, token: u64) {
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
        kubelet_write(&sh, &ns, &name, &uid, token, |s| {
            s["phase"] = json!("Pending");
            set_condition(
                s,
                "PodScheduled",
                "False",
                Some("Unschedulable"),
                Some(
                    "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
                ),
            );
        });
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

    // Init containers, one after the other.
    if !already_initialized {
        let mut done: Vec<Value> = Vec::new();
        for (i, c) in inits.iter().enumerate() {
            let cname = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let started = now();
            let fail = behaviour == PodBehaviour::InitFail
                && (c
                    .get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|im| im.contains("initfail"))
                    || !inits.iter().any(|x| {
                        x.get("image")
                            .and_then(Value::as_str)
                            .is_some_and(|im| im.contains("initfail"))
                    }) && i == 0);
            let mut statuses = done.clone();
            statuses.push(cstatus(c, running(), false, 0, json!({})));
            statuses.extend(
                inits[i + 1..]
                    .iter()
                    .map(|c| cstatus(c, waiting("PodInitializing", None), false, 0, json!({}))),
            );
            if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                s["initContainerStatuses"] = json!(statuses)
            }) {
                return;
            }
            if fail {
                set_logs(&sh, &ns, &name, &cname, init_log_lines(c, true));
            }
            sleep(opts.init_delay).await;
            if fail {
                let term = terminated(1, "Error", &started);
                let mut statuses = done.clone();
                if restart_policy == "Never" {
                    statuses.push(cstatus(c, term, false, 0, json!({})));
                    kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                        s["phase"] = json!("Failed");
                        s["initContainerStatuses"] = json!(statuses);
                        set_condition(
                            s,
                            "Initialized",
                            "False",
                            Some("ContainersNotInitialized"),
                            Some(&format!("containers with incomplete status: [{cname}]")),
                        );
                    });
                    return;
                }
                statuses.push(cstatus(c, term.clone(), false, 0, json!({})));
                if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                    s["initContainerStatuses"] = json!(statuses.clone())
                }) {
                    return;
                }
                sleep(opts.backoff_delay).await;
                let mut restarts = 1;
                loop {
                    let msg = format!(
                        "back-off {}s restarting failed container={cname} pod={name}_{ns}({uid})",
                        10 * restarts
                    );
                    let mut statuses = done.clone();
                    statuses.push(cstatus(
                        c,
                        waiting("CrashLoopBackOff", Some(msg)),
                        false,
                        restarts,
                        term.clone(),
                    ));
                    if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                        s["initContainerStatuses"] = json!(statuses)
                    }) {
                        return;
                    }
                    if restarts >= 5 {
                        return;
                    }
                    sleep(opts.backoff_delay * 4).await;
                    restarts += 1;
                }
            }
            done.push(cstatus(
                c,
                terminated(0, "Completed", &started),
                false,
                0,
                json!({}),
            ));
            let statuses = done.clone();
            let last = i + 1 == inits.len();
            if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                s["initContainerStatuses"] = json!(statuses);
                if last {
                    set_condition(s, "Initialized", "True", None, None);
                }
            }) {
                return;
            }
        }
    }

    sleep(opts.start_delay).await;
    match behaviour {
        PodBehaviour::ErrImagePull => {
            let pull = |c: &Value| {
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                format!(
                    "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
                )
            };
            let st: Vec<Value> = mains
                .iter()
                .map(|c| {
                    cstatus(
                        c,
                        waiting("ErrImagePull", Some(pull(c))),
                        false,
                        0,
                        json!({}),
                    )
                })
                .collect();
            if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                s["containerStatuses"] = json!(st)
            }) {
                return;
            }
            sleep(opts.backoff_delay).await;
            let st: Vec<Value> = mains
                .iter()
                .map(|c| {
                    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                    cstatus(
                        c,
                        waiting(
                            "ImagePullBackOff",
                            Some(format!("Back-off pulling image \"{image}\"")),
                        ),
                        false,
                        0,
                        json!({}),
                    )
                })
                .collect();
            kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                s["containerStatuses"] = json!(st)
            });
        }
        PodBehaviour::CreateContainerConfigError => {
            let st: Vec<Value> = mains
                .iter()
                .map(|c| {
                    cstatus(
                        c,
                        waiting(
                            "CreateContainerConfigError",
                            Some("secret \"missing\" not found".into()),
                        ),
                        false,
                        0,
                        json!({}),
                    )
                })
                .collect();
            kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                s["containerStatuses"] = json!(st)
            });
        }
        PodBehaviour::CrashLoop => {
            let started = now();
            let st: Vec<Value> = mains
                .iter()
                .map(|c| cstatus(c, running(), false, 0, json!({})))
                .collect();
            for c in &mains {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                let mut lines = main_log_lines(c, &ts());
                lines.push(format!(
                    "{} fatal: simulated crash, exiting with status 1",
                    ts()
                ));
                set_logs(&sh, &ns, &name, cname, lines);
            }
            if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                s["phase"] = json!("Running");
                s["containerStatuses"] = json!(st);
            }) {
                return;
            }
            let mut restarts = 1;
            loop {
                sleep(opts.backoff_delay).await;
                let st: Vec<Value> = mains
                    .iter()
                    .map(|c| {
                        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                        let msg = format!("back-off {}s restarting failed container={cname} pod={name}_{ns}({uid})", 10 * restarts);
                        cstatus(c, waiting("CrashLoopBackOff", Some(msg)), false, restarts, terminated(1, "Error", &started))
                    })
                    .collect();
                if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                    s["containerStatuses"] = json!(st)
                }) || restarts >= 5
                {
                    return;
                }
                restarts += 1;
                sleep(opts.backoff_delay * 4).await;
            }
        }
        PodBehaviour::Normal
        | PodBehaviour::NeverReady
        | PodBehaviour::InitFail
        | PodBehaviour::Unschedulable => {
            let started = now();
            let st: Vec<Value> = mains
                .iter()
                .map(|c| cstatus(c, running(), false, 0, json!({})))
                .collect();
            if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                s["phase"] = json!("Running");
                s["containerStatuses"] = json!(st.clone());
            }) {
                return;
            }
            if behaviour == PodBehaviour::NeverReady {
                return;
            }
            sleep(opts.ready_delay).await;
            let ready: Vec<Value> = st
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    s["ready"] = json!(true);
                    s
                })
                .collect();
            if !kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                s["containerStatuses"] = json!(ready.clone());
                set_condition(s, "ContainersReady", "True", None, None);
                set_condition(s, "Ready", "True", None, None);
            }) {
                return;
            }
            if let Some(job) = owner_job {
                sleep(opts.job_duration).await;
                let fail = lock(&sh.job_behaviours)
                    .get(&job)
                    .map_or(job_fail_marker, |b| *b == JobBehaviour::Fail);
                let code = if fail { 1 } else { 0 };
                for c in &mains {
                    let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    let lines = if fail {
                        vec![
                            format!("{} sync: cloning repository", ts()),
                            "Cloning into '/home/coder/workspace/repo'...".to_string(),
                            "remote: Repository not found.".to_string(),
                            "fatal: repository not found".to_string(),
                            format!("{} sync: failed with exit code 1", ts()),
                        ]
                    } else {
                        vec![
                            format!("{} sync: cloning repository", ts()),
                            "Cloning into '/home/coder/workspace/repo'...".to_string(),
                            format!("{} sync: done", ts()),
                        ]
                    };
                    set_logs(&sh, &ns, &name, cname, lines);
                }
                let st: Vec<Value> = mains
                    .iter()
                    .map(|c| {
                        cstatus(
                            c,
                            terminated(code, if fail { "Error" } else { "Completed" }, &started),
                            false,
                            0,
                            json!({}),
                        )
                    })
                    .collect();
                kubelet_write(&sh, &ns, &name, &uid, token, |s| {
                    s["phase"] = json!(if fail { "Failed" } else { "Succeeded" });
                    s["containerStatuses"] = json!(st);
                    let reason = if fail { "PodFailed" } else { "PodCompleted" };
                    set_condition(s, "Ready", "False", Some(reason), None);
                    set_condition(s, "ContainersReady", "False", Some(reason), None);
                    set_condition(s, "PodReadyToStartContainers", "False", None, None);
                });
            }
        }
    }
}

fn names(cs: &[Value]) -> String {
    cs.iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn job_fail_marker(pod: &Value) -> bool {
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

async fn drive_job(sh: Arc<Shared>, ns: String, name: String, uid: String) {
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
                if done || !alive {
                    return;
                }
                sleep(opts.backoff_delay).await;
            }
        }
    }
}

fn set_job_condition(status: &mut Value, ty: &str, reason: &str, message: &str) {
    set_condition(status, ty, "True", Some(reason), Some(message));
    if let Some(c) = status
        .get_mut("conditions")
        .and_then(Value::as_array_mut)
        .and_then(|cs| cs.iter_mut().find(|c| c["type"] == ty))
    {
        c["lastProbeTime"] = json!(now());
    }
}

async fn bind_pvc(sh: Arc<Shared>, ns: String, name: String, uid: String) {
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
}

/// Release `kubernetes.io/pvc-protection` on deleting claims no pod uses any more.
pub(crate) fn pvc_sweep(sh: &Arc<Shared>, ns: &str) {
    let candidates: Vec<(String, String)> = {
        let store = lock(&sh.store);
        let deleting: Vec<(String, String)> = store
            .iter(ids::PVCS, Some(ns))
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
            |p| {
                if let Some(f) = p
                    .pointer_mut("/metadata/finalizers")
                    .and_then(Value::as_array_mut)
                {
                    f.retain(|x| x != "kubernetes.io/pvc-protection");
                    if f.is_empty()
                        && let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut)
                    {
                        m.remove("finalizers");
                    }
                }
            },
        );
    }
}

fn collect_garbage(sh: &Arc<Shared>, ns: &str, uid: &str, orphan: bool) {
    let deps = {
        let store = lock(&sh.store);
        ops::dependents(&store, ns, uid)
    };
    for (res, dns, dname) in deps {
        if orphan {
            let duid = ops::get(sh, res, &dns, &dname)
                .map(|v| uid_of(&v))
                .unwrap_or_default();
            controller_write(
                sh,
                res,
                &dns,
                &dname,
                &duid,
                "kube-controller-manager",
                None,
                |o| {
                    ops::drop_owner_ref(o, uid);
                },
            );
        } else {
            let dp = DeleteParams {
                propagation: Some("Background".into()),
                ..DeleteParams::default()
            };
            let _ = ops::delete(sh, res, &dns, &dname, &dp);
        }
    }
}

async fn terminate_namespace(sh: Arc<Shared>, name: String, uid: String) {
    loop {
        let mut left = 0usize;
        for res in 0..super::resources::RESOURCES.len() as ResId {
            if !super::resources::def(res).namespaced {
                continue;
            }
            let names: Vec<String> = {
                let store = lock(&sh.store);
                store
                    .iter(res, Some(&name))
                    .map(|(k, _)| k.2.clone())
                    .collect()
            };
            left += names.len();
            for n in names {
                let _ = ops::delete(&sh, res, &name, &n, &DeleteParams::default());
            }
        }
        if left == 0 {
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }
    let mut store = lock(&sh.store);
    if store
        .get(ids::NAMESPACES, "", &name)
        .is_some_and(|s| uid_of(&s.value()) == uid)
    {
        store.remove(ids::NAMESPACES, "", &name);
    }
}
