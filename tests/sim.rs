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
    // No kubelet writing status in between: resourceVersions only move on our writes.
    let sim = Sim::start_with(SimOptions {
        lifecycle: false,
        ..SimOptions::default()
    })
    .await
    .unwrap();
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
        .filter(|m| m.operation.as_deref() == Some("Apply"))
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

    // No previous instance: 400 like the real server.
    let prev = LogParams {
        previous: true,
        ..LogParams::default()
    };
    let err = api_error(pods.logs("code-server-bob", &prev).await.unwrap_err());
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .starts_with("previous terminated container \"code-server\""),
        "{}",
        err.message
    );
    // follow=true keeps the stream open while the container runs.
    use futures::AsyncBufReadExt;
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods
        .log_stream("code-server-bob", &follow)
        .await
        .unwrap()
        .lines();
    let first = lines.try_next().await.unwrap().unwrap();
    assert!(first.contains("code-server 4.96.4"), "{first}");
    let still_open = tokio::time::timeout(Duration::from_millis(300), async {
        while let Some(l) = lines.try_next().await.unwrap() {
            let _ = l;
        }
    })
    .await;
    assert!(still_open.is_err(), "a followed log stays open");

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

#[tokio::test]
async fn updates_patches_concurrency_and_dry_run() {
    let sim = Sim::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), NS);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = cms
        .replace("c", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    // A PUT carrying the old resourceVersion is refused.
    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "v3".to_string())].into());
    let err = api_error(
        cms.replace("c", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Merge and JSON patches.
    let merged = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.as_ref().unwrap().len(), 2);
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/data/x", "value": "2"},
        {"op": "remove", "path": "/data/k"}
    ]))
    .unwrap();
    let patched = cms
        .patch("c", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap(),
        [("x".to_string(), "2".to_string())].into()
    );
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/x", "value": "nope"}]))
            .unwrap();
    let err = api_error(
        cms.patch("c", &PatchParams::default(), &Patch::Json::<()>(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);

    // Dry runs answer like the real write but store nothing and count as no write.
    sim.reset_requests();
    let mut dry = cm.clone();
    dry.metadata.name = Some("dry".into());
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answer = cms.create(&pp, &dry).await.unwrap();
    assert_eq!(answer.metadata.name.as_deref(), Some("dry"));
    assert!(sim.object("configmaps", NS, "dry").is_none());
    let dry_apply = PatchParams::apply(MANAGER).dry_run();
    let applied = cms
        .patch("c", &dry_apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"y": "3"}})))
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["y"], "3");
    assert!(
        sim.object("configmaps", NS, "c").unwrap()["data"]
            .get("y")
            .is_none()
    );
    let dd = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    cms.delete("c", &dd).await.unwrap();
    assert!(sim.object("configmaps", NS, "c").is_some());
    cms.get("c").await.unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    assert!(sim.writes().is_empty(), "{:?}", sim.writes());
    assert_eq!(sim.requests().iter().filter(|r| r.dry_run).count(), 3);
    assert_eq!(sim.count("get", "configmaps"), 1);

    // Validation with the real field paths.
    let bad: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "not ok!"}}}),
    )
    .unwrap();
    let err = api_error(cms.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.unwrap().causes;
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, vec!["metadata.name", "metadata.labels"]);
    assert!(
        causes[0]
            .message
            .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
    );
    assert!(
        err.message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: [metadata.name: Invalid value"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn watch_sees_the_pod_lifecycle() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let wp = WatchParams::default()
        .labels("devplatform.io/user=carol")
        .timeout(20);
    let mut stream = pods.watch(&wp, "0").await.unwrap().boxed();
    let manifest = pod_manifest("carol", "codercom/code-server:4.96.4");
    let created = pods
        .patch(
            "carol",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&manifest),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut phases = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(p) => seen.push(("ADDED", p)),
            WatchEvent::Modified(p) => seen.push(("MODIFIED", p)),
            WatchEvent::Deleted(p) => seen.push(("DELETED", p)),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
        let p = &seen.last().unwrap().1;
        if let Some(ph) = p.status.as_ref().and_then(|s| s.phase.clone())
            && phases.last() != Some(&ph)
        {
            phases.push(ph);
        }
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break;
        }
    }
    assert_eq!(seen[0].0, "ADDED");
    assert_eq!(phases, vec!["Pending", "Running"]);
    let rvs: Vec<u64> = seen
        .iter()
        .map(|(_, p)| {
            p.metadata
                .resource_version
                .clone()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");

    // A watch from a resourceVersion replays what came after it.
    let from = created.metadata.resource_version.clone().unwrap();
    let mut replay = pods
        .watch(&WatchParams::default().timeout(1), &from)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(2), replay.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, WatchEvent::Modified(_)), "{first:?}");

    // Relabelled out of the selection: DELETED for this watch (the object still exists).
    pods.patch(
        "carol",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"devplatform.io/user": "someone-else"}}})),
    )
    .await
    .unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WatchEvent::Deleted(p) = ev {
            assert_eq!(p.metadata.name.as_deref(), Some("carol"));
            assert_eq!(p.labels()["devplatform.io/user"], "someone-else");
            break;
        }
    }
    assert!(sim.object("pods", NS, "carol").is_some());
    pods.delete("carol", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(
        sim.object("pods", NS, "carol").is_none(),
        "grace 0 removes at once"
    );

    // kube's watcher with streaming lists (sendInitialEvents + bookmarks).
    let cfg = kube::runtime::watcher::Config::default().streaming_lists();
    let mut w = kube::runtime::watcher(pods.clone(), cfg).boxed();
    pods.patch(
        "zed",
        &PatchParams::apply(MANAGER),
        &Patch::Apply(pod_manifest("zed", "codercom/code-server:4.96.4")),
    )
    .await
    .unwrap();
    let mut saw_init_done = false;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            kube::runtime::watcher::Event::InitDone => saw_init_done = true,
            kube::runtime::watcher::Event::Apply(p) if p.name_any() == "zed" => break,
            _ => {}
        }
    }
    assert!(saw_init_done);

    // timeoutSeconds ends the stream.
    let start = std::time::Instant::now();
    let mut short = pods
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    while let Ok(Some(_)) = short.try_next().await {}
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn faults_and_request_accounting() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    // kube retries 429 by itself, honouring Retry-After.
    sim.inject(
        Fault::status(429)
            .verb("get")
            .resource("pods")
            .retry_after(1)
            .times(1),
    );
    let t = std::time::Instant::now();
    let err = api_error(pods.get("x").await.unwrap_err());
    assert_eq!(
        err.code, 404,
        "the fault applied once, the retry got through"
    );
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!(sim.count("get", "pods"), 2);
    // Without retries the 429 Status body is visible.
    let mut config = sim.config();
    config.default_retry = false;
    let raw: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), NS);
    sim.inject(
        Fault::status(429)
            .verb("get")
            .resource("pods")
            .retry_after(3)
            .times(1),
    );
    let err = api_error(raw.get("x").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(err.details.unwrap().retry_after_seconds, 3);

    sim.inject(Fault::status(500).verb("patch").times(2));
    let m = pod_manifest("dave", "codercom/code-server:4.96.4");
    let pp = PatchParams::apply(MANAGER).force();
    for _ in 0..2 {
        let err = api_error(
            pods.patch("dave", &pp, &Patch::Apply(&m))
                .await
                .unwrap_err(),
        );
        assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    }
    pods.patch("dave", &pp, &Patch::Apply(&m)).await.unwrap();

    sim.inject(Fault::latency(Duration::from_millis(300)).verb("list"));
    let t = std::time::Instant::now();
    pods.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.clear_faults();
    let t = std::time::Instant::now();
    pods.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(300));

    sim.inject(Fault::status(503).share(0.0));
    pods.list(&ListParams::default()).await.unwrap();
    sim.clear_faults();

    assert_eq!(sim.count("patch", "pods"), 3);
    assert_eq!(sim.writes().len(), 3);
    let r = &sim.writes()[2];
    assert_eq!(
        (r.verb.as_str(), r.api_group.as_str(), r.resource.as_str()),
        ("patch", "", "pods")
    );
    assert_eq!(r.namespace.as_deref(), Some(NS));
    assert_eq!(r.field_manager.as_deref(), Some(MANAGER));
    sim.reset_requests();
    pods.logs("dave", &LogParams::default()).await.ok();
    assert_eq!(sim.requests()[0].subresource.as_deref(), Some("log"));
    assert_eq!(sim.count("get", "pods/log"), 1);
    assert!(sim.writes().is_empty());
}

