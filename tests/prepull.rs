//! Images pulled ahead, against the simulated cluster: the Lease holder applies the
//! `codeserver-prepull` DaemonSet with every image a workspace of the active templates
//! uses (once per template revision), follows a template change, deletes it when turned
//! off; its status (ready and total nodes, the simulated DaemonSet controller's) reaches
//! `templates { prepull }` for admins and `codeserver_prepull_nodes`.

#[path = "support/mod.rs"]
mod support;
#[path = "support/world.rs"]
mod world;

use std::time::Duration;

use codeserver_service::{
    activity::{Culler, IdlePolicy, IdleSettings},
    reconcile::PREPULL_NAME,
};
use jiff::Timestamp;
use serde_json::{Value, json};
use world::{NS, World, ok};

fn culler(w: &World) -> Culler {
    let settings = IdleSettings {
        check_interval: Duration::from_secs(60),
        policy: IdlePolicy::default(),
        check_concurrency: 2,
        healthz_url: "http://{service}.{namespace}.invalid/healthz".to_owned(),
        lease_name: "codeserver-service-idle-culler".to_owned(),
        pod_name: Some("replica-a".to_owned()),
    };
    Culler::new(w.reconciler.clone(), &settings, None)
        .unwrap()
        .with_prepull_gauges(w.metrics.prepull_nodes.clone())
}

fn daemonset(w: &World) -> Option<Value> {
    w.sim().object("daemonsets", NS, PREPULL_NAME)
}

fn images(ds: &Value) -> Vec<String> {
    ds["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["image"].as_str().unwrap().to_owned())
        .collect()
}

async fn status_settled(w: &World, ready: i64, total: i64) {
    let settled = w
        .sim()
        .wait_for(
            "daemonsets",
            NS,
            PREPULL_NAME,
            Duration::from_secs(5),
            |d| {
                d.is_some_and(|d| {
                    d["status"]["numberReady"] == ready
                        && d["status"]["desiredNumberScheduled"] == total
                })
            },
        )
        .await;
    assert!(settled, "{:?}", daemonset(w).map(|d| d["status"].clone()));
}

const PREPULL: &str = "{ templates { prepull { images readyNodes totalNodes } } }";

#[tokio::test]
async fn the_lease_holder_pulls_every_workspace_image_on_every_node() {
    let w = World::start().await;
    let culler = culler(&w);
    let first = culler.check(Timestamp::now()).await.unwrap();
    let applied = first.prepulled.expect("applied at the first check");
    assert!(
        applied
            .iter()
            .any(|i| i.starts_with("codercom/code-server")),
        "{applied:?}"
    );
    assert!(
        applied.iter().any(|i| i.starts_with("alpine/git")),
        "{applied:?}"
    );
    let ds = daemonset(&w).expect("the DaemonSet");
    assert_eq!(images(&ds), applied);
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["containers"][0]["image"], "registry.k8s.io/pause:3.10");
    for c in pod["initContainers"].as_array().unwrap() {
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert!(c["resources"]["limits"]["ephemeral-storage"].is_string());
    }
    status_settled(&w, 1, 1).await;

    // Unchanged templates: not applied again.
    let second = culler.check(Timestamp::now()).await.unwrap();
    assert_eq!(second.prepulled, None);
    let text = w.metrics.encode();
    assert!(
        text.contains("codeserver_prepull_nodes{state=\"ready\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("codeserver_prepull_nodes{state=\"total\"} 1"),
        "{text}"
    );

    // Admins see it; users do not.
    let admin = w.admin_token("root");
    let body = w.query(Some(&admin), PREPULL).await;
    let shown = &ok(&body, "templates")["prepull"];
    assert_eq!(shown["readyNodes"], 1);
    assert_eq!(shown["totalNodes"], 1);
    assert_eq!(shown["images"], json!(applied));
    let alice = w.token("alice");
    let body = w.query(Some(&alice), PREPULL).await;
    assert_eq!(ok(&body, "templates")["prepull"], Value::Null);
}

#[tokio::test]
async fn nodes_count_where_workspaces_may_run_and_images_that_cannot_be_pulled_show() {
    let w = World::start().await;
    culler(&w).check(Timestamp::now()).await.unwrap();
    status_settled(&w, 1, 1).await;
    // A second Ready node counts; a tainted one the workspaces do not tolerate does not.
    for (name, taints) in [
        ("node-b", json!([])),
        (
            "gpu-node",
            json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
        ),
    ] {
        w.sim()
            .seed(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "spec": {"taints": taints},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }))
            .unwrap();
    }
    // NB: seeding skips the controllers: a template change makes the controller count again.
    w.templates.swap(support::templates::edited_templates(|d| {
        support::templates::replace_in(
            d,
            "values.yaml",
            "  sidecars: []",
            "  sidecars: [{name: helper, image: registry.example/helper-errimagepull:1, resources: {limits: {ephemeral-storage: 1Gi}}}]",
        );
    }));
    let report = culler(&w).check(Timestamp::now()).await.unwrap();
    let applied = report.prepulled.expect("a new revision is applied");
    assert!(
        applied.contains(&"registry.example/helper-errimagepull:1".to_owned()),
        "{applied:?}"
    );
    // Two nodes should have the images; none has them all (one cannot be pulled).
    status_settled(&w, 0, 2).await;
}

#[tokio::test]
async fn turned_off_the_daemonset_goes() {
    let w = World::start().await;
    culler(&w).check(Timestamp::now()).await.unwrap();
    assert!(daemonset(&w).is_some());
    w.templates.swap(support::templates::edited_templates(|d| {
        support::templates::replace_in(
            d,
            "values.yaml",
            "prepull:\n",
            "prepull:\n  enabled: false\n",
        );
        support::templates::replace_in(
            d,
            "values.yaml",
            "  enabled: true\n  # The image its pods",
            "  # The image its pods",
        );
    }));
    let report = culler(&w).check(Timestamp::now()).await.unwrap();
    assert_eq!(report.prepulled, Some(Vec::new()));
    let gone = w
        .sim()
        .wait_for(
            "daemonsets",
            NS,
            PREPULL_NAME,
            Duration::from_secs(5),
            |d| d.is_none(),
        )
        .await;
    assert!(gone);
    let admin = w.admin_token("root");
    let body = w.query(Some(&admin), PREPULL).await;
    assert_eq!(ok(&body, "templates")["prepull"], Value::Null);
}

#[tokio::test]
async fn a_profile_with_its_own_nodes_gets_its_images_there_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("profiles.yaml");
    std::fs::write(
        &file,
        r#"
profiles:
  - name: standard
  - name: gpu
    image: codercom/code-server:gpu-test
    nodeSelector: {pool: gpu}
    tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]
defaultProfile: standard
"#,
    )
    .unwrap();
    let templates = codeserver_service::render::Templates::builtin()
        .unwrap()
        .with_values_files(&[file])
        .unwrap();
    let w = World::builder().templates(templates).start().await;
    w.sim()
        .seed(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "gpu-node", "labels": {"pool": "gpu"}},
            "spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
    let report = culler(&w).check(Timestamp::now()).await.unwrap();
    let applied = report.prepulled.expect("applied");
    assert!(
        applied.contains(&"codercom/code-server:gpu-test".to_owned()),
        "{applied:?}"
    );
    let pod = daemonset(&w).unwrap()["spec"]["template"]["spec"].clone();
    // The profiles disagree on nodes: no selector; the GPU pool's taint is tolerated.
    assert_eq!(pod["nodeSelector"], json!({}), "{pod}");
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    // Both nodes should have the images.
    status_settled(&w, 2, 2).await;
}
