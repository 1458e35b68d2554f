//! The simulated cluster driven by the real kube client (and kubectl when present).

use std::time::Duration;

use codeserver_sim::{Fault, JobBehaviour, PodBehaviour, Sim, SimOptions};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use kube::core::ApiResource;
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

mod api;
mod apply;
mod fidelity;
mod gateway;
mod jobs;
mod kubectl;
mod lifecycle;
mod oidc;

const NS: &str = "codeserver-instances";

const MANAGER: &str = "codeserver-service";

fn pod_manifest(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": "code-server", "devplatform.io/user": name}},
        "spec": {
            "initContainers": [{"name": "git-clone", "image": "alpine/git:2.45.2"}],
            "containers": [{
                "name": "code-server",
                "image": image,
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "A", "value": "1"}],
            }],
        }
    })
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Applies the pod `name` of [`pod_manifest`] and waits until it is ready.
async fn ready_pod(pods: &Api<Pod>, name: &str, image: &str) -> Pod {
    pods.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&pod_manifest(name, image)),
    )
    .await
    .unwrap();
    wait_ready(pods, name).await
}

async fn wait_ready(pods: &Api<Pod>, name: &str) -> Pod {
    let cond = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(pods.clone(), name, cond),
    )
    .await
    .expect("pod became ready in time")
    .expect("watch works");
    got.expect("pod exists")
}

async fn wait_pod(sim: &Sim, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let ok = sim
        .wait_for("pods", NS, name, Duration::from_secs(5), |p| {
            p.is_some_and(&pred)
        })
        .await;
    let pod = sim.object("pods", NS, name).unwrap_or(Value::Null);
    assert!(ok, "pod {name} never matched: {pod:#}");
    pod
}

fn waiting_reason(p: &Value, list: &str) -> String {
    p["status"][list][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A GET with a bare client, to see bodies kube would interpret.
async fn raw_get(base: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code: u16 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (code, body)
}