#[tokio::test]
async fn pvc_protection_immutability_and_binding() {
    let sim = Sim::start().await.unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(sim.client(), NS);
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    let claim = |size: &str, mode: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "workspace-erin"},
            "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}}})
    };
    let pvc = pvcs
        .patch(
            "workspace-erin",
            &pp,
            &Patch::Apply(claim("1Gi", "ReadWriteOnce")),
        )
        .await
        .unwrap();
    assert_eq!(
        pvc.metadata.finalizers.as_deref(),
        Some(&["kubernetes.io/pvc-protection".to_string()][..])
    );
    assert_eq!(
        pvc.spec.as_ref().unwrap().volume_mode.as_deref(),
        Some("Filesystem")
    );
    let bound = |p: Option<&PersistentVolumeClaim>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Bound")
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(pvcs.clone(), "workspace-erin", bound),
    )
    .await
    .unwrap()
    .unwrap();

    // Growing is allowed, shrinking and other spec changes are not.
    pvcs.patch(
        "workspace-erin",
        &pp,
        &Patch::Apply(claim("2Gi", "ReadWriteOnce")),
    )
    .await
    .unwrap();
    let err = api_error(
        pvcs.patch(
            "workspace-erin",
            &pp,
            &Patch::Apply(claim("1Gi", "ReadWriteOnce")),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains(
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        ),
        "{}",
        err.message
    );
    let err = api_error(
        pvcs.patch(
            "workspace-erin",
            &pp,
            &Patch::Apply(claim("2Gi", "ReadWriteMany")),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.message.contains("spec is immutable after creation"),
        "{}",
        err.message
    );

    // A pod uses the claim: deleting the claim leaves it terminating until the pod is gone.
    let mut pod = pod_manifest("erin", "codercom/code-server:4.96.4");
    pod["spec"]["volumes"] =
        json!([{"name": "workspace", "persistentVolumeClaim": {"claimName": "workspace-erin"}}]);
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "workspace", "mountPath": "/home/coder"}]);
    pods.patch("erin", &pp, &Patch::Apply(&pod)).await.unwrap();
    let res = pvcs
        .delete("workspace-erin", &DeleteParams::default())
        .await
        .unwrap();
    let pending = res.left().unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        sim.object("persistentvolumeclaims", NS, "workspace-erin")
            .is_some()
    );
    pods.delete("erin", &DeleteParams::default()).await.unwrap();
    let uid = pending.metadata.uid.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(
            pvcs.clone(),
            "workspace-erin",
            kube::runtime::conditions::is_deleted(&uid),
        ),
    )
    .await
    .unwrap()
    .unwrap();
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

