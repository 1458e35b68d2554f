//! The reconciler against the simulated cluster, through the real kube client: every
//! lifecycle path, the status table, pruning, recreate, template changes, concurrency,
//! retries under injected faults and permanent errors.

mod support;
#[path = "support/world.rs"]
mod world;

use std::{path::Path, sync::Arc, time::Duration};

use codeserver_service::{
    instance::{InstanceStatus, Status},
    reconcile::{Error, InstanceFilter, Kinds, Reconciler},
    render::{ActiveTemplates, Templates},
    values::{Owner, Repo},
};
use codeserver_sim::{Fault, PodBehaviour, Sim};
use serde::Deserialize;
use serde_json::{Value, json};
use support::templates::{edited_templates as templates_with, replace_in};
use world::eventually::eventually;
use world::{NS, ReconcilerBuilder};

struct Env {
    sim: Sim,
    rec: Arc<Reconciler>,
    templates: Arc<ActiveTemplates>,
}

async fn env() -> Env {
    env_with(Templates::builtin().unwrap(), Some("v1")).await
}

async fn env_with(templates: Templates, istio: Option<&str>) -> Env {
    env_ready_within(templates, istio, Duration::from_secs(10)).await
}

/// A simulated cluster and the fixture's reconciler over it with `templates`, Istio
/// `istio` and readiness within `ready`; it sees every answer of the cluster (no client
/// retry) and reports an unschedulable pod at once.
async fn env_ready_within(templates: Templates, istio: Option<&str>, ready: Duration) -> Env {
    let sim = Sim::start().await.unwrap();
    let templates = Arc::new(ActiveTemplates::new(templates));
    let rec = ReconcilerBuilder::on(world::client_without_retry(&sim))
        .kinds(Kinds::new(istio.map(str::to_owned)))
        .templates(templates.clone())
        .ready_timeout(ready)
        .unschedulable_timeout(Duration::ZERO)
        .build();
    Env {
        sim,
        rec,
        templates,
    }
}

/// Waits until the reconciler has seen pod `id` go: its caches learn it from their
/// watch, after the cluster.
async fn pod_gone(rec: &Reconciler, id: &str) -> bool {
    let caches = rec.caches();
    let gone = async {
        caches.wait_synced().await?;
        caches.pods().wait_object(id, |p| p.is_none()).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), gone).await,
        Ok(Ok(_))
    )
}

fn john() -> Owner {
    Owner {
        user_id: "John.Doe".into(),
        email: Some("john@corp.example".into()),
        sub: Some("3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f".into()),
        known_name: None,
        gitea_token: None,
    }
}

fn jane() -> Owner {
    Owner {
        user_id: "jane".into(),
        email: None,
        sub: Some("0b7e4f3a-1111-4222-8333-444455556666".into()),
        known_name: None,
        gitea_token: None,
    }
}

fn repo(name: &str) -> Repo {
    Repo::new(
        "devteam",
        name,
        &format!("http://gitea:3000/devteam/{name}.git"),
    )
    .unwrap()
}

/// Replaces the first `from` in the set's `values.yaml` with `to`.
fn set_value(dir: &Path, from: &str, to: &str) {
    replace_in(dir, "values.yaml", from, to);
}

fn kinds_of(sim: &Sim, plural: &str) -> Vec<Value> {
    sim.list_objects(plural)
}

fn pod(sim: &Sim, name: &str) -> Option<Value> {
    sim.object("pods", NS, name)
}

#[tokio::test]
async fn a_fresh_provision_writes_each_object_once_and_becomes_ready() {
    let e = env().await;
    e.sim.reset_requests();
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert!(p.is_new);
    assert_eq!(p.message, "Instance created successfully");
    assert_eq!(
        p.instance.status.status,
        InstanceStatus::Running,
        "{:?}",
        p.instance.status
    );
    assert!(p.instance.id.starts_with("code-server-john-doe-"));
    assert_eq!(
        p.instance.url,
        format!(
            "https://code-{}.devplatform.local",
            &p.instance.id["code-server-".len()..]
        )
    );
    // One apply per object, and the record of the start on the volume (a merge patch under
    // the lifecycle's own field manager).
    let (writes, lifecycle): (Vec<_>, Vec<_>) = e
        .sim
        .writes()
        .into_iter()
        .partition(|w| w.field_manager.as_deref() == Some("codeserver-service"));
    let mut written: Vec<String> = writes
        .iter()
        .map(|w| format!("{} {}", w.verb, w.resource))
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "patch networkpolicies",
            "patch networkpolicies",
            "patch persistentvolumeclaims",
            "patch pods",
            "patch services",
            "patch virtualservices"
        ]
    );
    let lifecycle: Vec<(String, Option<String>)> = lifecycle
        .into_iter()
        .map(|w| (format!("{} {}", w.verb, w.resource), w.field_manager))
        .collect();
    assert_eq!(
        lifecycle,
        [(
            "patch persistentvolumeclaims".to_owned(),
            Some("codeserver-service-lifecycle".to_owned())
        )]
    );
    let pvc = e
        .sim
        .object("persistentvolumeclaims", NS, &p.instance.pvc_name)
        .unwrap();
    assert_eq!(
        pvc["metadata"]["annotations"]["devplatform.io/user-id"],
        "John.Doe"
    );
    assert!(
        pvc["metadata"]["annotations"]["devplatform.io/repos"]
            .as_str()
            .unwrap()
            .contains("backend-api")
    );
}

