//! The simulated cluster driven by the real kube client (and kubectl when present).

use std::time::Duration;

use codeserver_service::sim::{Fault, JobBehaviour, PodBehaviour, Sim, SimOptions};
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

#[tokio::test]
async fn crud_selectors_and_status_bodies() {
    let sim = Sim::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), NS);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "one", "labels": {"tier": "a", "user": "x"}},
        "data": {"k": "v"}
    }))
    .unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1: u64 = created
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let mut two = cm.clone();
    two.metadata.name = Some("two".into());
    two.metadata.labels = Some([("tier".to_string(), "b".to_string())].into());
    let two = cms.create(&PostParams::default(), &two).await.unwrap();
    assert!(
        two.metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > rv1
    );

    // AlreadyExists, exactly like the real server.
    let err = api_error(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "AlreadyExists");
    assert_eq!(err.message, "configmaps \"one\" already exists");

    // NotFound body.
    let err = api_error(cms.get("nope").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"nope\" not found");
    let details = err.details.unwrap();
    assert_eq!(details.name, "nope");
    assert_eq!(details.kind, "configmaps");

    // Selectors.
    let names = |l: Vec<ConfigMap>| -> Vec<String> {
        l.into_iter().map(|c| c.metadata.name.unwrap()).collect()
    };
    let sel = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(cms.list(&sel("tier=a")).await.unwrap().items),
        vec!["one"]
    );
    assert_eq!(
        names(cms.list(&sel("tier!=a")).await.unwrap().items),
        vec!["two"]
    );
    assert_eq!(
        names(cms.list(&sel("tier in (a,b)")).await.unwrap().items),
        vec!["one", "two"]
    );
    assert_eq!(
        names(cms.list(&sel("tier notin (a)")).await.unwrap().items),
        vec!["two"]
    );
    assert_eq!(
        names(cms.list(&sel("user")).await.unwrap().items),
        vec!["one"]
    );
    assert_eq!(
        names(cms.list(&sel("!user")).await.unwrap().items),
        vec!["two"]
    );
    let by_name = ListParams::default().fields("metadata.name=two");
    assert_eq!(names(cms.list(&by_name).await.unwrap().items), vec!["two"]);
    let page = cms.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let next = page.metadata.continue_.clone().expect("continue token");
    let rest = cms
        .list(&ListParams::default().limit(1).continue_token(&next))
        .await
        .unwrap();
    assert_eq!(names(rest.items), vec!["two"]);

    // Namespace must exist.
    let missing: Api<ConfigMap> = Api::namespaced(sim.client(), "nowhere");
    let err = api_error(
        missing
            .create(&PostParams::default(), &cm)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nowhere\" not found");

    // Delete returns a Status for config maps, 404 afterwards.
    let res = cms.delete("one", &DeleteParams::default()).await.unwrap();
    assert!(res.is_right());
    let err = api_error(
        cms.delete("one", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(sim.count("delete", "configmaps"), 2);
    assert_eq!(sim.count("create", "configmaps"), 4);
}

#[tokio::test]
async fn server_side_apply_ownership_conflicts_force_and_removal() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let manifest = pod_manifest("code-server-alice", "codercom/code-server:4.96.4");
    let pp = PatchParams::apply(MANAGER).force();
    let pod = pods
        .patch("code-server-alice", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    let mf = pod.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some(MANAGER));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    assert_eq!(mf[0].fields_type.as_deref(), Some("FieldsV1"));
    let fields = serde_json::to_value(mf[0].fields_v1.as_ref().unwrap()).unwrap();
    let c = &fields["f:spec"]["f:containers"]["k:{\"name\":\"code-server\"}"];
    assert_eq!(c["."], json!({}));
    assert_eq!(c["f:image"], json!({}));
    assert_eq!(
        c["f:ports"]["k:{\"containerPort\":8080,\"protocol\":\"TCP\"}"]["f:name"],
        json!({})
    );
    assert!(
        fields["f:spec"].get("f:restartPolicy").is_none(),
        "defaults are not owned by the applier"
    );
    // Defaults.
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0]
            .protocol
            .as_deref(),
        Some("TCP")
    );
    assert_eq!(
        spec.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );

    // Re-applying the same thing is a no-op: same resourceVersion.
    let again = pods
        .patch("code-server-alice", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        pod.metadata.resource_version
    );

    // Another manager touching an owned field conflicts, with the real message and cause.
    let other = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "code-server-alice", "labels": {"devplatform.io/user": "mallory"}}});
    let err = api_error(
        pods.patch(
            "code-server-alice",
            &PatchParams::apply("other-manager"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"codeserver-service\": .metadata.labels.devplatform.io/user"
    );
    let cause = &err.details.unwrap().causes[0];
    assert_eq!(cause.reason, "FieldManagerConflict");
    assert_eq!(cause.field, ".metadata.labels.devplatform.io/user");
    // Force moves ownership.
    let forced = pods
        .patch(
            "code-server-alice",
            &PatchParams::apply("other-manager").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.labels()["devplatform.io/user"], "mallory");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .map(|m| m.manager.clone().unwrap())
        .collect();
    assert_eq!(managers, vec![MANAGER, "other-manager"]);

    // A manager that stops applying a field it alone owns removes it...
    let mut fewer = manifest.clone();
    fewer["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app.kubernetes.io/name");
    fewer["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("devplatform.io/user");
    let pruned = pods
        .patch("code-server-alice", &pp, &Patch::Apply(&fewer))
        .await
        .unwrap();
    assert!(!pruned.labels().contains_key("app.kubernetes.io/name"));
    // ...but a field another manager still owns stays (other-manager owns the user label now).
    assert_eq!(pruned.labels()["devplatform.io/user"], "mallory");

    // Pod specs are immutable except images: dropping env is refused like the real server does.
    let mut no_env = fewer.clone();
    no_env["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    let err = api_error(
        pods.patch("code-server-alice", &pp, &Patch::Apply(&no_env))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert!(err.message.starts_with("Pod \"code-server-alice\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"), "{}", err.message);
    assert_eq!(err.details.unwrap().causes[0].field, "spec");
    // ...while an image change goes through.
    let mut new_image = fewer.clone();
    new_image["spec"]["containers"][0]["image"] = json!("codercom/code-server:4.97.0");
    let updated = pods
        .patch("code-server-alice", &pp, &Patch::Apply(&new_image))
        .await
        .unwrap();
    assert_eq!(
        updated.spec.unwrap().containers[0].image.as_deref(),
        Some("codercom/code-server:4.97.0")
    );

    // List elements merge by key and go when their applier drops them (Service ports).
    let svcs: Api<Service> = Api::namespaced(sim.client(), NS);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "code-server-alice"},
        "spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]}});
    let s1 = svcs
        .patch("code-server-alice", &pp, &Patch::Apply(&svc))
        .await
        .unwrap();
    let spec1 = s1.spec.clone().unwrap();
    assert_eq!(spec1.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec1.session_affinity.as_deref(), Some("None"));
    assert!(spec1.cluster_ip.as_deref().unwrap().starts_with("10.96."));
    let ports = spec1.ports.unwrap();
    assert_eq!(
        ports[1].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9090))
    );
    let mut one_port = svc.clone();
    one_port["spec"]["ports"].as_array_mut().unwrap().pop();
    let s2 = svcs
        .patch("code-server-alice", &pp, &Patch::Apply(&one_port))
        .await
        .unwrap();
    let spec2 = s2.spec.unwrap();
    assert_eq!(spec2.ports.unwrap().len(), 1);
    assert_eq!(spec2.cluster_ip, spec1.cluster_ip, "clusterIP is kept");

    // Applied bodies with managedFields are refused.
    let mut bad = manifest.clone();
    bad["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    let err = api_error(
        pods.patch("code-server-alice", &pp, &Patch::Apply(&bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn pod_lifecycle_logs_and_graceful_delete() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let manifest = pod_manifest("code-server-bob", "codercom/code-server:4.96.4");
    pods.patch(
        "code-server-bob",
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap();
    let pod = wait_ready(&pods, "code-server-bob").await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.is_some());
    let init = &status.init_container_statuses.unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );
    assert!(status.container_statuses.unwrap()[0].ready);

    // Logs per container, with tail_lines.
    let lp = LogParams {
        container: Some("code-server".into()),
        tail_lines: Some(1),
        ..LogParams::default()
    };
    let tail = pods.logs("code-server-bob", &lp).await.unwrap();
    assert_eq!(tail.lines().count(), 1);
    let all = pods
        .logs(
            "code-server-bob",
            &LogParams {
                container: Some("code-server".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert!(
        all.contains("HTTP server listening on http://0.0.0.0:8080/"),
        "{all}"
    );
    // One main container: it is the default; init container logs by name.
    let default = pods
        .logs("code-server-bob", &LogParams::default())
        .await
        .unwrap();
    assert_eq!(default, all);
    let init_logs = pods
        .logs(
            "code-server-bob",
            &LogParams {
                container: Some("git-clone".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert!(init_logs.starts_with("Cloning into"), "{init_logs}");
    let err = api_error(
        pods.logs(
            "code-server-bob",
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "container nope is not valid for pod code-server-bob"
    );

    // Graceful delete: deletionTimestamp first, gone after the grace period.
    let res = pods
        .delete("code-server-bob", &DeleteParams::default())
        .await
        .unwrap();
    let pending = res.left().expect("pods return the object");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(30));
    let uid = pending.metadata.uid.clone().unwrap();
    let gone = await_condition(
        pods.clone(),
        "code-server-bob",
        kube::runtime::conditions::is_deleted(&uid),
    );
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .unwrap()
        .unwrap();
    assert!(sim.object("pods", NS, "code-server-bob").is_none());
}