#[tokio::test]
async fn failure_modes_on_demand() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    for (name, image) in [
        ("pull", "example.com/errimagepull:1"),
        ("crash", "example.com/crashloop:1"),
        ("config", "example.com/createconfigerror:1"),
        ("nowhere", "example.com/unschedulable:1"),
    ] {
        pods.patch(name, &pp, &Patch::Apply(pod_manifest(name, image)))
            .await
            .unwrap();
    }
    let mut initfail = pod_manifest("clonefail", "codercom/code-server:4.96.4");
    initfail["spec"]["initContainers"][0]["image"] = json!("example.com/initfail:1");
    pods.patch("clonefail", &pp, &Patch::Apply(&initfail))
        .await
        .unwrap();

    wait_pod(&sim, "pull", |p| {
        waiting_reason(p, "containerStatuses") == "ErrImagePull"
    })
    .await;
    wait_pod(&sim, "pull", |p| {
        waiting_reason(p, "containerStatuses") == "ImagePullBackOff"
    })
    .await;
    let crash = wait_pod(&sim, "crash", |p| {
        waiting_reason(p, "containerStatuses") == "CrashLoopBackOff"
    })
    .await;
    assert_eq!(
        crash["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    wait_pod(&sim, "config", |p| {
        waiting_reason(p, "containerStatuses") == "CreateContainerConfigError"
    })
    .await;
    let nowhere = wait_pod(&sim, "nowhere", |p| {
        p["status"]["conditions"][0]["reason"] == "Unschedulable"
    })
    .await;
    assert_eq!(nowhere["status"]["conditions"][0]["status"], "False");
    assert_eq!(nowhere["status"]["phase"], "Pending");
    let clone = wait_pod(&sim, "clonefail", |p| {
        let st = &p["status"]["initContainerStatuses"][0];
        st["state"]["terminated"]["exitCode"] == 1 || st["lastState"]["terminated"]["exitCode"] == 1
    })
    .await;
    assert_eq!(clone["status"]["phase"], "Pending");
    let logs = pods
        .logs(
            "clonefail",
            &LogParams {
                container: Some("git-clone".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert!(logs.contains("fatal: repository not found"), "{logs}");
    wait_pod(&sim, "clonefail", |p| {
        waiting_reason(p, "initContainerStatuses") == "CrashLoopBackOff"
    })
    .await;
    // Logs of a container that never started.
    let err = api_error(pods.logs("pull", &LogParams::default()).await.unwrap_err());
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .starts_with("container \"code-server\" in pod \"pull\" is waiting to start"),
        "{}",
        err.message
    );

    // Through the handle, for a running pod.
    pods.patch(
        "fine",
        &pp,
        &Patch::Apply(pod_manifest("fine", "codercom/code-server:4.96.4")),
    )
    .await
    .unwrap();
    wait_ready(&pods, "fine").await;
    sim.set_pod_behaviour("fine", PodBehaviour::CrashLoop);
    wait_pod(&sim, "fine", |p| {
        waiting_reason(p, "containerStatuses") == "CrashLoopBackOff"
    })
    .await;
    // And for one created later.
    sim.set_pod_behaviour("later", PodBehaviour::ErrImagePull);
    pods.patch(
        "later",
        &pp,
        &Patch::Apply(pod_manifest("later", "codercom/code-server:4.96.4")),
    )
    .await
    .unwrap();
    wait_pod(&sim, "later", |p| {
        waiting_reason(p, "containerStatuses") == "ImagePullBackOff"
    })
    .await;
}

fn job_manifest(name: &str, image: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "sync", "image": image, "args": ["sync"]}]}}}})
}