#[tokio::test]
async fn provisioning_an_unchanged_instance_makes_no_writes() {
    let e = env().await;
    e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    e.sim.reset_requests();
    let again = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert!(!again.is_new);
    assert_eq!(again.message, "Using existing instance");
    assert_eq!(e.sim.writes().len(), 0, "writes: {:?}", e.sim.writes());
    let plan = e.rec.plan_for(&john(), repo("backend-api")).await.unwrap();
    assert!(plan.is_unchanged(), "{plan}");
    assert_eq!(plan.steps.len(), 6);
}

#[tokio::test]
async fn a_second_repository_is_cloned_into_the_running_pod_without_a_restart() {
    let e = env().await;
    let first = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    let uid = pod(&e.sim, &first.instance.id).unwrap()["metadata"]["uid"].clone();
    let second = e.rec.provision(&john(), repo("frontend")).await.unwrap();
    assert_eq!(second.message, "Repository added to the running instance");
    assert_eq!(
        second
            .instance
            .repos
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["backend-api", "frontend"]
    );
    assert_eq!(
        pod(&e.sim, &first.instance.id).unwrap()["metadata"]["uid"],
        uid,
        "the pod was not restarted"
    );
    assert!(
        second.instance.restart_pending,
        "the pod's spec lists one repository; the next start applies both"
    );
    let jobs = kinds_of(&e.sim, "jobs");
    assert_eq!(jobs.len(), 1);
    let env = &jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    let repos = env
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == "REPOS"))
        .and_then(|v| v["value"].as_str())
        .unwrap_or_default();
    assert!(
        repos.lines().any(|l| l.starts_with("frontend id-")
            && l.ends_with(" http://gitea:3000/devteam/frontend.git")),
        "{env}"
    );
    assert_eq!(
        jobs[0]["spec"]["template"]["spec"]["nodeName"],
        pod(&e.sim, &first.instance.id).unwrap()["spec"]["nodeName"]
    );
}

#[tokio::test]
async fn a_repository_added_while_the_pod_starts_is_cloned_once_it_is_ready() {
    let e = env_ready_within(
        Templates::builtin().unwrap(),
        Some("v1"),
        Duration::from_secs(2),
    )
    .await;
    let id = format!(
        "code-server-{}",
        codeserver_service::naming::safe_name("John.Doe").unwrap()
    );
    e.sim.set_pod_behaviour(&id, PodBehaviour::NeverReady);
    let first = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert_eq!(first.instance.status.status, InstanceStatus::Starting);
    assert_eq!(first.message, "Instance created; still starting");
    let second = e.rec.provision(&john(), repo("frontend")).await.unwrap();
    assert_eq!(
        second.message,
        "Repository recorded; it is cloned as soon as the instance is ready"
    );
    assert!(
        kinds_of(&e.sim, "jobs").is_empty(),
        "nothing to clone into yet"
    );

    e.sim.set_pod_behaviour(&id, PodBehaviour::Normal);
    e.sim
        .wait_until(Duration::from_secs(10), |sim| {
            !sim.list_objects("jobs").is_empty()
        })
        .await;
    let jobs = kinds_of(&e.sim, "jobs");
    assert_eq!(
        jobs.len(),
        1,
        "the pod got ready and a sync Job cloned the repository"
    );
    let env = &jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.to_string()
            .contains(" http://gitea:3000/devteam/frontend.git"),
        "{env}"
    );
    let instance = e.rec.get(&john(), &id).await.unwrap();
    assert_eq!(instance.status.status, InstanceStatus::Running);
}

