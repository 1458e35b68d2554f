//! Recoverable delete (DELETE_RETENTION), through GraphQL and the Lease holder's check
//! against the simulated cluster: a delete keeps the workspace volume (the same PVC),
//! shown DELETED with `purgeAt`, refused by every other operation and by the workspace
//! gatekeeper; `restoreCodeServer` brings it back and a start runs it; `purge: true`
//! deletes it at once; the Lease holder purges it by the purge time recorded at deletion,
//! whatever its own DELETE_RETENTION; provisioning over it is refused with nothing
//! written; another user can neither see, restore nor purge it; retention 0 keeps the
//! immediate delete; stats and metrics count deleted instances. Times are passed to each
//! check explicitly, so nothing waits for the clock.

#[path = "support/mod.rs"]
mod support;
#[path = "support/world.rs"]
mod world;

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    activity::{Culler, IdlePolicy, IdleSettings},
    reconcile::{Reconciler, WorkspaceAccess},
};
use codeserver_sim::heartbeat::CodeServers;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::{Value, json};
use world::{NS, World, error_of, ok};

const HOUR: u64 = 3600;
const WEEK: u64 = 7 * 24 * HOUR;

const FIELDS: &str = "id status deletedAt purgeAt stopReason";
const DELETE: &str = "mutation($id: String!) { deleteCodeServer(id: $id) }";
const PURGE: &str = "mutation($id: String!) { deleteCodeServer(id: $id, purge: true) }";
const RESTORE: &str =
    "mutation($id: String!) { restoreCodeServer(id: $id) { id status deletedAt purgeAt } }";
const START: &str = "mutation($id: String!) { startCodeServer(id: $id) { id status } }";

/// No idle stop (the checks below pass times days ahead), extensions allowed.
fn policy() -> IdlePolicy {
    IdlePolicy {
        timeout: Duration::ZERO,
        warning: Duration::from_secs(60),
        max_extension: Duration::from_secs(8 * HOUR),
    }
}

async fn world(retention: u64) -> World {
    World::builder()
        .reconciler(move |r| {
            r.idle_policy(policy())
                .delete_retention(Duration::from_secs(retention))
        })
        .start()
        .await
}

/// A second replica over the same cluster, with its own DELETE_RETENTION.
async fn replica(w: &World, retention: u64) -> Arc<Reconciler> {
    let reconciler = world::reconciler(w.sim())
        .idle_policy(policy())
        .delete_retention(Duration::from_secs(retention))
        .build();
    world::caches_settled(w.sim(), &reconciler).await;
    reconciler
}

fn culler(reconciler: &Arc<Reconciler>, code: &CodeServers, name: &str) -> Culler {
    let settings = IdleSettings {
        check_interval: Duration::from_secs(60),
        policy: policy(),
        check_concurrency: 4,
        healthz_url: code.url_template(),
        lease_name: "codeserver-service-idle-culler".to_owned(),
        pod_name: Some(name.to_owned()),
    };
    Culler::new(reconciler.clone(), &settings, None).unwrap()
}

async fn provisioned(w: &World, token: &str) -> String {
    provisioned_with(w, token, "backend-api").await
}

/// Provisions `devteam/<repo>` (`docs` is public, `backend-api` alice's and bob's).
async fn provisioned_with(w: &World, token: &str, repo: &str) -> String {
    let body = w.provision(token, "devteam", repo).await;
    let p = ok(&body, "provisionCodeServer");
    assert_eq!(p["instance"]["status"], "RUNNING", "{body}");
    p["instance"]["id"].as_str().unwrap().to_owned()
}

async fn mine(w: &World, token: &str) -> Vec<Value> {
    let body = w
        .query(Some(token), &format!("{{ myCodeServers {{ {FIELDS} }} }}"))
        .await;
    ok(&body, "myCodeServers").as_array().unwrap().clone()
}

fn pvc_name(id: &str) -> String {
    codeserver_service::naming::pvc_name(id.trim_start_matches("code-server-"))
}

fn pvc_uid(w: &World, id: &str) -> Option<String> {
    w.pvc(&pvc_name(id))
        .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
}

fn later(now: Timestamp, seconds: u64) -> Timestamp {
    now.checked_add(SignedDuration::from_secs(i64::try_from(seconds).unwrap()))
        .unwrap()
}

fn timestamp(value: &Value) -> Timestamp {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap()
}

