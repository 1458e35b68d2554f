//! The kubelet's init containers: run one after the other, or fail and back off as the
//! pod's behaviour asks.

use serde_json::{Value, json};

use crate::ops::now;

use super::*;

/// Run a pod's init containers; false when the pod goes no further (an init container
/// failed, or another driver took over the pod).
pub(crate) async fn run_inits(
    run: &PodRun,
    inits: &[Value],
    behaviour: PodBehaviour,
    restart_policy: &str,
) -> bool {
    let (sh, ns, name, uid, token) = (
        &run.sh,
        run.ns.as_str(),
        run.name.as_str(),
        run.uid.as_str(),
        run.token,
    );
    let opts = &sh.opts;
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
        if !kubelet_write(sh, ns, name, uid, token, |s| {
            s["initContainerStatuses"] = json!(statuses)
        }) {
            return false;
        }
        container_started(sh, ns, name, c);
        if fail {
            set_logs(sh, ns, name, &cname, init_log_lines(c, true));
        }
        sleep(opts.init_delay).await;
        if fail {
            let term = terminated(1, "Error", &started);
            let mut statuses = done.clone();
            if restart_policy == "Never" {
                statuses.push(cstatus(c, term, false, 0, json!({})));
                kubelet_write(sh, ns, name, uid, token, |s| {
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
                return false;
            }
            statuses.push(cstatus(c, term.clone(), false, 0, json!({})));
            if !kubelet_write(sh, ns, name, uid, token, |s| {
                s["initContainerStatuses"] = json!(statuses.clone())
            }) {
                return false;
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
                pod_event(sh, ns, name, Some(&cname), ("Warning", "BackOff", &event));
                let mut statuses = done.clone();
                statuses.push(cstatus(
                    c,
                    waiting("CrashLoopBackOff", Some(msg)),
                    false,
                    restarts,
                    term.clone(),
                ));
                if !kubelet_write(sh, ns, name, uid, token, |s| {
                    s["initContainerStatuses"] = json!(statuses)
                }) {
                    return false;
                }
                if restarts >= 5 {
                    return false;
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
        if !kubelet_write(sh, ns, name, uid, token, |s| {
            s["initContainerStatuses"] = json!(statuses);
            if last {
                set_condition(s, "Initialized", "True", None, None);
            }
        }) {
            return false;
        }
    }
    true
}