#[tokio::test]
async fn provisioning_right_after_a_delete_creates_a_fresh_instance() {
    let e = env().await;
    let first = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    // NB: a finalizer of someone else's holds the volume while it is being deleted.
    let pvcs: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(e.rec.client().clone(), NS);
    let name = &first.instance.pvc_name;
    let finalizers = |extra: &[&str]| {
        let live = e.sim.object("persistentvolumeclaims", NS, name).unwrap();
        let mut list: Vec<Value> = live["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != "test.example/hold")
            .collect();
        list.extend(extra.iter().map(|f| json!(f)));
        kube::api::Patch::Merge(json!({"metadata": {"finalizers": list}}))
    };
    let params = kube::api::PatchParams::default();
    pvcs.patch(name, &params, &finalizers(&["test.example/hold"]))
        .await
        .unwrap();
    e.rec.delete(&john(), &first.instance.id).await.unwrap();
    let pvc = e
        .sim
        .object("persistentvolumeclaims", NS, &first.instance.pvc_name)
        .expect("the PVC waits for its finalizers");
    assert!(pvc["metadata"]["deletionTimestamp"].is_string(), "{pvc}");
    let old_uid = pvc["metadata"]["uid"].clone();
    assert!(matches!(
        e.rec.stop(&john(), &first.instance.id).await,
        Err(Error::BeingDeleted)
    ));
    e.rec.delete(&john(), &first.instance.id).await.unwrap();
    pvcs.patch(name, &params, &finalizers(&[])).await.unwrap();

    let again = e.rec.provision(&john(), repo("frontend")).await.unwrap();
    assert!(again.is_new, "{}", again.message);
    assert_eq!(again.message, "Instance created successfully");
    assert_eq!(
        again
            .instance
            .repos
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["frontend"]
    );
    let pvc = e
        .sim
        .object("persistentvolumeclaims", NS, &first.instance.pvc_name)
        .unwrap();
    assert!(pvc["metadata"]["deletionTimestamp"].is_null(), "{pvc}");
    assert_ne!(
        pvc["metadata"]["uid"], old_uid,
        "a new volume, not the old one"
    );
}

#[tokio::test]
async fn a_volume_that_does_not_go_answers_instance_is_being_deleted() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use kube::api::{Patch, PatchParams};
    let e = env_ready_within(
        Templates::builtin().unwrap(),
        Some("v1"),
        Duration::from_millis(500),
    )
    .await;
    let first = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    // Another controller holds the volume (as a backup tool's finalizer would).
    let pvcs: kube::Api<PersistentVolumeClaim> =
        kube::Api::namespaced(kube::Client::try_from(e.sim.config()).unwrap(), NS);
    let hold = serde_json::json!({"metadata": {"finalizers": ["kubernetes.io/pvc-protection", "backup.example.com/hold"]}});
    pvcs.patch(
        &first.instance.pvc_name,
        &PatchParams::default(),
        &Patch::Merge(&hold),
    )
    .await
    .unwrap();
    e.rec.delete(&john(), &first.instance.id).await.unwrap();
    e.sim.reset_requests();
    let again = e.rec.provision(&john(), repo("frontend")).await;
    assert!(matches!(again, Err(Error::BeingDeleted)), "{again:?}");
    assert!(
        e.sim.writes().is_empty(),
        "nothing is applied over a volume being deleted: {:?}",
        e.sim.writes()
    );
}

#[tokio::test]
async fn stop_keeps_the_volume_and_start_brings_the_pod_back() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    let id = p.instance.id.clone();
    e.rec.stop(&john(), &id).await.unwrap();
    assert!(pod_gone(&e.rec, &id).await);
    let stopped = e.rec.get(&john(), &id).await.unwrap();
    assert_eq!(stopped.status.status, InstanceStatus::Stopped);
    assert!(
        e.sim
            .object("persistentvolumeclaims", NS, &p.instance.pvc_name)
            .is_some()
    );
    let started = e.rec.start(&john(), &id).await.unwrap();
    assert_eq!(started.status.status, InstanceStatus::Running);
    assert_eq!(started.repos, p.instance.repos);
    let again = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert!(!again.is_new);
}

#[tokio::test]
async fn provision_starts_a_stopped_instance() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    e.rec.stop(&john(), &p.instance.id).await.unwrap();
    let again = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert_eq!(again.message, "Instance started");
    assert_eq!(again.instance.status.status, InstanceStatus::Running);
}

