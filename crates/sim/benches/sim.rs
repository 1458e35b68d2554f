//! Memory and list latency of the simulated cluster with 10,000 stored pods.
//!
//! Prints figures; run with `cargo bench --bench sim` (or `--profile dev` for a quick look).
//! Targets (issue 3): 10,000 pods under 200 MiB, a label-selector list under 20 ms.

use std::time::{Duration, Instant};

use codeserver_sim::{Sim, SimOptions};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

const PODS: usize = 10_000;
const NS: &str = "codeserver-instances";

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn pod(i: usize) -> serde_json::Value {
    let user = format!("user-{i:05}");
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("code-server-{user}"),
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/managed-by": "codeserver-service",
                "app.kubernetes.io/name": "code-server",
                "app.kubernetes.io/instance": format!("code-server-{user}"),
                "devplatform.io/user": user,
                "devplatform.io/owner": user,
                "devplatform.io/group": format!("g{}", i % 100),
            },
            "annotations": {
                "devplatform.io/user-id": format!("{user}@example.com"),
                "devplatform.io/spec-hash": "3f1c9a7e5b2d4c6e",
                "devplatform.io/template-revision": "7",
            },
        },
        "spec": {
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 1000},
            "initContainers": [{
                "name": "git-clone",
                "image": "alpine/git:2.45.2",
                "env": [{"name": "REPO_OWNER", "value": "team"}, {"name": "REPO_NAME", "value": "app"}],
                "volumeMounts": [{"name": "workspace", "mountPath": "/home/coder"}],
            }],
            "containers": [{
                "name": "code-server",
                "image": "codercom/code-server:4.96.4",
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "PASSWORD", "value": ""}],
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
                "volumeMounts": [{"name": "workspace", "mountPath": "/home/coder"}],
                "securityContext": {"allowPrivilegeEscalation": false},
            }],
            "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": format!("workspace-{user}")}}],
        }
    })
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    (p(0.5), p(0.99), v[v.len() - 1])
}

/// A pod as it looks once Running and Ready (status, conditions, managedFields of the
/// scheduler and kubelet), taken from a small simulated cluster that ran the lifecycle.
async fn settled_status() -> serde_json::Value {
    let sim = Sim::start().await.expect("sim starts");
    sim.seed(pod(0)).expect("pod seeds");
    let ok = sim
        .wait_for(
            "pods",
            NS,
            "code-server-user-00000",
            Duration::from_secs(10),
            |p| {
                p.is_some_and(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
            },
        )
        .await;
    assert!(ok, "template pod became ready");
    sim.object("pods", NS, "code-server-user-00000")
        .expect("pod")["status"]
        .clone()
}

#[tokio::main]
async fn main() {
    let status = settled_status().await;
    // NB: the lifecycle stand-ins are off: the figure is what 10,000 full pods cost to store
    // and list, not the transient state of 10,000 simulated kubelets.
    let opts = SimOptions {
        lifecycle: false,
        ..SimOptions::default()
    };
    let before = rss_bytes();
    let sim = Sim::start_with(opts).await.expect("sim starts");
    let t = Instant::now();
    for i in 0..PODS {
        let mut p = pod(i);
        p["status"] = status.clone();
        sim.seed(p).expect("pod seeds");
    }
    let seeded = t.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_bytes();
    let stored = sim.stored_bytes();
    let sample = serde_json::to_vec(
        &sim.object("pods", NS, "code-server-user-00042")
            .expect("pod"),
    )
    .map(|b| b.len())
    .unwrap_or(0);
    println!("seeded {PODS} pods (with Running/Ready status) in {seeded:?}");
    println!("one pod serialized: {sample} bytes");
    println!("stored object bytes: {:.1} MiB", stored as f64 / 1048576.0);
    println!(
        "process RSS growth with {PODS} pods: {:.1} MiB (RSS {:.1} MiB)",
        (after.saturating_sub(before)) as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    // One request to open the connection, so the figures are per request, not per connect.
    pods.list(&ListParams::default().labels("devplatform.io/user=nobody"))
        .await
        .expect("list works");
    for (label, selector, expect) in [
        ("one user", "devplatform.io/user=user-04242", 1usize),
        ("1% (group)", "devplatform.io/group=g7", PODS / 100),
        (
            "set-based, none",
            "app.kubernetes.io/name=code-server,devplatform.io/user in (nobody,none)",
            0,
        ),
    ] {
        let lp = ListParams::default().labels(selector);
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let l = pods.list(&lp).await.expect("list works");
            times.push(t.elapsed());
            assert_eq!(l.items.len(), expect);
        }
        let (p50, p99, max) = stats(times);
        println!(
            "kube list, selector {label:>16}: p50 {p50:?}, p99 {p99:?}, max {max:?} ({expect} items over {PODS} pods)"
        );
    }
}
