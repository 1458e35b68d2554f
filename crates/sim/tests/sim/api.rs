//! CRUD, selectors, Status bodies, concurrency, dry runs, faults, discovery.

use super::*;

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

// NB: tokio's paused clock: the Retry-After wait and the injected latency pass at once, and
// the measured times are the simulated ones.
#[tokio::test(start_paused = true)]
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
    let t = tokio::time::Instant::now();
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
    let t = tokio::time::Instant::now();
    pods.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.clear_faults();
    let t = tokio::time::Instant::now();
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
