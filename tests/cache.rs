//! The watch-backed caches against the simulated cluster, through the real kube client:
//! they sync, follow creates, updates and deletes, index by instance and owner, keep
//! trimmed objects, and let a writer wait until its own write is cached.

use std::{collections::BTreeSet, future::Future, time::Duration};

use codeserver_service::{
    cache::{CacheError, Caches, LAST_APPLIED},
    config::InstanceSettings,
    metrics::Metrics,
    naming,
    reconcile::Kinds,
};
use codeserver_sim::Sim;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, Patch, PatchParams},
};
use serde_json::{Value, json};

const NS: &str = "codeserver-instances";
/// Guard against a hang only: every wait below ends on an event.
const GUARD: Duration = Duration::from_secs(10);

struct Env {
    _sim: Sim,
    client: Client,
    caches: Caches,
    metrics: Metrics,
}

async fn env() -> Env {
    let sim = Sim::start().await.unwrap();
    let mut config = sim.config();
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    let metrics = Metrics::new().unwrap();
    let caches = Caches::start(
        client.clone(),
        &InstanceSettings::default(),
        &Kinds::new(Some("v1".into())),
        Some(metrics.cache_objects.clone()),
    );
    guard(caches.wait_synced()).await.unwrap();
    Env {
        _sim: sim,
        client,
        caches,
        metrics,
    }
}

async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .expect("the cache saw the event")
}

fn labels(id: &str, owner: &str) -> Value {
    json!({
        naming::LABEL_MANAGED_BY: naming::MANAGED_BY_VALUE,
        naming::LABEL_INSTANCE: id,
        naming::LABEL_OWNER: owner,
    })
}

/// Applies `obj` as the service does; answers the resourceVersion of the answer.
async fn apply<K>(api: &Api<K>, name: &str, obj: Value) -> String
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let pp = PatchParams::apply(naming::FIELD_MANAGER).force();
    let applied = api.patch(name, &pp, &Patch::Apply(&obj)).await.unwrap();
    applied.meta().resource_version.clone().unwrap()
}

async fn apply_pvc(env: &Env, name: &str, id: &str, owner: &str) -> String {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), NS);
    let obj = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS, "labels": labels(id, owner),
                     "annotations": {LAST_APPLIED: "{\"a\":\"whole copy\"}", "keep": "me"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    });
    apply(&api, name, obj).await
}

async fn apply_cm(env: &Env, name: &str, id: &str, owner: &str, value: &str) -> String {
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), NS);
    let obj = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": labels(id, owner)},
        "data": {"v": value},
    });
    apply(&api, name, obj).await
}