fn job_condition(j: Option<&Job>, ty: &str) -> bool {
    j.and_then(|j| j.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == ty && c.status == "True"))
}

#[tokio::test]
async fn jobs_run_succeed_and_fail() {
    let sim = Sim::start().await.unwrap();
    let jobs: Api<Job> = Api::namespaced(sim.client(), NS);
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    let job = jobs
        .patch(
            "sync-ok",
            &pp,
            &Patch::Apply(job_manifest("sync-ok", "alpine/git:2.45.2")),
        )
        .await
        .unwrap();
    let uid = job.metadata.uid.clone().unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(jobs.clone(), "sync-ok", |j: Option<&Job>| {
            job_condition(j, "Complete")
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(done.status.as_ref().unwrap().succeeded, Some(1));
    let owned = pods
        .list(&ListParams::default().labels("job-name=sync-ok"))
        .await
        .unwrap()
        .items;
    assert_eq!(owned.len(), 1);
    let labels = owned[0].labels();
    assert_eq!(labels["batch.kubernetes.io/job-name"], "sync-ok");
    assert_eq!(labels["controller-uid"], uid);
    assert_eq!(
        owned[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );

    jobs.patch(
        "sync-bad",
        &pp,
        &Patch::Apply(job_manifest("sync-bad", "example.com/jobfail:1")),
    )
    .await
    .unwrap();
    let failed = tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(jobs.clone(), "sync-bad", |j: Option<&Job>| {
            job_condition(j, "Failed")
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let st = failed.status.unwrap();
    assert_eq!(st.failed, Some(2), "backoffLimit 1 means two attempts");
    let cond = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("BackoffLimitExceeded"));
    let attempts = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=sync-bad"))
        .await
        .unwrap()
        .items;
    assert_eq!(attempts.len(), 2);
    let logs = pods
        .logs(&attempts[0].name_any(), &LogParams::default())
        .await
        .unwrap();
    assert!(logs.contains("fatal: repository not found"), "{logs}");

    // By the handle.
    sim.set_job_behaviour("sync-later", JobBehaviour::Fail);
    jobs.patch(
        "sync-later",
        &pp,
        &Patch::Apply(job_manifest("sync-later", "alpine/git:2.45.2")),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(jobs.clone(), "sync-later", |j: Option<&Job>| {
            job_condition(j, "Failed")
        }),
    )
    .await
    .unwrap()
    .unwrap();

    // Background propagation removes the job's pods.
    jobs.delete("sync-ok", &DeleteParams::background())
        .await
        .unwrap();
    let gone = sim
        .wait_for(
            "pods",
            NS,
            &owned[0].name_any(),
            Duration::from_secs(5),
            |p| p.is_none(),
        )
        .await;
    assert!(gone);

    // Foreground: the job waits for its pods, then goes.
    let attempt = attempts[0].name_any();
    let pending = jobs
        .delete("sync-bad", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(
        pending
            .finalizers()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(pending.metadata.deletion_timestamp.is_some());
    let job_uid = pending.metadata.uid.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(
            jobs.clone(),
            "sync-bad",
            kube::runtime::conditions::is_deleted(&job_uid),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        sim.object("pods", NS, &attempt).is_none(),
        "dependents went first"
    );

    // ttlSecondsAfterFinished: 0 removes the finished job.
    let mut ttl = job_manifest("sync-ttl", "alpine/git:2.45.2");
    ttl["spec"]["ttlSecondsAfterFinished"] = json!(0);
    jobs.patch("sync-ttl", &pp, &Patch::Apply(&ttl))
        .await
        .unwrap();
    let gone = sim
        .wait_for("jobs", NS, "sync-ttl", Duration::from_secs(5), |j| {
            j.is_none()
        })
        .await;
    assert!(gone);
}

#[tokio::test]
async fn istio_virtual_service_in_two_versions_and_atomic_lists() {
    let sim = Sim::start().await.unwrap();
    let ar = |v: &str| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "networking.istio.io",
            v,
            "VirtualService",
        ))
    };
    let v1: Api<DynamicObject> = Api::namespaced_with(sim.client(), NS, &ar("v1"));
    let v1beta1: Api<DynamicObject> = Api::namespaced_with(sim.client(), NS, &ar("v1beta1"));
    let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "code-server-frank"},
        "spec": {"hosts": ["code-frank.example.com", "alt.example.com"], "gateways": ["dev-platform/gw"],
            "http": [{"route": [{"destination": {"host": "code-server-frank", "port": {"number": 80}}}]}]}});
    let a = v1
        .patch(
            "code-server-frank",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&vs),
        )
        .await
        .unwrap();
    let b = v1beta1.get("code-server-frank").await.unwrap();
    assert_eq!(b.types.unwrap().api_version, "networking.istio.io/v1beta1");
    assert_eq!(a.metadata.uid, b.metadata.uid);
    let fields = serde_json::to_value(
        a.metadata.managed_fields.unwrap()[0]
            .fields_v1
            .clone()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        fields["f:spec"]["f:hosts"],
        json!({}),
        "atomic list owned as a whole"
    );
    assert_eq!(fields["f:spec"]["f:http"], json!({}));

    // Another manager replacing an atomic list conflicts as a whole; forced, it replaces it.
    let other = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "code-server-frank"},
        "spec": {"hosts": ["other.example.com"]}});
    let err = api_error(
        v1beta1
            .patch(
                "code-server-frank",
                &PatchParams::apply("istio-tool"),
                &Patch::Apply(&other),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"codeserver-service\": .spec.hosts"
    );
    let forced = v1beta1
        .patch(
            "code-server-frank",
            &PatchParams::apply("istio-tool").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["hosts"], json!(["other.example.com"]));
    assert_eq!(sim.list_objects("virtualservices").len(), 1);
    assert_eq!(
        sim.object_in(
            "networking.istio.io",
            "v1beta1",
            "virtualservices",
            NS,
            "code-server-frank"
        )
        .unwrap()["apiVersion"],
        "networking.istio.io/v1beta1"
    );

    // NetworkPolicy rules are atomic too.
    let np_ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
    ));
    let nps: Api<DynamicObject> = Api::namespaced_with(sim.client(), NS, &np_ar);
    let np = |port: i64| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "code-server-frank"},
        "spec": {"podSelector": {"matchLabels": {"app": "x"}}, "ingress": [{"ports": [{"port": port}]}]}})
    };
    let p1 = nps
        .patch(
            "code-server-frank",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(np(8080)),
        )
        .await
        .unwrap();
    assert_eq!(p1.data["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(p1.data["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    let p2 = nps
        .patch(
            "code-server-frank",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(np(9090)),
        )
        .await
        .unwrap();
    assert_eq!(p2.data["spec"]["ingress"].as_array().unwrap().len(), 1);
    assert_eq!(p2.metadata.generation, Some(2));

    // Unknown paths answer 404 like the real server.
    let req = http::Request::get("/apis/nope.example.com/v1/things")
        .body(Vec::new())
        .unwrap();
    let err = api_error(sim.client().request_text(req).await.unwrap_err());
    assert_eq!(err.code, 404);
}

fn kubectl(
    kubeconfig: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_against_the_sim_command() {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output();
    if found.is_err() {
        println!("skipped: kubectl is not installed on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let server = tokio::spawn(codeserver_service::sim::serve_command(
        0,
        Some(kc.clone()),
        false,
    ));
    for _ in 0..200 {
        if std::fs::metadata(&kc).is_ok_and(|m| m.len() > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kc2 = kc.clone();
    let run = move |args: Vec<&'static str>, stdin: Option<String>| {
        let kc = kc2.clone();
        tokio::task::spawn_blocking(move || kubectl(&kc, &args, stdin.as_deref()))
    };
    let manifests = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
  namespace: codeserver-instances
  labels: {app: demo, tier: web}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: other
  namespace: codeserver-instances
  labels: {app: other}
data: {a: "1"}
---
apiVersion: v1
kind: Service
metadata:
  name: demo
  namespace: codeserver-instances
  labels: {app: demo}
spec:
  selector: {app: demo}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;
    let (ok, out, err) = run(
        vec![
            "apply",
            "--server-side",
            "--field-manager",
            "kubectl-test",
            "-f",
            "-",
        ],
        Some(manifests.into()),
    )
    .await
    .unwrap();
    assert!(ok, "apply failed: {out}{err}");
    assert!(out.contains("configmap/demo serverside-applied"), "{out}");
    assert!(out.contains("service/demo serverside-applied"), "{out}");

    let (ok, out, err) = run(
        vec![
            "get",
            "configmaps",
            "-n",
            "codeserver-instances",
            "-l",
            "app=demo,tier in (web)",
            "-o",
            "name",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "configmap/demo");
    let (ok, out, _) = run(
        vec![
            "get",
            "cm,svc",
            "-n",
            "codeserver-instances",
            "-l",
            "app=demo",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok);
    assert!(
        out.contains("configmap/demo") && out.contains("service/demo") && !out.contains("other"),
        "{out}"
    );
    let (ok, out, _) = run(
        vec![
            "get",
            "svc",
            "demo",
            "-n",
            "codeserver-instances",
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.ports[0].protocol}",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok);
    assert!(out.starts_with("10.96.") && out.ends_with(" TCP"), "{out}");

    // Replace with the current object works; replaying the now stale one conflicts.
    let (ok, current, _) = run(
        vec![
            "get",
            "configmap",
            "demo",
            "-n",
            "codeserver-instances",
            "-o",
            "yaml",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok);
    let changed = current.replace("a: \"1\"", "a: \"2\"");
    assert_ne!(changed, current);
    let (ok, out, err) = run(vec!["replace", "-f", "-"], Some(changed.clone()))
        .await
        .unwrap();
    assert!(ok, "{out}{err}");
    let (ok, out, _) = run(
        vec![
            "get",
            "configmap",
            "demo",
            "-n",
            "codeserver-instances",
            "-o",
            "jsonpath={.data.a}",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok);
    assert_eq!(out, "2");
    let (ok, _, err) = run(vec!["replace", "-f", "-"], Some(changed))
        .await
        .unwrap();
    assert!(!ok);
    assert!(err.contains("the object has been modified"), "{err}");

    // Unknown fields: refused under kubectl's default strict validation, dropped with a
    // warning otherwise.
    let odd = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: odd, namespace: codeserver-instances}\ndata: {a: b}\nfoo: bar\n";
    let (ok, _, err) = run(vec!["apply", "--server-side", "-f", "-"], Some(odd.into()))
        .await
        .unwrap();
    assert!(!ok);
    assert!(
        err.contains("strict decoding error: unknown field \"foo\""),
        "{err}"
    );
    let (ok, _, err) = run(
        vec!["apply", "--server-side", "--validate=warn", "-f", "-"],
        Some(odd.into()),
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(err.contains("Warning: unknown field \"foo\""), "{err}");

    // Server-side apply conflicts surface through kubectl too.
    let steal = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: codeserver-instances}\ndata: {a: \"9\"}\n";
    let (ok, _, err) = run(
        vec![
            "apply",
            "--server-side",
            "--field-manager",
            "someone-else",
            "-f",
            "-",
        ],
        Some(steal.into()),
    )
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("conflict with \"kubectl-test\""), "{err}");

    let (ok, out, err) = run(
        vec!["delete", "configmap", "demo", "-n", "codeserver-instances"],
        None,
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("configmap \"demo\" deleted"), "{out}");
    let (ok, out, err) = run(
        vec!["delete", "-n", "codeserver-instances", "svc", "demo"],
        None,
    )
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(
        vec!["get", "configmap", "demo", "-n", "codeserver-instances"],
        None,
    )
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("configmaps \"demo\" not found"), "{err}");
    server.abort();
}

#[tokio::test]
async fn admission_unknown_fields_secrets_and_finalizers() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    // Admission: API token volume unless automount is off, default tolerations always.
    let with_token = pods
        .patch(
            "tok",
            &pp,
            &Patch::Apply(pod_manifest("tok", "codercom/code-server:4.96.4")),
        )
        .await
        .unwrap();
    let spec = with_token.spec.unwrap();
    let vols = spec.volumes.unwrap();
    assert!(vols[0].name.starts_with("kube-api-access-"), "{vols:?}");
    let mounts = spec.containers[0].volume_mounts.clone().unwrap();
    assert_eq!(
        mounts[0].mount_path,
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(spec.tolerations.unwrap().len(), 2);
    let mut no_token = pod_manifest("notok", "codercom/code-server:4.96.4");
    no_token["spec"]["automountServiceAccountToken"] = json!(false);
    let p = pods
        .patch("notok", &pp, &Patch::Apply(&no_token))
        .await
        .unwrap();
    assert!(p.spec.unwrap().volumes.is_none());

    // Unknown fields: dropped (with their ownership), or refused under Strict.
    let mut typo = pod_manifest("typo", "codercom/code-server:4.96.4");
    typo["spec"]["containers"][0]["imagePullPolcy"] = json!("Always");
    let p = pods.patch("typo", &pp, &Patch::Apply(&typo)).await.unwrap();
    let raw = sim.object("pods", NS, "typo").unwrap();
    assert!(raw["spec"]["containers"][0].get("imagePullPolcy").is_none());
    let fields = serde_json::to_value(
        p.metadata.managed_fields.unwrap()[0]
            .fields_v1
            .clone()
            .unwrap(),
    )
    .unwrap();
    assert!(
        fields["f:spec"]["f:containers"]["k:{\"name\":\"code-server\"}"]
            .get("f:imagePullPolcy")
            .is_none()
    );
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..pp.clone()
    };
    let err = api_error(
        pods.patch("typo", &strict, &Patch::Apply(&typo))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .contains("strict decoding error: unknown field \"spec.containers[0].imagePullPolcy\""),
        "{}",
        err.message
    );
    let mut wrong_type = pod_manifest("wrong", "codercom/code-server:4.96.4");
    wrong_type["spec"]["containers"][0]["ports"][0]["containerPort"] = json!("8080");
    let err = api_error(
        pods.patch("wrong", &pp, &Patch::Apply(&wrong_type))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .starts_with("Pod in version \"v1\" cannot be handled as a Pod"),
        "{}",
        err.message
    );

    // Secrets fold stringData into data.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(sim.client(), NS);
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "abc"}});
    let stored = secrets.patch("s", &pp, &Patch::Apply(&s)).await.unwrap();
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
    assert_eq!(stored.data.unwrap()["token"].0, b"abc".to_vec());
    assert!(stored.string_data.is_none());

    // A custom finalizer holds a delete until it is removed.
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), NS);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pending = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(cms.get("held").await.is_ok());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let err = api_error(cms.get("held").await.unwrap_err());
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn image_fix_recovers_a_pod_and_claims_grow() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    pods.patch(
        "fixme",
        &pp,
        &Patch::Apply(pod_manifest("fixme", "example.com/errimagepull:1")),
    )
    .await
    .unwrap();
    wait_pod(&sim, "fixme", |p| {
        waiting_reason(p, "containerStatuses") == "ImagePullBackOff"
    })
    .await;
    pods.patch(
        "fixme",
        &pp,
        &Patch::Apply(pod_manifest("fixme", "codercom/code-server:4.96.4")),
    )
    .await
    .unwrap();
    let ready = wait_ready(&pods, "fixme").await;
    assert_eq!(
        ready.status.unwrap().container_statuses.unwrap()[0].image,
        "codercom/code-server:4.96.4"
    );

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(sim.client(), NS);
    let claim = |size: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "grow"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
    };
    pvcs.patch("grow", &pp, &Patch::Apply(claim("1Gi")))
        .await
        .unwrap();
    sim.wait_for(
        "persistentvolumeclaims",
        NS,
        "grow",
        Duration::from_secs(5),
        |p| p.is_some_and(|p| p["status"]["phase"] == "Bound"),
    )
    .await;
    pvcs.patch("grow", &pp, &Patch::Apply(claim("5Gi")))
        .await
        .unwrap();
    let grown = sim
        .wait_for(
            "persistentvolumeclaims",
            NS,
            "grow",
            Duration::from_secs(5),
            |p| p.is_some_and(|p| p["status"]["capacity"]["storage"] == "5Gi"),
        )
        .await;
    assert!(grown);
}

