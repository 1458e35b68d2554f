//! The kubelet's main containers once the pod is initialised: running and Ready, or the
//! failure its behaviour asks for; a Job's pod runs to completion.

use serde_json::{Value, json};

use crate::lock;
use crate::ops::now;

use super::*;

/// What the main containers of a pod do.
pub(crate) struct MainRun<'a> {
    /// The pod's containers.
    pub mains: &'a [Value],
    /// How the pod behaves.
    pub behaviour: PodBehaviour,
    /// The Job that owns the pod, if any.
    pub owner_job: Option<String>,
    /// Whether the Job's pod is to fail.
    pub job_fail_marker: bool,
}

/// Run a pod's main containers as its behaviour asks.
pub(crate) async fn run_mains(run: &PodRun, main: MainRun<'_>) {
    let (sh, ns, name, uid, token) = (
        &run.sh,
        run.ns.as_str(),
        run.name.as_str(),
        run.uid.as_str(),
        run.token,
    );
    let opts = &sh.opts;
    let MainRun {
        mains,
        behaviour,
        owner_job,
        job_fail_marker,
    } = main;
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
            if !kubelet_write(sh, ns, name, uid, token, |s| {
                s["containerStatuses"] = json!(st)
            }) {
                return;
            }
            for c in mains {
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
                    pod_event(sh, ns, name, Some(cname), (type_, reason, message));
                }
            }
            sleep(opts.backoff_delay).await;
            for c in mains {
                let (cname, image) = name_and_image(c);
                let back_off = format!("Back-off pulling image \"{image}\"");
                pod_event(sh, ns, name, Some(cname), ("Normal", "BackOff", &back_off));
                let error = ("Warning", "Failed", "Error: ImagePullBackOff");
                pod_event(sh, ns, name, Some(cname), error);
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
            kubelet_write(sh, ns, name, uid, token, |s| {
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
            kubelet_write(sh, ns, name, uid, token, |s| {
                s["containerStatuses"] = json!(st)
            });
            for c in mains {
                let (cname, _) = name_and_image(c);
                let error = ("Warning", "Failed", "Error: secret \"missing\" not found");
                pod_event(sh, ns, name, Some(cname), error);
            }
        }
        PodBehaviour::CrashLoop => {
            let started = now();
            let st: Vec<Value> = mains
                .iter()
                .map(|c| cstatus(c, running(), false, 0, json!({})))
                .collect();
            for c in mains {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                let mut lines = main_log_lines(c, &ts());
                lines.push(format!(
                    "{} fatal: simulated crash, exiting with status 1",
                    ts()
                ));
                set_logs(sh, ns, name, cname, lines);
            }
            if !kubelet_write(sh, ns, name, uid, token, |s| {
                s["phase"] = json!("Running");
                s["containerStatuses"] = json!(st);
            }) {
                return;
            }
            for c in mains {
                container_started(sh, ns, name, c);
            }
            let mut restarts = 1;
            loop {
                sleep(opts.backoff_delay).await;
                for c in mains {
                    let (cname, _) = name_and_image(c);
                    let event = format!(
                        "Back-off restarting failed container {cname} in pod {name}_{ns}({uid})"
                    );
                    pod_event(sh, ns, name, Some(cname), ("Warning", "BackOff", &event));
                }
                let st: Vec<Value> = mains
                    .iter()
                    .map(|c| {
                        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                        let msg = format!("back-off {}s restarting failed container={cname} pod={name}_{ns}({uid})", 10 * restarts);
                        cstatus(c, waiting("CrashLoopBackOff", Some(msg)), false, restarts, terminated(1, "Error", &started))
                    })
                    .collect();
                if !kubelet_write(sh, ns, name, uid, token, |s| {
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
            if !kubelet_write(sh, ns, name, uid, token, |s| {
                s["phase"] = json!("Running");
                s["containerStatuses"] = json!(st.clone());
            }) {
                return;
            }
            for c in mains {
                container_started(sh, ns, name, c);
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
            if !kubelet_write(sh, ns, name, uid, token, |s| {
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
                for c in mains {
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
                    set_logs(sh, ns, name, cname, lines);
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
                kubelet_write(sh, ns, name, uid, token, |s| {
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