#[tokio::test]
async fn syncs_and_indexes_objects_by_instance_and_owner() {
    let env = env().await;
    assert!(env.caches.synced());
    assert!(env.caches.records().is_empty());
    let rv_a = apply_pvc(&env, "workspace-a", "code-server-a", "key-1").await;
    let rv_b = apply_pvc(&env, "workspace-b", "code-server-b", "key-1").await;
    let rv_c = apply_pvc(&env, "workspace-c", "code-server-c", "key-2").await;
    let cm = apply_cm(&env, "settings-a", "code-server-a", "key-1", "1").await;
    let kind = "v1/PersistentVolumeClaim";
    guard(env.caches.wait_for(kind, NS, "workspace-a", &rv_a))
        .await
        .unwrap();
    guard(env.caches.wait_for(kind, NS, "workspace-b", &rv_b))
        .await
        .unwrap();
    guard(env.caches.wait_for(kind, NS, "workspace-c", &rv_c))
        .await
        .unwrap();
    guard(env.caches.wait_for("v1/ConfigMap", NS, "settings-a", &cm))
        .await
        .unwrap();

    assert_eq!(
        env.caches
            .instances_of_owner("key-1")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["code-server-a".to_owned(), "code-server-b".to_owned()])
    );
    assert_eq!(env.caches.instances_of_owner("key-2"), ["code-server-c"]);
    assert!(env.caches.instances_of_owner("nobody").is_empty());
    let record = env.caches.record("code-server-a").unwrap();
    assert_eq!(record.metadata.name.as_deref(), Some("workspace-a"));
    // NB: the simulated cluster binds PVCs, so the cached one may be newer than the apply.
    let cached: u64 = env
        .caches
        .pvc("workspace-c")
        .unwrap()
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cached >= rv_c.parse::<u64>().unwrap());
    assert_eq!(
        env.caches.instance_ids(),
        BTreeSet::from(["code-server-a", "code-server-b", "code-server-c"].map(str::to_owned))
    );
    assert_eq!(env.caches.records().len(), 3);

    // Dynamic lookups carry apiVersion/kind, as listing the instance's objects would.
    let kinds = BTreeSet::from([
        "v1/PersistentVolumeClaim".to_owned(),
        "v1/ConfigMap".to_owned(),
    ]);
    let objects = env
        .caches
        .objects_of_instance("code-server-a", &kinds)
        .unwrap();
    let mut seen: Vec<(String, String)> = objects
        .iter()
        .map(|o: &DynamicObject| {
            let t = o.types.as_ref().unwrap();
            (
                format!("{}/{}", t.api_version, t.kind),
                o.metadata.name.clone().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("v1/ConfigMap".to_owned(), "settings-a".to_owned()),
            (
                "v1/PersistentVolumeClaim".to_owned(),
                "workspace-a".to_owned()
            ),
        ]
    );
    assert_eq!(
        env.caches
            .by_instance("v1/ConfigMap", "code-server-b")
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        env.caches
            .by_instance("example.com/v1/Widget", "code-server-a")
            .unwrap_err(),
        CacheError::NotCached("example.com/v1/Widget".into())
    );

    assert_eq!(env.caches.counts()["v1/PersistentVolumeClaim"], 3);
    assert_eq!(env.caches.counts()["v1/ConfigMap"], 1);
    let gauge = |kind: &str| env.metrics.cache_objects.with_label_values(&[kind]).get();
    assert_eq!((gauge("PersistentVolumeClaim"), gauge("ConfigMap")), (3, 1));
}

#[tokio::test]
async fn cached_objects_are_trimmed() {
    let env = env().await;
    let rv = apply_pvc(&env, "workspace-a", "code-server-a", "key-1").await;
    // The API server keeps both; the cache keeps neither.
    let api: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), NS);
    let live = api.get("workspace-a").await.unwrap();
    assert!(live.metadata.managed_fields.is_some());
    assert!(
        live.metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(LAST_APPLIED)
    );
    guard(
        env.caches
            .wait_for("v1/PersistentVolumeClaim", NS, "workspace-a", &rv),
    )
    .await
    .unwrap();
    let cached = env.caches.pvc("workspace-a").unwrap();
    assert_eq!(cached.metadata.managed_fields, None);
    let annotations = cached.metadata.annotations.clone().unwrap();
    assert!(!annotations.contains_key(LAST_APPLIED));
    assert_eq!(annotations["keep"], "me");
    let dynamic = env
        .caches
        .by_instance("v1/ConfigMap", "code-server-a")
        .unwrap();
    assert!(dynamic.iter().all(|o| o.metadata.managed_fields.is_none()));
}

