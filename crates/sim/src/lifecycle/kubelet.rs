//! The scheduler and kubelet stand-in: a pod goes Pending, runs its init containers, then
//! its containers, and becomes Ready, or fails the way it was asked to.

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
            container_started(&sh, &ns, &name, c);
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
                    let event = format!(
                        "Back-off restarting failed container {cname} in pod {name}_{ns}({uid})"
                    );
                    pod_event(
                        &sh,
                        &ns,
                        &name,
                        Some(&cname),
                        ("Warning", "BackOff", &event),
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
            for c in &mains {
                let (cname, image) = name_and_image(c);
                let events = [
                    ("Normal", "Pulling", format!("Pulling image \"{image}\"")),
                    (
                        "Warning",
                        "Failed",
                        format!("Failed to pull image \"{image}\": {}", pull(c)),
                    ),
                    ("Warning", "Failed", "Error: ErrImagePull".to_owned()),
                ];
                for (type_, reason, message) in &events {
                    pod_event(&sh, &ns, &name, Some(cname), (type_, reason, message));
                }
            }
            sleep(opts.backoff_delay).await;
            for c in &mains {
                let (cname, image) = name_and_image(c);
                let back_off = format!("Back-off pulling image \"{image}\"");
                pod_event(
                    &sh,
                    &ns,
                    &name,
                    Some(cname),
                    ("Normal", "BackOff", &back_off),
                );
                let error = ("Warning", "Failed", "Error: ImagePullBackOff");
                pod_event(&sh, &ns, &name, Some(cname), error);
            }
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
            for c in &mains {
                let (cname, _) = name_and_image(c);
                let error = ("Warning", "Failed", "Error: secret \"missing\" not found");
                pod_event(&sh, &ns, &name, Some(cname), error);
            }
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
            for c in &mains {
                container_started(&sh, &ns, &name, c);
            }
            let mut restarts = 1;
            loop {
                sleep(opts.backoff_delay).await;
                for c in &mains {
                    let (cname, _) = name_and_image(c);
                    let event = format!(
                        "Back-off restarting failed container {cname} in pod {name}_{ns}({uid})"
                    );
                    pod_event(&sh, &ns, &name, Some(cname), ("Warning", "BackOff", &event));
                }
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
            for c in &mains {
                container_started(&sh, &ns, &name, c);
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

/// A container's name and image.
fn name_and_image(c: &Value) -> (&str, &str) {
    (
        c.get("name").and_then(Value::as_str).unwrap_or_default(),
        c.get("image").and_then(Value::as_str).unwrap_or_default(),
    )
}

/// The kubelet's events for a container it starts: image present, created, started.
fn container_started(sh: &Arc<Shared>, ns: &str, pod: &str, c: &Value) {
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