#[tokio::test]
async fn delete_removes_every_object_of_that_instance_only() {
    let e = env().await;
    let j = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    let other = e.rec.provision(&jane(), repo("backend-api")).await.unwrap();
    e.rec.provision(&john(), repo("frontend")).await.unwrap(); // leaves a sync Job behind
    e.rec.delete(&john(), &j.instance.id).await.unwrap();
    // NB: the PVC goes only once its pod has (the pvc-protection finalizer).
    assert!(
        e.sim
            .wait_for(
                "persistentvolumeclaims",
                NS,
                &j.instance.pvc_name,
                Duration::from_secs(5),
                |o| o.is_none()
            )
            .await
    );
    for plural in [
        "persistentvolumeclaims",
        "services",
        "networkpolicies",
        "virtualservices",
        "jobs",
    ] {
        let left: Vec<String> = kinds_of(&e.sim, plural)
            .iter()
            .filter(|o| {
                o["metadata"]["labels"]["app.kubernetes.io/instance"] == j.instance.id.as_str()
            })
            .map(|o| o["metadata"]["name"].to_string())
            .collect();
        assert!(left.is_empty(), "{plural} left: {left:?}");
    }
    assert!(pod_gone(&e.rec, &j.instance.id).await);
    assert!(
        e.sim
            .object("persistentvolumeclaims", NS, &other.instance.pvc_name)
            .is_some()
    );
    assert_eq!(
        e.rec
            .get(&jane(), &other.instance.id)
            .await
            .unwrap()
            .status
            .status,
        InstanceStatus::Running
    );
    assert!(matches!(
        e.rec.get(&john(), &j.instance.id).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn another_users_instance_is_not_found_for_every_operation() {
    let e = env().await;
    let j = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    let id = j.instance.id.as_str();
    e.sim.reset_requests();
    let answers = [
        ("get", e.rec.get(&jane(), id).await.map(drop)),
        ("status", e.rec.status(&jane(), id).await.map(drop)),
        ("stop", e.rec.stop(&jane(), id).await.map(drop)),
        ("start", e.rec.start(&jane(), id).await.map(drop)),
        ("sync", e.rec.sync(&jane(), id).await.map(drop)),
        ("delete", e.rec.delete(&jane(), id).await.map(drop)),
        ("logs", e.rec.logs(&jane(), id, 10).await.map(drop)),
        (
            "get of no instance",
            e.rec.get(&jane(), "code-server-nobody").await.map(drop),
        ),
        (
            "get of a path",
            e.rec.get(&jane(), "../../etc").await.map(drop),
        ),
    ];
    for (operation, answer) in answers {
        assert!(
            matches!(answer, Err(Error::NotFound)),
            "{operation}: {answer:?}"
        );
    }
    assert!(e.sim.writes().is_empty());
    assert!(e.rec.list(&jane()).await.unwrap().is_empty());
    assert_eq!(e.rec.list(&john()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_instance_survives_a_username_change() {
    let e = env().await;
    let j = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    let renamed = Owner {
        user_id: "jdoe".into(),
        ..john()
    };
    let again = e
        .rec
        .provision(&renamed, repo("backend-api"))
        .await
        .unwrap();
    assert!(!again.is_new);
    assert_eq!(again.instance.id, j.instance.id);
    assert_eq!(e.rec.list(&renamed).await.unwrap().len(), 1);
    // a new user who takes the old name does not get the instance
    let impostor = Owner {
        user_id: "John.Doe".into(),
        email: None,
        sub: Some("99999999-0000-4000-8000-000000000000".into()),
        known_name: None,
        gitea_token: None,
    };
    assert!(matches!(
        e.rec.get(&impostor, &j.instance.id).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn a_template_change_leaves_running_pods_alone_until_they_restart() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    let id = p.instance.id.clone();
    let uid = pod(&e.sim, &id).unwrap()["metadata"]["uid"].clone();
    e.templates.swap(templates_with(|d| {
        set_value(d, "  port: 80\n", "  port: 8000\n")
    }));
    let plan = e.rec.plan_for(&john(), repo("backend-api")).await.unwrap();
    let text = plan.to_string();
    assert!(text.contains("update Service/"), "{text}");
    e.sim.reset_requests();
    let again = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert_eq!(pod(&e.sim, &id).unwrap()["metadata"]["uid"], uid);
    let svc = e.sim.object("services", NS, &id).unwrap();
    assert_eq!(
        svc["spec"]["ports"][0]["port"], 80,
        "running instance untouched"
    );
    assert!(
        e.sim
            .writes()
            .iter()
            .all(|w| w.resource == "persistentvolumeclaims" || w.resource == "networkpolicies"),
        "{:?}",
        e.sim.writes()
    );
    assert_eq!(again.instance.status.status, InstanceStatus::Running);

    e.templates.swap(templates_with(|d| {
        set_value(d, "  port: 80\n", "  port: 8000\n");
        set_value(
            d,
            "  imagePullPolicy: IfNotPresent",
            "  imagePullPolicy: Always",
        );
    }));
    let plan = e.rec.plan_for(&john(), repo("backend-api")).await.unwrap();
    assert_eq!(plan.count("recreate"), 1, "{plan}");
    assert!(e.rec.get(&john(), &id).await.unwrap().restart_pending);
    let started = e.rec.start(&john(), &id).await.unwrap();
    assert_eq!(started.status.status, InstanceStatus::Running);
    let new_pod = pod(&e.sim, &id).unwrap();
    assert_ne!(new_pod["metadata"]["uid"], uid, "start recreated the pod");
    assert_eq!(
        new_pod["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    assert_eq!(
        e.sim.object("services", NS, &id).unwrap()["spec"]["ports"][0]["port"],
        8000
    );
    assert!(!started.restart_pending);
    assert!(
        e.rec
            .plan_for(&john(), repo("backend-api"))
            .await
            .unwrap()
            .is_unchanged()
    );
}

/// `n` owners (`dev0`, `dev1`, ...), each with an instance of `backend-api`.
async fn provision_owners(e: &Env, n: usize) -> Vec<Owner> {
    let owners: Vec<Owner> = (0..n)
        .map(|n| Owner {
            sub: Some(format!("sub-{n}")),
            ..Owner::new(format!("dev{n}"))
        })
        .collect();
    for o in &owners {
        e.rec.provision(o, repo("backend-api")).await.unwrap();
    }
    owners
}

/// Reads answer `restartPending` from the spec hash recorded on the live pod: listing
/// renders nothing for inputs already rendered under the active templates, and a template
/// change renders each instance at most once, however often it is read.
#[tokio::test]
async fn reads_answer_restart_pending_without_rendering_per_read() {
    let e = env().await;
    let owners = provision_owners(&e, 5).await;
    let all = |e: &Env| {
        let rec = e.rec.clone();
        async move { rec.all(&InstanceFilter::default()).await.unwrap() }
    };

    let before = e.rec.renders();
    for _ in 0..3 {
        let listed = all(&e).await;
        assert_eq!(listed.len(), owners.len());
        assert!(listed.iter().all(|i| !i.restart_pending), "{listed:?}");
        for o in &owners {
            assert_eq!(e.rec.list(o).await.unwrap().len(), 1);
        }
    }
    assert_eq!(
        e.rec.renders(),
        before,
        "reads rendered the instances again"
    );

    e.templates.swap(templates_with(|d| {
        set_value(
            d,
            "  imagePullPolicy: IfNotPresent",
            "  imagePullPolicy: Always",
        );
    }));
    let changed = e.rec.renders();
    assert!(all(&e).await.iter().all(|i| i.restart_pending));
    let once = e.rec.renders();
    assert!(once - changed <= owners.len() as u64, "{}", once - changed);
    for _ in 0..3 {
        assert!(all(&e).await.iter().all(|i| i.restart_pending));
        let id = e.rec.list(&owners[0]).await.unwrap()[0].id.clone();
        assert!(e.rec.get(&owners[0], &id).await.unwrap().restart_pending);
    }
    assert_eq!(
        e.rec.renders(),
        once,
        "a template revision is rendered once"
    );

    // NB: a change that leaves the pod alone does not ask for a restart.
    e.templates.swap(templates_with(|d| {
        set_value(d, "  port: 80\n", "  port: 8000\n")
    }));
    assert!(all(&e).await.iter().all(|i| !i.restart_pending));
    let id = e.rec.list(&owners[1]).await.unwrap()[0].id.clone();
    let started = e.rec.start(&owners[1], &id).await.unwrap();
    assert!(!started.restart_pending);
}

/// A replica started after the instances were provisioned (or the service restarted)
/// reads them without rendering any: each pod carries the digest of what it was rendered
/// from. Other settings give another digest, so that replica renders and finds the
/// restart the new image needs.
#[tokio::test]
async fn another_replica_reads_restart_pending_without_rendering() {
    let e = env().await;
    let owners = provision_owners(&e, 3).await;
    let replica = |settings: Option<codeserver_service::config::InstanceSettings>| {
        let builder = ReconcilerBuilder::on(world::client_without_retry(&e.sim))
            .kinds(Kinds::new(Some("v1".into())))
            .templates(e.templates.clone());
        match settings {
            Some(settings) => builder.settings(settings),
            None => builder,
        }
        .build()
    };

    let same = replica(None);
    let listed = same.all(&InstanceFilter::default()).await.unwrap();
    assert_eq!(listed.len(), owners.len());
    assert!(listed.iter().all(|i| !i.restart_pending), "{listed:?}");
    for o in &owners {
        assert!(!same.list(o).await.unwrap()[0].restart_pending);
    }
    assert_eq!(same.renders(), 0, "the replica rendered to answer reads");

    let mut settings = ReconcilerBuilder::on(world::client_without_retry(&e.sim))
        .build()
        .settings()
        .clone();
    settings.image = "codercom/code-server:4.99.0".into();
    let other = replica(Some(settings));
    let listed = other.all(&InstanceFilter::default()).await.unwrap();
    assert!(listed.iter().all(|i| i.restart_pending), "{listed:?}");
    assert!(other.renders() <= owners.len() as u64);
}

const CONFIGMAP: &str = "{%- import \"_helpers.j2\" as h -%}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  {{ h.metadata(\"settings-\" ~ user.name) | indent(2) }}\ndata:\n  owner: {{ user.id }}\n";

#[tokio::test]
async fn a_kind_added_to_the_templates_is_created_and_pruned_when_removed() {
    let e = env_with(
        templates_with(|d| std::fs::write(d.join("configmap.yaml.j2"), CONFIGMAP).unwrap()),
        Some("v1"),
    )
    .await;
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    let cm_name = format!("settings-{}", &p.instance.id["code-server-".len()..]);
    let cm = e.sim.object("configmaps", NS, &cm_name).unwrap();
    assert_eq!(cm["data"]["owner"], "John.Doe");

    e.templates.swap(Templates::builtin().unwrap());
    let plan = e.rec.plan_for(&john(), repo("backend-api")).await.unwrap();
    assert!(
        plan.to_string()
            .contains(&format!("prune ConfigMap/{cm_name}")),
        "{plan}"
    );
    e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert!(
        e.sim.object("configmaps", NS, &cm_name).is_some(),
        "a running instance is not pruned"
    );
    e.rec.stop(&john(), &p.instance.id).await.unwrap();
    e.rec.start(&john(), &p.instance.id).await.unwrap();
    assert!(
        e.sim.object("configmaps", NS, &cm_name).is_none(),
        "pruned on start"
    );
    assert!(
        e.sim
            .object("persistentvolumeclaims", NS, &p.instance.pvc_name)
            .is_some()
    );
}

#[tokio::test]
async fn failures_report_error_with_a_reason() {
    let cases = [
        (PodBehaviour::ErrImagePull, "ImagePullBackOff"),
        (PodBehaviour::CrashLoop, "CrashLoopBackOff"),
        (
            PodBehaviour::CreateContainerConfigError,
            "CreateContainerConfigError",
        ),
        (PodBehaviour::InitFail, "init container git-clone failed"),
        (PodBehaviour::Unschedulable, "cannot be scheduled"),
    ];
    for (behaviour, needle) in cases {
        let e = env().await;
        let id = format!(
            "code-server-{}",
            codeserver_service::naming::safe_name("John.Doe").unwrap()
        );
        e.sim.set_pod_behaviour(&id, behaviour);
        let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
        // NB: the reason may change later (an init container that keeps failing goes on
        // to CrashLoopBackOff), so provisioning's own answer counts first.
        let reports = |status: &Status| {
            status.status == InstanceStatus::Error
                && status
                    .reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains(needle)
        };
        let status = if reports(&p.instance.status) {
            p.instance.status.clone()
        } else {
            let what = format!("{behaviour:?} is reported as ERROR with {needle:?}");
            eventually(&what, Duration::from_secs(10), || async {
                let status = e.rec.status(&john(), &id).await.unwrap();
                reports(&status).then_some(status)
            })
            .await
        };
        assert_eq!(
            status.status,
            InstanceStatus::Error,
            "{behaviour:?}: {status:?}"
        );
        assert!(
            status
                .reason
                .as_deref()
                .unwrap_or_default()
                .contains(needle),
            "{behaviour:?}: {status:?}"
        );
        if behaviour == PodBehaviour::InitFail {
            let logs = e.rec.logs(&john(), &id, 20).await.unwrap();
            assert!(logs.contains("fatal"), "the clone container's log: {logs}");
            let got = e.rec.get(&john(), &id).await.unwrap();
            let reason = got.status.reason.unwrap_or_default();
            assert!(
                reason.contains("error: cloning repo failed"),
                "the failed repository is named: {reason}"
            );
        }
    }
}

#[tokio::test]
async fn logs_return_the_last_lines_of_code_server() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    e.sim
        .set_logs(NS, &p.instance.id, "code-server", &["one", "two", "three"]);
    let logs = e.rec.logs(&john(), &p.instance.id, 2).await.unwrap();
    assert_eq!(logs.lines().collect::<Vec<_>>(), ["two", "three"]);
    e.rec.stop(&john(), &p.instance.id).await.unwrap();
    assert!(pod_gone(&e.rec, &p.instance.id).await);
    assert!(matches!(
        e.rec.logs(&john(), &p.instance.id, 2).await,
        Err(Error::NotReady(_))
    ));
}

#[tokio::test]
async fn sync_runs_a_job_on_the_pods_node_and_reports_failure_with_the_reason() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    e.rec.sync(&john(), &p.instance.id).await.unwrap();
    assert_eq!(kinds_of(&e.sim, "jobs").len(), 1);
    e.templates.swap(templates_with(|d| {
        set_value(
            d,
            "image: alpine/git:2.47.2",
            "image: registry.local/git-jobfail:1",
        )
    }));
    let err = e.rec.sync(&john(), &p.instance.id).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("sync failed: BackoffLimitExceeded"),
        "{text}"
    );
    e.rec.stop(&john(), &p.instance.id).await.unwrap();
    assert!(pod_gone(&e.rec, &p.instance.id).await);
    assert!(matches!(
        e.rec.sync(&john(), &p.instance.id).await,
        Err(Error::NotReady(_))
    ));
}

#[tokio::test]
async fn twenty_concurrent_provisions_make_one_instance() {
    let e = env().await;
    e.sim.reset_requests();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let rec = e.rec.clone();
            tokio::spawn(async move { rec.provision(&john(), repo("backend-api")).await })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_new {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    assert_eq!(kinds_of(&e.sim, "persistentvolumeclaims").len(), 1);
    assert_eq!(kinds_of(&e.sim, "pods").len(), 1);
    // Six applies and the one record of the start.
    assert_eq!(e.sim.writes().len(), 7, "{:?}", e.sim.writes());
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let e = env().await;
    e.sim.inject(Fault {
        verb: Some("patch".into()),
        resource: Some("persistentvolumeclaims".into()),
        times: Some(2),
        ..Fault::status(500)
    });
    e.sim.inject(Fault {
        verb: Some("patch".into()),
        resource: Some("pods".into()),
        times: Some(1),
        retry_after: Some(1),
        ..Fault::status(429)
    });
    e.sim.inject(Fault {
        verb: Some("list".into()),
        times: Some(1),
        ..Fault::status(503)
    });
    let started = std::time::Instant::now();
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert_eq!(p.instance.status.status, InstanceStatus::Running);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    // Two failed applies, the one that went through, and the record of the start.
    assert_eq!(e.sim.count("patch", "persistentvolumeclaims"), 4);
}

#[tokio::test]
async fn permanent_errors_surface_with_the_spec_message_and_leave_nothing_unfinishable() {
    let e = env().await;
    e.sim.inject(Fault {
        verb: Some("patch".into()),
        resource: Some("pods".into()),
        ..Fault::status(403)
    });
    let err = e
        .rec
        .provision(&john(), repo("backend-api"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to create instance: apply Pod/"),
        "{err}"
    );
    assert!(err.to_string().contains("Forbidden"), "{err}");
    assert_eq!(e.sim.count("patch", "pods"), 1, "403 is not retried");
    e.sim.clear_faults();
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    assert_eq!(p.instance.status.status, InstanceStatus::Running);

    let e = env().await;
    e.sim.inject(Fault {
        verb: Some("patch".into()),
        resource: Some("persistentvolumeclaims".into()),
        ..Fault::status(422)
    });
    let err = e
        .rec
        .provision(&john(), repo("backend-api"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("failed to create storage"),
        "{err}"
    );
    assert!(
        kinds_of(&e.sim, "pods").is_empty(),
        "nothing after the PVC was attempted"
    );
}

#[tokio::test]
async fn a_failed_list_stops_the_reconcile_before_any_write() {
    let e = env().await;
    e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    e.sim.inject(Fault {
        verb: Some("list".into()),
        resource: Some("services".into()),
        ..Fault::status(403)
    });
    // NB: a reconciler whose cache of Services cannot sync lists them for the plan.
    let rec = ReconcilerBuilder::on(e.rec.client().clone())
        .kinds(Kinds::new(Some("v1".to_owned())))
        .templates(e.templates.clone())
        .settings(e.rec.settings().clone())
        .build();
    e.sim.reset_requests();
    assert!(rec.provision(&john(), repo("frontend")).await.is_err());
    assert!(e.sim.writes().is_empty());
}

#[tokio::test]
async fn stats_count_instances_by_status_and_storage() {
    let e = env().await;
    let j = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    e.rec.provision(&jane(), repo("backend-api")).await.unwrap();
    e.rec.stop(&john(), &j.instance.id).await.unwrap();
    assert!(pod_gone(&e.rec, &j.instance.id).await);
    let stats = e.rec.stats().await.unwrap();
    assert_eq!(stats.total, 2);
    assert_eq!(stats.by_status.get(&InstanceStatus::Running), Some(&1));
    assert_eq!(stats.by_status.get(&InstanceStatus::Stopped), Some(&1));
    assert_eq!(stats.storage.to_string(), "20Gi");
}

#[tokio::test]
async fn istio_is_resolved_once_and_its_absence_is_a_clear_error() {
    let e = env().await;
    let kinds = Kinds::discover(e.rec.client()).await.unwrap();
    assert_eq!(kinds.istio_version(), Some("v1"));

    let e = env_with(Templates::builtin().unwrap(), None).await;
    let err = e
        .rec
        .provision(&john(), repo("backend-api"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("VirtualService"), "{err}");
    assert!(e.sim.writes().is_empty(), "degraded before any write");
    let no_vs = templates_with(|d| {
        set_value(
            d,
            "renders is left out of what is applied).\n  enabled: true",
            "virtualService:\n  enabled: false",
        )
    });
    let e = env_with(no_vs, None).await;
    assert!(e.rec.provision(&john(), repo("backend-api")).await.is_ok());

    let e = env().await;
    let beta = ReconcilerBuilder::on(e.rec.client().clone())
        .kinds(Kinds::new(Some("v1beta1".into())))
        .templates(e.templates.clone())
        .build();
    let p = beta.render_for(&john(), repo("x")).await.unwrap();
    assert!(
        p.iter()
            .any(|r| r.object.types.as_ref().unwrap().api_version == "networking.istio.io/v1")
    );
}

#[tokio::test]
async fn the_plan_command_shows_what_provisioning_would_change_and_changes_nothing() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_yaml_ng::to_string(&e.sim.kubeconfig()).unwrap(),
    )
    .unwrap();
    let plan = |extra: &'static [&'static str]| {
        let kubeconfig = kubeconfig.clone();
        async move {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_codeserver-service"));
            cmd.args([
                "plan",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--user",
                "John.Doe",
                "--sub",
                "3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f",
                "--email",
                "john@corp.example",
                "--repo-owner",
                "devteam",
                "--repo-name",
                "backend-api",
            ]);
            cmd.args(extra);
            cmd.env("JWT_ISSUER", "https://keycloak.test/realms/devplatform");
            let out = cmd.output().await.unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    e.sim.reset_requests();
    let fresh = plan(&[]).await;
    let actions: Vec<&str> = fresh.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(actions.len(), 6, "{fresh}");
    assert!(actions.iter().all(|l| l.starts_with("create ")), "{fresh}");
    assert!(
        fresh.contains("create PersistentVolumeClaim/workspace-john-doe-"),
        "{fresh}"
    );
    assert!(
        e.sim.writes().is_empty(),
        "plan wrote: {:?}",
        e.sim.writes()
    );

    e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    let same = plan(&[]).await;
    assert!(same.lines().all(|l| l.starts_with("unchanged ")), "{same}");
    let changed = plan(&["--set", "service.port=8000"]).await;
    assert!(
        changed.contains("update Service/code-server-john-doe-"),
        "{changed}"
    );
    assert!(
        changed.contains("\"path\": \"/spec/ports/0/port\""),
        "{changed}"
    );
    assert!(changed.contains("\"value\": 8000"), "{changed}");
}

/// Runs the binary with `args` and the simulated cluster's kubeconfig; its stdout.
async fn run_cli(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_codeserver-service"))
        .args(args)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .env("JWT_ISSUER", "https://keycloak.test/realms/devplatform")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write_kubeconfig(e: &Env, dir: &tempfile::TempDir) -> std::path::PathBuf {
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_yaml_ng::to_string(&e.sim.kubeconfig()).unwrap(),
    )
    .unwrap();
    kubeconfig
}

const JOHN_TARGET: &[&str] = &[
    "--user",
    "John.Doe",
    "--email",
    "john@corp.example",
    "--repo-owner",
    "devteam",
    "--repo-name",
    "backend-api",
];

#[tokio::test]
async fn applying_what_render_prints_leaves_nothing_for_plan_to_change() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(&e, &dir);
    let sub = ["--sub", "3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f"];
    let render: Vec<&str> = ["render"]
        .into_iter()
        .chain(JOHN_TARGET.iter().copied())
        .chain(sub)
        .collect();
    let manifests = run_cli(&kubeconfig, &render).await;
    assert!(manifests.contains("devplatform.io/kinds"), "{manifests}");
    let client = kube::Client::try_from(e.sim.config()).unwrap();
    let kinds = Kinds::new(Some("v1".to_owned()));
    let mut applied = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(&manifests) {
        let value = serde_yaml_ng::Value::deserialize(doc).unwrap();
        if value.is_null() {
            continue;
        }
        let object: kube::api::DynamicObject = serde_yaml_ng::from_value(value).unwrap();
        // NB: the access policy lives in the gateway's namespace, the rest in NS.
        let ns = object.metadata.namespace.clone().unwrap();
        codeserver_service::reconcile::apply::server_side_apply(&client, &kinds, &ns, &object)
            .await
            .unwrap();
        applied += 1;
    }
    assert_eq!(applied, 6, "{manifests}");
    let plan: Vec<&str> = ["plan"]
        .into_iter()
        .chain(JOHN_TARGET.iter().copied())
        .chain(sub)
        .collect();
    let planned = run_cli(&kubeconfig, &plan).await;
    assert!(
        planned.lines().all(|l| l.starts_with("unchanged ")),
        "render == apply: {planned}"
    );
}

#[tokio::test]
async fn plan_and_render_without_sub_use_the_recorded_owner_and_repositories() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(&e, &dir);
    let p = e.rec.provision(&john(), repo("backend-api")).await.unwrap();
    e.rec.provision(&john(), repo("frontend")).await.unwrap();
    e.rec.stop(&john(), &p.instance.id).await.unwrap();
    e.rec.start(&john(), &p.instance.id).await.unwrap();

    let plan: Vec<&str> = ["plan"]
        .into_iter()
        .chain(JOHN_TARGET.iter().copied())
        .collect();
    let planned = run_cli(&kubeconfig, &plan).await;
    assert!(
        planned.lines().all(|l| l.starts_with("unchanged ")),
        "no false ownership change, no dropped repository: {planned}"
    );
    let render: Vec<&str> = ["render"]
        .into_iter()
        .chain(JOHN_TARGET.iter().copied())
        .collect();
    let manifests = run_cli(&kubeconfig, &render).await;
    assert!(
        manifests
            .lines()
            .any(|l| l.trim_start().starts_with("frontend ")
                && l.ends_with(" http://gitea:3000/devteam/frontend.git")),
        "both repositories: {manifests}"
    );
    assert!(
        manifests.contains("3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f"),
        "the recorded owner: {manifests}"
    );
}

#[tokio::test]
async fn the_healthcheck_command_fails_when_nothing_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_codeserver-service"))
        .args(["healthcheck", "--port", &port.to_string()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unhealthy"));
}

#[tokio::test]
async fn an_admin_start_keeps_the_owners_principal_when_the_sub_is_not_a_label_value() {
    let e = env().await;
    let owner = Owner {
        sub: Some("auth0|user/1".into()),
        ..jane()
    };
    let p = e.rec.provision(&owner, repo("backend-api")).await.unwrap();
    let id = p.instance.id.clone();
    // NB: the gatekeeper lets in the recorded owner, by `sub`.
    let principal = |sim: &Sim| {
        let pvc = sim
            .object("persistentvolumeclaims", NS, &p.instance.pvc_name)
            .expect("the record");
        pvc["metadata"]["annotations"]["devplatform.io/sub"].clone()
    };
    let expected = json!("auth0|user/1");
    assert_eq!(principal(&e.sim), expected);

    // An admin acts on the instance knowing only its id: the owner comes from the record.
    let recorded = e.rec.owner_of(&id).await.unwrap();
    assert_eq!(recorded.sub.as_deref(), Some("auth0|user/1"));
    e.rec.stop(&recorded, &id).await.unwrap();
    e.rec.start(&recorded, &id).await.unwrap();
    assert_eq!(principal(&e.sim), expected, "the owner still gets in");
    assert!(world::record_cached(&e.rec, &p.instance.pvc_name).await);
    assert_eq!(
        e.rec.workspace_access(&id, "jane", "auth0|user/1"),
        codeserver_service::reconcile::WorkspaceAccess::Owner
    );
}