#[tokio::test]
async fn namespace_termination_and_delete_collection() {
    let sim = Sim::start().await.unwrap();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sim.client());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "scratch"}})).unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.labels()["kubernetes.io/metadata.name"], "scratch");
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), "scratch");
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let deleted = cms
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=x"),
        )
        .await
        .unwrap();
    assert_eq!(deleted.left().unwrap().items.len(), 2);
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    assert_eq!(sim.count("deletecollection", "configmaps"), 1);

    let terminating = nss
        .delete("scratch", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let uid = terminating.metadata.uid.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(
            nss.clone(),
            "scratch",
            kube::runtime::conditions::is_deleted(&uid),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        sim.list_objects("configmaps")
            .iter()
            .all(|c| c["metadata"]["namespace"] != "scratch")
    );
}

#[tokio::test]
async fn discovery_legacy_and_aggregated() {
    let sim = Sim::start().await.unwrap();
    let legacy = kube::discovery::Discovery::new(sim.client())
        .run()
        .await
        .unwrap();
    let (ar, caps) = legacy
        .resolve_gvk(&GroupVersionKind::gvk(
            "networking.istio.io",
            "v1",
            "VirtualService",
        ))
        .unwrap();
    assert_eq!(ar.plural, "virtualservices");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(legacy.has_group("batch"));
    let agg = kube::discovery::Discovery::new(sim.client())
        .run_aggregated()
        .await
        .unwrap();
    let (ar, _) = agg
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "PersistentVolumeClaim"))
        .unwrap();
    assert_eq!(ar.plural, "persistentvolumeclaims");
    let v = sim.client().apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    // The kubeconfig the handle gives is usable as is.
    let cfg = kube::Config::from_custom_kubeconfig(
        sim.kubeconfig(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(cfg.default_namespace, "default");
    let from_kc = kube::Client::try_from(cfg).unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(from_kc);
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn reapplying_everything_is_a_no_op() {
    let sim = Sim::start().await.unwrap();
    let client = sim.client();
    let pp = PatchParams::apply(MANAGER).force();
    let gvk = |g: &str, v: &str, k: &str| ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, k));
    let mut pod = pod_manifest("code-server-gus", "codercom/code-server:4.96.4");
    pod["spec"]["automountServiceAccountToken"] = json!(false);
    pod["spec"]["volumes"] =
        json!([{"name": "workspace", "persistentVolumeClaim": {"claimName": "workspace-gus"}}]);
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "workspace", "mountPath": "/home/coder"}]);
    // Quantities as a template might render them: stored canonical, re-applied without change.
    pod["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": 0.25, "memory": "512Mi"}, "limits": {"memory": "2048Mi"}});
    pod["spec"]["securityContext"] =
        json!({"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 1000});
    let objects = vec![
        (
            gvk("", "v1", "PersistentVolumeClaim"),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "workspace-gus", "annotations": {"devplatform.io/repos": "[\"team/app\"]"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}),
        ),
        (gvk("", "v1", "Pod"), pod),
        (
            gvk("", "v1", "Service"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "code-server-gus"},
            "spec": {"selector": {"app.kubernetes.io/instance": "code-server-gus"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        ),
        (
            gvk("networking.istio.io", "v1", "VirtualService"),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "code-server-gus"}, "spec": {"hosts": ["code-gus.example.com"], "gateways": ["dev-platform/gw"],
            "http": [{"route": [{"destination": {"host": "code-server-gus", "port": {"number": 80}}}]}]}}),
        ),
        (
            gvk("networking.k8s.io", "v1", "NetworkPolicy"),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "code-server-gus"}, "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "code-server-gus"}},
            "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}}}],
            "ports": [{"port": 8080, "protocol": "TCP"}]}]}}),
        ),
    ];
    for (ar, obj) in &objects {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, ar);
        api.patch(
            obj["metadata"]["name"].as_str().unwrap(),
            &pp,
            &Patch::Apply(obj),
        )
        .await
        .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    wait_ready(&pods, "code-server-gus").await;
    let live = sim.object("pods", NS, "code-server-gus").unwrap();
    assert_eq!(
        live["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}})
    );
    // Let the lifecycle settle (PVC bound, pod ready), then re-apply everything.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rv_before = sim.resource_version();
    for (ar, obj) in &objects {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, ar);
        let name = obj["metadata"]["name"].as_str().unwrap();
        let before = api.get(name).await.unwrap();
        let after = api.patch(name, &pp, &Patch::Apply(obj)).await.unwrap();
        assert_eq!(
            before.metadata.resource_version, after.metadata.resource_version,
            "{name} ({}) changed on re-apply",
            ar.kind
        );
        assert_eq!(
            before.metadata.managed_fields,
            after.metadata.managed_fields
        );
    }
    assert_eq!(sim.resource_version(), rv_before, "no write happened");
}