#[tokio::test]
async fn wait_for_resolves_after_the_write_and_not_before() {
    let env = env().await;
    let first = apply_cm(&env, "settings-a", "code-server-a", "key-1", "1").await;
    guard(
        env.caches
            .wait_for("v1/ConfigMap", NS, "settings-a", &first),
    )
    .await
    .unwrap();

    // A version the object has not reached yet: the wait stays pending...
    let next = (first.parse::<u64>().unwrap() + 1).to_string();
    let wait = env.caches.wait_for("v1/ConfigMap", NS, "settings-a", &next);
    tokio::pin!(wait);
    assert!(futures::poll!(&mut wait).is_pending());
    // ...another object's write does not end it...
    let other = apply_cm(&env, "settings-b", "code-server-b", "key-2", "1").await;
    guard(
        env.caches
            .wait_for("v1/ConfigMap", NS, "settings-b", &other),
    )
    .await
    .unwrap();
    assert!(futures::poll!(&mut wait).is_pending());
    // ...and the object's own update does: the cache then holds what the apply answered.
    let second = apply_cm(&env, "settings-a", "code-server-a", "key-1", "2").await;
    guard(wait).await.unwrap();
    guard(
        env.caches
            .wait_for("v1/ConfigMap", NS, "settings-a", &second),
    )
    .await
    .unwrap();
    let cached = env
        .caches
        .by_instance("v1/ConfigMap", "code-server-a")
        .unwrap();
    assert_eq!(cached.len(), 1);
    assert_eq!(
        cached[0].metadata.resource_version.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(cached[0].data["data"]["v"], "2");
    // An older version is reached too.
    guard(
        env.caches
            .wait_for("v1/ConfigMap", NS, "settings-a", &first),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn updates_that_relabel_and_deletes_leave_the_indexes() {
    let env = env().await;
    let rv = apply_pvc(&env, "workspace-a", "code-server-a", "key-1").await;
    let kind = "v1/PersistentVolumeClaim";
    guard(env.caches.wait_for(kind, NS, "workspace-a", &rv))
        .await
        .unwrap();
    // The owner changes: the record moves to the new owner's index.
    let rv = apply_pvc(&env, "workspace-a", "code-server-a", "key-9").await;
    guard(env.caches.wait_for(kind, NS, "workspace-a", &rv))
        .await
        .unwrap();
    assert!(env.caches.instances_of_owner("key-1").is_empty());
    assert_eq!(env.caches.instances_of_owner("key-9"), ["code-server-a"]);

    let cm = apply_cm(&env, "settings-a", "code-server-a", "key-9", "1").await;
    guard(env.caches.wait_for("v1/ConfigMap", NS, "settings-a", &cm))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), NS);
    let gone = env.caches.wait_gone("v1/ConfigMap", NS, "settings-a");
    tokio::pin!(gone);
    assert!(futures::poll!(&mut gone).is_pending());
    api.delete("settings-a", &DeleteParams::default())
        .await
        .unwrap();
    guard(gone).await.unwrap();
    assert!(
        env.caches
            .by_instance("v1/ConfigMap", "code-server-a")
            .unwrap()
            .is_empty()
    );
    assert_eq!(env.caches.counts()["v1/ConfigMap"], 0);

    // An object that loses the managed-by label leaves the cache, as a selector watch
    // turns it into a deletion.
    let managed = apply_cm(&env, "settings-b", "code-server-a", "key-9", "1").await;
    guard(
        env.caches
            .wait_for("v1/ConfigMap", NS, "settings-b", &managed),
    )
    .await
    .unwrap();
    let pp = PatchParams::default();
    api.patch(
        "settings-b",
        &pp,
        &Patch::Merge(&json!({"metadata": {"labels": {naming::LABEL_MANAGED_BY: null}}})),
    )
    .await
    .unwrap();
    guard(env.caches.wait_gone("v1/ConfigMap", NS, "settings-b"))
        .await
        .unwrap();
}

#[tokio::test]
async fn nothing_is_cached_from_the_gateway_namespace() {
    // The service has no rights there any more: no access policy is watched.
    let env = env().await;
    assert!(
        !env.caches
            .is_cached("security.istio.io/v1/AuthorizationPolicy")
    );
    assert!(
        env.caches
            .is_cached("networking.istio.io/v1beta1/VirtualService")
    );
}

#[tokio::test]
async fn caches_run_on_the_rate_limited_client_of_serve() {
    let sim = Sim::start().await.unwrap();
    let metrics = Metrics::new().unwrap();
    // A bucket of two: the lists and watches of every kind queue for their tokens, and
    // the open watches hold none, so writes still get through.
    let rate = codeserver_service::rate_limit::Rate::new(500.0, 2).unwrap();
    let client =
        codeserver_service::rate_limit::limited_client(sim.config(), &metrics, rate).unwrap();
    let caches = Caches::start(
        client.clone(),
        &InstanceSettings::default(),
        &Kinds::new(Some("v1".into())),
        None,
    );
    guard(caches.wait_synced()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, NS);
    for i in 0..5 {
        let name = format!("settings-{i}");
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS, "labels": labels("code-server-a", "key-1")},
        });
        let rv = apply(&api, &name, obj).await;
        guard(caches.wait_for("v1/ConfigMap", NS, &name, &rv))
            .await
            .unwrap();
    }
    assert_eq!(
        caches
            .by_instance("v1/ConfigMap", "code-server-a")
            .unwrap()
            .len(),
        5
    );
    let watches = metrics
        .kube_requests
        .with_label_values(&["watch", "configmaps", "ok"])
        .get();
    assert!(watches >= 1, "the watch went through the counted client");
}
