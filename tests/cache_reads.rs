//! Reads from the watch-backed caches, through the service's routes and the reconciler
//! against the simulated cluster: once the caches have synced, queries and a no-op
//! re-provision make no API call at all (counted by the sim's request log and by
//! `codeserver_kube_requests_total`), every mutation's answer and the next query see the
//! write, `/ready` waits for the sync, reads fall back to the API server while the caches
//! cannot answer, and two replicas provisioning one user at once still make one PVC and
//! one pod.

#[path = "support/world.rs"]
mod world;

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    instance::InstanceStatus,
    metrics::Metrics,
    reconcile::Reconciler,
    values::{Owner, Repo},
};
use codeserver_sim::{Fault, Sim};
use serde_json::{Value, json};
use world::{World, ok};

/// Every Kubernetes API call the service made so far, by `codeserver_kube_requests_total`.
fn kube_calls(metrics: &Metrics) -> u64 {
    let text = metrics.encode();
    text.lines()
        .filter(|l| l.starts_with("codeserver_kube_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The requests the simulated cluster recorded since the last reset, as `verb resource`.
fn recorded(sim: &Sim) -> Vec<String> {
    sim.requests()
        .into_iter()
        .map(|r| format!("{} {}", r.verb, r.resource))
        .collect()
}

fn repo(name: &str) -> Repo {
    let url = format!("http://gitea:3000/devteam/{name}.git");
    Repo::new("devteam", name, &url).unwrap()
}

fn john() -> Owner {
    Owner {
        sub: Some("3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f".into()),
        ..Owner::new("John.Doe")
    }
}

/// A world with `alice`'s instance of `devteam/docs` running, its caches settled.
async fn running_world() -> (World, String, String) {
    let w = World::start().await;
    let alice = w.token("alice");
    let first = w.provision(&alice, "devteam", "docs").await;
    let instance = &ok(&first, "provisionCodeServer")["instance"];
    assert_eq!(instance["status"], "RUNNING", "{first}");
    let id = instance["id"].as_str().unwrap().to_owned();
    (w, alice, id)
}

#[tokio::test]
async fn a_no_op_re_provision_makes_no_api_call() {
    let (w, alice, id) = running_world().await;
    w.sim().reset_requests();
    let before = kube_calls(&w.metrics);

    let again = w.provision(&alice, "devteam", "docs").await;
    let answer = ok(&again, "provisionCodeServer");
    assert_eq!(answer["message"], "Using existing instance");
    assert_eq!(answer["isNew"], false);
    assert_eq!(answer["instance"]["id"], id.as_str());
    assert_eq!(answer["instance"]["status"], "RUNNING");

    assert_eq!(
        recorded(w.sim()),
        Vec::<String>::new(),
        "no request of any verb"
    );
    assert_eq!(
        kube_calls(&w.metrics),
        before,
        "the counting layer saw none"
    );
}

#[tokio::test]
async fn queries_make_no_api_call_once_synced() {
    let (w, alice, id) = running_world().await;
    let admin = w.admin_token("root");
    w.sim().reset_requests();
    let before = kube_calls(&w.metrics);

    let mine = w
        .gql(&alice, "{ myCodeServers { id status } }", json!({}))
        .await;
    assert_eq!(
        ok(&mine, "myCodeServers"),
        &json!([{"id": id, "status": "RUNNING"}])
    );
    let one = w
        .gql(
            &alice,
            "query($id: String!) { codeServer(id: $id) { id status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(ok(&one, "codeServer")["status"], "RUNNING");
    let stats = w
        .gql(&admin, "{ instanceStats { totalInstances } }", json!({}))
        .await;
    assert_eq!(ok(&stats, "instanceStats")["totalInstances"], 1);
    let all = w
        .gql(
            &admin,
            "{ allCodeServers { totalCount edges { node { id status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(ok(&all, "allCodeServers")["totalCount"], 1);

    assert_eq!(
        recorded(w.sim()),
        Vec::<String>::new(),
        "no request of any verb"
    );
    assert_eq!(kube_calls(&w.metrics), before);
}

#[tokio::test]
async fn one_query_text_is_answered_for_each_caller_and_its_variables() {
    let (w, alice, id) = running_world().await;
    let bob = w.token("bob");
    const ONE: &str = "query($id: String!) { codeServer(id: $id) { id status } }";
    for _ in 0..2 {
        let mine = w.gql(&alice, ONE, json!({"id": id})).await;
        assert_eq!(ok(&mine, "codeServer")["id"], id.as_str());
        // The same text with the same variables, from another caller: not alice's.
        let theirs = w.gql(&bob, ONE, json!({"id": id})).await;
        assert_eq!(theirs, json!({"data": {"codeServer": null}}));
        let none = w
            .gql(&alice, ONE, json!({"id": "code-server-nobody"}))
            .await;
        assert_eq!(none, json!({"data": {"codeServer": null}}));
    }
}

#[tokio::test]
async fn a_mutation_and_the_next_query_see_the_write() {
    let (w, alice, id) = running_world().await;
    let stop = "mutation($id: String!) { stopCodeServer(id: $id) }";
    let stopped = w.on_id(&alice, stop, &id).await;
    assert_eq!(ok(&stopped, "stopCodeServer"), true, "{stopped}");
    // NB: the pod may be gone already; never RUNNING after the stop was answered.
    let status = |body: &Value| ok(body, "myCodeServers")[0]["status"].clone();
    let mine = w
        .gql(&alice, "{ myCodeServers { id status } }", json!({}))
        .await;
    assert!(
        status(&mine) == "STOPPING" || status(&mine) == "STOPPED",
        "{mine}"
    );

    let delete = "mutation($id: String!) { deleteCodeServer(id: $id) }";
    let deleted = w.on_id(&alice, delete, &id).await;
    assert_eq!(ok(&deleted, "deleteCodeServer"), true, "{deleted}");
    let after = w
        .gql(&alice, "{ myCodeServers { id status } }", json!({}))
        .await;
    let after = ok(&after, "myCodeServers").as_array().unwrap().clone();
    assert!(
        after.is_empty() || after[0]["status"] == "STOPPING",
        "gone, or its volume still going: {after:?}"
    );

    let fresh = w.provision(&alice, "devteam", "docs").await;
    let instance = &ok(&fresh, "provisionCodeServer")["instance"];
    assert_eq!(instance["status"], "RUNNING", "{fresh}");
    let mine = w.mine(&alice).await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
}

/// The HTTP status of `/ready` at `base`.
async fn ready_status(base: &str) -> u16 {
    reqwest::get(format!("{base}/ready"))
        .await
        .map_or(0, |answer| answer.status().as_u16())
}

#[tokio::test]
async fn ready_waits_for_the_caches() {
    let sim = Sim::start().await.unwrap();
    // NB: a cache whose listing is refused never syncs. Three are refused, more than
    // the first listings that run at once: each refused one gives its turn back.
    for resource in ["secrets", "jobs", "configmaps"] {
        sim.inject(Fault {
            verb: Some("list".into()),
            resource: Some(resource.into()),
            ..Fault::status(403)
        });
    }
    let reconciler = world::reconciler(&sim).build();
    let routes = codeserver_service::serve::assemble(codeserver_service::serve::Parts {
        reconciler: reconciler.clone(),
        auth: codeserver_service::auth::AuthSettings::default(),
        gitea: codeserver_service::gitea::GiteaSettings::new("http://127.0.0.1:1"),
        metrics: Metrics::new().unwrap(),
        refusals: None,
        api: codeserver_service::http::ApiSettings::default(),
        gate: codeserver_service::gate::GateSettings::default(),
    })
    .unwrap();
    let (base, _stop) = world::serving::serve_routes(routes).await;
    assert_eq!(ready_status(&base).await, 503);
    assert!(!reconciler.caches_synced());

    // The other kinds' caches answer meanwhile.
    let provisioned = reconciler
        .provision(&john(), repo("backend-api"))
        .await
        .unwrap();
    assert_eq!(provisioned.instance.status.status, InstanceStatus::Running);
    assert_eq!(reconciler.list(&john()).await.unwrap().len(), 1);
    assert_eq!(ready_status(&base).await, 503);
    // Kinds listed after the refused ones sync all the same.
    for kind in [
        "networking.k8s.io/v1/NetworkPolicy",
        "networking.istio.io/v1/VirtualService",
    ] {
        world::eventually::eventually(kind, Duration::from_secs(10), || async {
            reconciler.caches().is_synced(kind).then_some(())
        })
        .await;
    }
    assert!(!reconciler.caches().is_synced("v1/Secret"));

    sim.clear_faults();
    tokio::time::timeout(Duration::from_secs(60), reconciler.caches().wait_synced())
        .await
        .expect("the caches sync once the listing is allowed")
        .unwrap();
    // NB: a readiness answer is reused for two seconds.
    world::eventually::eventually("/ready answers 200", Duration::from_secs(10), || {
        let base = base.clone();
        async move { (ready_status(&base).await == 200).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_provisioning_one_user_make_one_pvc_and_one_pod() {
    let sim = Sim::start().await.unwrap();
    let replicas: Vec<Arc<Reconciler>> = (0..2).map(|_| world::reconciler(&sim).build()).collect();
    for replica in &replicas {
        world::caches_settled(&sim, replica).await;
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let replica = replicas[i % 2].clone();
            tokio::spawn(async move { replica.provision(&john(), repo("backend-api")).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let provisioned = task.await.unwrap().unwrap();
        assert_eq!(provisioned.instance.status.status, InstanceStatus::Running);
        ids.push(provisioned.instance.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(sim.list_objects("persistentvolumeclaims").len(), 1);
    assert_eq!(sim.list_objects("pods").len(), 1);
    for replica in &replicas {
        let listed = replica.list(&john()).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, ids[0]);
    }
}

#[tokio::test]
async fn the_cache_gauges_count_what_the_caches_hold() {
    let (w, _alice, _id) = running_world().await;
    let text = w.metrics.encode();
    let held = |kind: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("codeserver_cache_objects{")
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
    };
    assert_eq!(held("PersistentVolumeClaim"), Some(1.0), "{text}");
    assert_eq!(held("Pod"), Some(1.0), "{text}");
}

#[tokio::test]
async fn lifecycle_mutations_send_only_their_writes_once_synced() {
    let sim = Sim::start().await.unwrap();
    let rec = world::reconciler(&sim).build();
    world::caches_settled(&sim, &rec).await;
    let mut calls = Vec::new();
    let mut step = |what: &str, sim: &Sim| {
        calls.push((what.to_owned(), recorded(sim)));
        sim.reset_requests();
    };
    sim.reset_requests();
    let p = rec.provision(&john(), repo("backend-api")).await.unwrap();
    let id = p.instance.id.clone();
    step("provision (new)", &sim);
    rec.provision(&john(), repo("backend-api")).await.unwrap();
    step("provision (no-op)", &sim);
    rec.provision(&john(), repo("frontend")).await.unwrap();
    step("provision (second repository)", &sim);
    rec.get(&john(), &id).await.unwrap();
    rec.list(&john()).await.unwrap();
    rec.status(&john(), &id).await.unwrap();
    rec.stats().await.unwrap();
    step("get, list, status, stats", &sim);
    rec.stop(&john(), &id).await.unwrap();
    step("stop", &sim);
    assert!(world::pod_gone(&rec, &id).await);
    sim.reset_requests();
    rec.start(&john(), &id).await.unwrap();
    step("start", &sim);
    rec.delete(&john(), &id).await.unwrap();
    step("delete", &sim);
    for (what, requests) in &calls {
        println!("{what}: {} calls {requests:?}", requests.len());
        assert!(
            requests
                .iter()
                .all(|r| !r.starts_with("get ") && !r.starts_with("list ")),
            "{what} reads from the caches: {requests:?}"
        );
    }
}

/// An admin's template of a kind the caches do not start with (a RequestAuthentication).
const REQUEST_AUTHENTICATION: &str = "{%- import \"_helpers.j2\" as h -%}\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  {{ h.metadata(\"jwt-\" ~ user.name) | indent(2) }}\nspec:\n  jwtRules:\n    - issuer: https://keycloak.test/realms/devplatform\n";

/// The built-in templates and `extra` (file name, text).
fn templates_plus(extra: (&str, &str)) -> codeserver_service::render::Templates {
    use codeserver_service::render::{Source, Templates};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.push((extra.0.to_owned(), extra.1.to_owned()));
    Templates::from_files(files, Source::Builtin).unwrap()
}

#[tokio::test]
async fn a_kind_the_caches_lack_is_listed_then_cached() {
    use codeserver_service::render::ActiveTemplates;
    let sim = Sim::start().await.unwrap();
    let templates = Arc::new(ActiveTemplates::new(templates_plus((
        "requestauthentication.yaml.j2",
        REQUEST_AUTHENTICATION,
    ))));
    let rec = world::reconciler(&sim).templates(templates).build();
    world::caches_settled(&sim, &rec).await;
    const KIND: &str = "security.istio.io/v1/RequestAuthentication";
    assert!(!rec.caches().is_cached(KIND));

    sim.reset_requests();
    let p = rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert_eq!(p.instance.status.status, InstanceStatus::Running);
    let requests = recorded(&sim);
    assert!(
        requests.contains(&"list requestauthentications".to_owned()),
        "the plan listed the kind no cache held: {requests:?}"
    );
    assert_eq!(sim.list_objects("requestauthentications").len(), 1);
    assert!(rec.caches().is_cached(KIND), "and cached it from then on");

    tokio::time::timeout(Duration::from_secs(10), rec.caches().wait_synced())
        .await
        .unwrap()
        .unwrap();
    world::eventually::eventually("the new cache watches", Duration::from_secs(10), || async {
        (sim.count("watch", "requestauthentications") > 0).then_some(())
    })
    .await;
    sim.reset_requests();
    let again = rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert_eq!(again.message, "Using existing instance");
    assert_eq!(recorded(&sim), Vec::<String>::new());

    rec.delete(&john(), &p.instance.id).await.unwrap();
    assert!(sim.list_objects("requestauthentications").is_empty());
}
