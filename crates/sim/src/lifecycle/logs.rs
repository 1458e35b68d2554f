//! Pod log lines: stored for failures and crashes, derived from the pod otherwise.

use serde_json::Value;

use crate::{Shared, lock};

pub(crate) fn set_logs(sh: &Shared, ns: &str, pod: &str, container: &str, lines: Vec<String>) {
    lock(&sh.logs).insert(
        (ns.to_string(), pod.to_string(), container.to_string()),
        lines,
    );
}

pub(crate) fn ts() -> String {
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

pub(crate) fn main_log_lines(c: &Value, t: &str) -> Vec<String> {
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

pub(crate) fn init_log_lines(c: &Value, fail: bool) -> Vec<String> {
    let name = c.get("name").and_then(Value::as_str).unwrap_or("init");
    if fail {
        // NB: the lines the templates' clone script writes around git's own.
        vec![
            "cloning repo".to_string(),
            "Cloning into '/home/coder/workspace/repo'...".to_string(),
            "remote: Repository not found.".to_string(),
            "fatal: repository 'http://gitea:3000/devteam/repo.git/' not found".to_string(),
            "error: cloning repo failed".to_string(),
            format!("{name}: clone failed, exiting with status 1"),
        ]
    } else {
        vec![
            "Cloning into '/home/coder/workspace/repo'...".to_string(),
            format!("{name}: workspace ready"),
        ]
    }
}