/// The instance's objects left in the cluster, as `plural/name`, its PVC included.
fn objects_of(w: &World, id: &str) -> Vec<String> {
    let plurals = [
        "persistentvolumeclaims",
        "pods",
        "services",
        "networkpolicies",
        "virtualservices",
        "secrets",
        "configmaps",
        "jobs",
    ];
    let mut left = Vec::new();
    for plural in plurals {
        for o in w.sim().list_objects(plural) {
            if o["metadata"]["labels"]["app.kubernetes.io/instance"] == id
                && o["metadata"]["namespace"] == NS
            {
                left.push(format!(
                    "{plural}/{}",
                    o["metadata"]["name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    left.sort();
    left
}

/// Waits (at most 5 s) until `reconciler`'s cache holds the PVC of `id` as `done` wants:
/// a write another replica made reaches this one's cache through its watch.
async fn cached(
    reconciler: &Reconciler,
    id: &str,
    done: impl Fn(Option<&PersistentVolumeClaim>) -> bool,
) {
    let name = pvc_name(id);
    let held = reconciler.caches().pvcs().wait_object(&name, done);
    let seen = tokio::time::timeout(Duration::from_secs(5), held).await;
    assert!(
        matches!(seen, Ok(Ok(_))),
        "the cache never showed {id}'s volume so"
    );
}

fn deleted(pvc: Option<&PersistentVolumeClaim>) -> bool {
    pvc.is_some_and(codeserver_service::instance::retention::is_deleted)
}

/// Requests of the simulated cluster that write.
fn writes(w: &World) -> usize {
    w.sim()
        .requests()
        .iter()
        .filter(|r| {
            matches!(
                r.verb.as_str(),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
        })
        .count()
}

#[tokio::test]
async fn a_delete_keeps_the_volume_until_a_restore_brings_it_back() {
    let w = world(WEEK).await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    let uid = pvc_uid(&w, &id).expect("the workspace volume");
    assert_eq!(
        w.reconciler.workspace_access(&id, "alice", "sub-alice"),
        WorkspaceAccess::Owner
    );

    let before = Timestamp::now();
    ok(&w.on_id(&alice, DELETE, &id).await, "deleteCodeServer");
    let after = Timestamp::now();
    // Everything but the volume is gone; the volume is the same one.
    w.until_gone("pods", &id).await;
    assert_eq!(
        objects_of(&w, &id),
        vec![format!("persistentvolumeclaims/{}", pvc_name(&id))]
    );
    assert_eq!(pvc_uid(&w, &id), Some(uid.clone()));
    let listed = mine(&w, &alice).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let deleted = &listed[0];
    assert_eq!(deleted["status"], "DELETED", "{deleted}");
    let purge_at = timestamp(&deleted["purgeAt"]);
    let deleted_at = timestamp(&deleted["deletedAt"]);
    assert!(
        purge_at >= later(before, WEEK - 1) && purge_at <= later(after, WEEK),
        "{deleted}"
    );
    assert!(
        deleted_at.as_second() >= before.as_second() && deleted_at <= after,
        "{deleted}"
    );
    let status = w
        .on_id(
            &alice,
            "query($id: String!) { codeServerStatus(id: $id) }",
            &id,
        )
        .await;
    assert_eq!(ok(&status, "codeServerStatus"), "DELETED");
    // Nobody gets in, its owner included.
    assert_eq!(
        w.reconciler.workspace_access(&id, "alice", "sub-alice"),
        WorkspaceAccess::Missing
    );

    // Every operation but a read, a restore and a purge refuses it, and changes nothing.
    let version = w.pvc(&pvc_name(&id)).unwrap()["metadata"]["resourceVersion"].clone();
    for operation in [
        START,
        "mutation($id: String!) { stopCodeServer(id: $id) }",
        "mutation($id: String!) { syncRepository(id: $id) }",
        "mutation($id: String!) { extendCodeServer(id: $id, hours: 1) { id } }",
        "mutation($id: String!) { rotateGitIdentity(id: $id) { id } }",
        "query($id: String!) { codeServerLogs(id: $id) }",
    ] {
        let body = w.on_id(&alice, operation, &id).await;
        assert_eq!(
            error_of(&body),
            (
                "instance is deleted; restore it first",
                "FAILED_PRECONDITION"
            ),
            "{operation}: {body}"
        );
    }
    assert!(w.pod(&id).is_none());
    assert_eq!(
        w.pvc(&pvc_name(&id)).unwrap()["metadata"]["resourceVersion"],
        version
    );
    // Deleting it again without purge changes nothing.
    ok(&w.on_id(&alice, DELETE, &id).await, "deleteCodeServer");
    assert_eq!(mine(&w, &alice).await[0]["purgeAt"], deleted["purgeAt"]);

    // Restored: the same volume, stopped, no marks; a start runs it.
    let body = w.on_id(&alice, RESTORE, &id).await;
    let restored = ok(&body, "restoreCodeServer");
    assert_eq!(
        restored,
        &json!({"id": id, "status": "STOPPED", "deletedAt": null, "purgeAt": null})
    );
    assert_eq!(pvc_uid(&w, &id), Some(uid.clone()));
    let annotations = w.pvc(&pvc_name(&id)).unwrap()["metadata"]["annotations"].clone();
    assert!(
        annotations.get("devplatform.io/deleted-at").is_none(),
        "{annotations}"
    );
    assert!(
        annotations.get("devplatform.io/purge-at").is_none(),
        "{annotations}"
    );
    // Restoring again answers it as it is.
    let again = w.on_id(&alice, RESTORE, &id).await;
    assert_eq!(ok(&again, "restoreCodeServer")["status"], "STOPPED");
    let body = w.on_id(&alice, START, &id).await;
    assert_eq!(ok(&body, "startCodeServer")["status"], "RUNNING", "{body}");
    assert_eq!(pvc_uid(&w, &id), Some(uid));
    assert_eq!(
        w.reconciler.workspace_access(&id, "alice", "sub-alice"),
        WorkspaceAccess::Owner
    );
}

#[tokio::test]
async fn purge_deletes_the_volume_at_once() {
    let w = world(WEEK).await;
    let alice = w.token("alice");
    let bob = w.token("bob");
    // Purged straight from running.
    let id = provisioned(&w, &alice).await;
    ok(&w.on_id(&alice, PURGE, &id).await, "deleteCodeServer");
    w.until_gone("persistentvolumeclaims", &pvc_name(&id)).await;
    cached(&w.reconciler, &id, |p| p.is_none()).await;
    assert!(objects_of(&w, &id).is_empty(), "{:?}", objects_of(&w, &id));
    assert!(mine(&w, &alice).await.is_empty());
    let body = w.on_id(&alice, RESTORE, &id).await;
    assert_eq!(error_of(&body), ("instance not found", "NOT_FOUND"));

    // Deleted first, then purged.
    let id = provisioned(&w, &bob).await;
    ok(&w.on_id(&bob, DELETE, &id).await, "deleteCodeServer");
    assert_eq!(mine(&w, &bob).await[0]["status"], "DELETED");
    ok(&w.on_id(&bob, PURGE, &id).await, "deleteCodeServer");
    w.until_gone("persistentvolumeclaims", &pvc_name(&id)).await;
    cached(&w.reconciler, &id, |p| p.is_none()).await;
    assert!(mine(&w, &bob).await.is_empty());
    // And a fresh instance can be provisioned.
    let body = w.provision(&bob, "devteam", "backend-api").await;
    assert_eq!(ok(&body, "provisionCodeServer")["isNew"], true, "{body}");
}

#[tokio::test]
async fn another_user_can_neither_see_restore_nor_purge_it() {
    let w = world(WEEK).await;
    let alice = w.token("alice");
    let mallory = w.token("mallory");
    let id = provisioned(&w, &alice).await;
    ok(&w.on_id(&alice, DELETE, &id).await, "deleteCodeServer");
    let uid = pvc_uid(&w, &id);

    let seen = w
        .on_id(
            &mallory,
            "query($id: String!) { codeServer(id: $id) { id } }",
            &id,
        )
        .await;
    assert_eq!(ok(&seen, "codeServer"), &Value::Null);
    assert!(mine(&w, &mallory).await.is_empty());
    for operation in [RESTORE, PURGE, DELETE] {
        let body = w.on_id(&mallory, operation, &id).await;
        assert_eq!(
            error_of(&body),
            ("instance not found", "NOT_FOUND"),
            "{operation}: {body}"
        );
    }
    assert_eq!(
        w.reconciler.workspace_access(&id, "mallory", "sub-mallory"),
        WorkspaceAccess::Missing
    );
    assert_eq!(pvc_uid(&w, &id), uid, "the volume is untouched");
    assert_eq!(mine(&w, &alice).await[0]["status"], "DELETED");

    // An admin may restore it; it stays alice's.
    let admin = w.admin_token("root");
    let body = w.on_id(&admin, RESTORE, &id).await;
    assert_eq!(
        ok(&body, "restoreCodeServer")["status"],
        "STOPPED",
        "{body}"
    );
    assert_eq!(mine(&w, &alice).await[0]["status"], "STOPPED");
    assert_eq!(pvc_uid(&w, &id), uid);
}

#[tokio::test]
async fn the_lease_holder_purges_by_the_time_recorded_at_deletion() {
    // This replica keeps deleted volumes an hour; the other one a week.
    let w = world(HOUR).await;
    let code = w.sim().code_servers().await.unwrap();
    let other = replica(&w, WEEK).await;
    // NB: "admin" is a Gitea user like the others (no admin role in this token).
    let (alice, bob, carol) = (w.token("alice"), w.token("bob"), w.token("admin"));
    let alice_id = provisioned(&w, &alice).await;
    let bob_id = provisioned(&w, &bob).await;
    let carol_id = provisioned_with(&w, &carol, "docs").await;
    let now = Timestamp::now();
    ok(
        &w.on_id(&alice, DELETE, &alice_id).await,
        "deleteCodeServer",
    );
    ok(
        &w.on_id(&carol, DELETE, &carol_id).await,
        "deleteCodeServer",
    );
    // Bob's instance is deleted by the other replica: kept a week.
    let owner = other.owner_of(&bob_id).await.unwrap();
    other.delete(&owner, &bob_id).await.unwrap();
    cached(&w.reconciler, &bob_id, deleted).await;
    // Carol changes her mind.
    ok(
        &w.on_id(&carol, RESTORE, &carol_id).await,
        "restoreCodeServer",
    );
    let carol_uid = pvc_uid(&w, &carol_id);

    let here = culler(&w.reconciler, &code, "replica-a");
    let there = culler(&other, &code, "replica-b");
    // Not yet due.
    let report = here.check(later(now, HOUR / 2)).await.unwrap();
    assert!(report.leader);
    assert!(report.purged.is_empty(), "{report:?}");
    // Due: purged by the other replica, whose own setting is a week.
    let report = there.check(later(now, HOUR + 60)).await.unwrap();
    assert!(report.leader, "the lease passed on");
    assert_eq!(report.purged, vec![alice_id.clone()], "{report:?}");
    assert!(report.restarted.is_empty(), "{report:?}");
    w.until_gone("persistentvolumeclaims", &pvc_name(&alice_id))
        .await;
    cached(&w.reconciler, &alice_id, |p| p.is_none()).await;
    assert!(mine(&w, &alice).await.is_empty());
    // Bob's is kept for the week it was deleted with, even by this one-hour replica.
    let report = here.check(later(now, WEEK - 120)).await.unwrap();
    assert!(report.leader);
    assert!(report.purged.is_empty(), "{report:?}");
    assert_eq!(mine(&w, &bob).await[0]["status"], "DELETED");
    let report = here.check(later(now, WEEK + 60)).await.unwrap();
    assert_eq!(report.purged, vec![bob_id.clone()], "{report:?}");
    w.until_gone("persistentvolumeclaims", &pvc_name(&bob_id))
        .await;
    // The restored instance is never purged.
    assert_eq!(pvc_uid(&w, &carol_id), carol_uid);
    assert_eq!(mine(&w, &carol).await[0]["status"], "STOPPED");
}

#[tokio::test]
async fn provisioning_over_a_deleted_instance_is_refused_and_writes_nothing() {
    let w = world(WEEK).await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    ok(&w.on_id(&alice, DELETE, &id).await, "deleteCodeServer");
    let record = w.pvc(&pvc_name(&id)).unwrap();
    let written = writes(&w);
    for repo in ["backend-api", "docs"] {
        let body = w.provision(&alice, "devteam", repo).await;
        assert_eq!(
            error_of(&body),
            (
                "instance is deleted: restore it with restoreCodeServer or purge it with deleteCodeServer(purge: true)",
                "INSTANCE_DELETED"
            ),
            "{body}"
        );
    }
    assert_eq!(writes(&w), written, "nothing was written");
    assert_eq!(w.pvc(&pvc_name(&id)).unwrap(), record);
    assert!(w.pod(&id).is_none());
}

#[tokio::test]
async fn without_retention_a_delete_removes_the_volume_at_once() {
    let w = world(0).await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    ok(&w.on_id(&alice, DELETE, &id).await, "deleteCodeServer");
    w.until_gone("persistentvolumeclaims", &pvc_name(&id)).await;
    cached(&w.reconciler, &id, |p| p.is_none()).await;
    assert!(objects_of(&w, &id).is_empty(), "{:?}", objects_of(&w, &id));
    assert!(mine(&w, &alice).await.is_empty());

    // A record another replica kept (DELETE_RETENTION changed, or set differently there)
    // is still refused for provisioning here, and a delete here purges it.
    let other = replica(&w, WEEK).await;
    let bob = w.token("bob");
    let id = provisioned(&w, &bob).await;
    other
        .delete(&other.owner_of(&id).await.unwrap(), &id)
        .await
        .unwrap();
    cached(&w.reconciler, &id, deleted).await;
    assert_eq!(mine(&w, &bob).await[0]["status"], "DELETED");
    let body = w.provision(&bob, "devteam", "backend-api").await;
    assert_eq!(error_of(&body).1, "INSTANCE_DELETED", "{body}");
    ok(&w.on_id(&bob, DELETE, &id).await, "deleteCodeServer");
    w.until_gone("persistentvolumeclaims", &pvc_name(&id)).await;
}

#[tokio::test]
async fn stats_and_metrics_count_deleted_instances() {
    let w = world(WEEK).await;
    let (alice, bob) = (w.token("alice"), w.token("bob"));
    let alice_id = provisioned(&w, &alice).await;
    let _bob_id = provisioned(&w, &bob).await;
    ok(
        &w.on_id(&alice, DELETE, &alice_id).await,
        "deleteCodeServer",
    );
    let admin = w.admin_token("root");
    let stats = w
        .gql(
            &admin,
            "{ instanceStats { totalInstances runningInstances stoppedInstances deletedInstances totalStorageUsed } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok(&stats, "instanceStats"),
        &json!({"totalInstances": 2, "runningInstances": 1, "stoppedInstances": 0,
            "deletedInstances": 1, "totalStorageUsed": "20Gi"})
    );
    let text = w.metrics.encode();
    assert!(
        text.contains("codeserver_instances_total{status=\"DELETED\"} 1"),
        "{text}"
    );
    let all = w
        .gql(
            &admin,
            "{ allCodeServers(status: DELETED) { totalCount edges { node { id status purgeAt } } } }",
            json!({}),
        )
        .await;
    let page = ok(&all, "allCodeServers");
    assert_eq!(page["totalCount"], 1, "{page}");
    assert_eq!(page["edges"][0]["node"]["id"], json!(alice_id));
    assert!(page["edges"][0]["node"]["purgeAt"].is_string(), "{page}");
}

#[tokio::test]
async fn a_delete_that_stops_halfway_leaves_nothing_anyone_can_enter_or_restart() {
    let w = world(WEEK).await;
    let code = w.sim().code_servers().await.unwrap();
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    // The pod cannot be deleted: the delete fails after the record was marked.
    w.sim().inject(
        codeserver_sim::Fault::status(500)
            .verb("delete")
            .resource("pods"),
    );
    let body = w.on_id(&alice, DELETE, &id).await;
    assert!(body["errors"].is_array(), "{body}");
    assert!(w.pod(&id).is_some(), "the pod is left");
    // Deleted all the same: listed so, closed to everyone, never started again.
    assert_eq!(mine(&w, &alice).await[0]["status"], "DELETED");
    assert_eq!(
        w.reconciler.workspace_access(&id, "alice", "sub-alice"),
        WorkspaceAccess::Missing
    );
    w.sim().clear_faults();
    let uid = w.pod(&id).unwrap()["metadata"]["uid"].clone();
    let report = culler(&w.reconciler, &code, "replica-a")
        .check(later(Timestamp::now(), HOUR))
        .await
        .unwrap();
    assert!(
        report.restarted.is_empty() && report.purged.is_empty(),
        "{report:?}"
    );
    assert_eq!(w.pod(&id).unwrap()["metadata"]["uid"], uid);
    // Deleting again finishes it, the volume kept.
    ok(&w.on_id(&alice, DELETE, &id).await, "deleteCodeServer");
    w.until_gone("pods", &id).await;
    assert_eq!(
        objects_of(&w, &id),
        vec![format!("persistentvolumeclaims/{}", pvc_name(&id))]
    );
    assert_eq!(mine(&w, &alice).await[0]["status"], "DELETED");
}
