//! Idle control users can trust and self-healing, through GraphQL and the Lease holder's
//! check against the simulated cluster: why an instance stopped (`stopReason` for its
//! owner, an admin, the culler, a lost pod), `extendCodeServer` keeping an idle instance
//! alive up to `IDLE_MAX_EXTENSION` (and refusing more), `restartPending` in the answer,
//! and a pod lost to an eviction or an external delete started again with bounded
//! retries, never an instance stopped on purpose. Time is passed to each check
//! explicitly, so nothing waits for the clock.

#[path = "support/mod.rs"]
mod support;
#[path = "support/world.rs"]
mod world;

use std::time::Duration;

use codeserver_service::{
    activity::{Culler, IdlePolicy, IdleSettings},
    instance::lifecycle::HEAL_MAX_ATTEMPTS,
    naming,
};
use codeserver_sim::heartbeat::CodeServers;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::DeleteParams};
use serde_json::{Value, json};
use world::{NS, World, error_of, ok};

const TIMEOUT: u64 = 600;
const MAX_EXTENSION_HOURS: i64 = 8;

fn policy() -> IdlePolicy {
    IdlePolicy {
        timeout: Duration::from_secs(TIMEOUT),
        warning: Duration::from_secs(60),
        max_extension: Duration::from_secs(8 * 3600),
    }
}

/// Idle stop off: the self-healing checks below pass times hours ahead.
fn no_idle_stop() -> IdlePolicy {
    IdlePolicy {
        timeout: Duration::ZERO,
        ..policy()
    }
}

async fn world() -> (World, CodeServers) {
    let w = World::builder()
        .reconciler(|r| r.idle_policy(policy()))
        .start()
        .await;
    let code = w.sim().code_servers().await.unwrap();
    (w, code)
}

fn culler(w: &World, code: &CodeServers) -> Culler {
    culler_with(w, code, policy())
}

fn culler_with(w: &World, code: &CodeServers, policy: IdlePolicy) -> Culler {
    let settings = IdleSettings {
        check_interval: Duration::from_secs(60),
        policy,
        check_concurrency: 4,
        healthz_url: code.url_template(),
        lease_name: "codeserver-service-idle-culler".to_owned(),
        pod_name: Some("replica-a".to_owned()),
    };
    Culler::new(w.reconciler.clone(), &settings, None).unwrap()
}

const FIELDS: &str = "id status stopReason keepAliveUntil restartPending idleStopAt";

async fn instance(w: &World, token: &str) -> Value {
    let body = w
        .query(Some(token), &format!("{{ myCodeServers {{ {FIELDS} }} }}"))
        .await;
    ok(&body, "myCodeServers")[0].clone()
}

async fn provisioned(w: &World, token: &str) -> String {
    let body = w.provision(token, "devteam", "backend-api").await;
    let p = ok(&body, "provisionCodeServer");
    assert_eq!(p["instance"]["status"], "RUNNING", "{body}");
    p["instance"]["id"].as_str().unwrap().to_owned()
}

async fn extend(w: &World, token: &str, id: &str, hours: i64) -> Value {
    w.gql(
        token,
        &format!("mutation($id: String!, $h: Int!) {{ extendCodeServer(id: $id, hours: $h) {{ {FIELDS} }} }}"),
        json!({"id": id, "h": hours}),
    )
    .await
}

async fn act(w: &World, token: &str, operation: &str, id: &str) {
    let query = if operation == "startCodeServer" {
        "mutation($id: String!) { startCodeServer(id: $id) { id } }".to_owned()
    } else {
        format!("mutation($id: String!) {{ {operation}(id: $id) }}")
    };
    ok(&w.on_id(token, &query, id).await, operation);
}

fn pod_uid(w: &World, id: &str) -> Option<String> {
    w.pod(id)
        .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
}

fn annotations(w: &World, pvc: &str) -> Value {
    w.pvc(pvc).unwrap()["metadata"]["annotations"].clone()
}

fn later(now: Timestamp, seconds: i64) -> Timestamp {
    now.checked_add(SignedDuration::from_secs(seconds)).unwrap()
}

fn events_of(w: &World, pvc: &str) -> Vec<Value> {
    w.sim()
        .list_objects("events")
        .into_iter()
        .filter(|e| {
            e["involvedObject"]["name"] == pvc
                && e["involvedObject"]["kind"] == "PersistentVolumeClaim"
        })
        .collect()
}

#[tokio::test]
async fn every_stop_says_who_stopped_it_and_a_start_clears_it() {
    let (w, code) = world().await;
    let alice = w.token("alice");
    let admin = w.admin_token("root");
    let id = provisioned(&w, &alice).await;
    let fresh = instance(&w, &alice).await;
    assert_eq!(fresh["stopReason"], Value::Null);
    assert_eq!(fresh["restartPending"], false);

    act(&w, &alice, "stopCodeServer", &id).await;
    assert_eq!(instance(&w, &alice).await["stopReason"], "USER");
    // Stopping a stopped instance keeps the reason it has.
    act(&w, &admin, "stopCodeServer", &id).await;
    assert_eq!(instance(&w, &alice).await["stopReason"], "USER");

    act(&w, &alice, "startCodeServer", &id).await;
    assert_eq!(instance(&w, &alice).await["stopReason"], Value::Null);
    act(&w, &admin, "stopCodeServer", &id).await;
    assert_eq!(instance(&w, &alice).await["stopReason"], "ADMIN");

    act(&w, &alice, "startCodeServer", &id).await;
    let report = culler(&w, &code)
        .check(later(Timestamp::now(), 2 * TIMEOUT as i64))
        .await
        .unwrap();
    assert_eq!(report.stopped, vec![id.clone()]);
    let stopped = instance(&w, &alice).await;
    assert_eq!(stopped["stopReason"], "IDLE", "{stopped}");

    // None of these stops is taken for a lost pod.
    let mut later_check = later(Timestamp::now(), 3 * TIMEOUT as i64);
    for _ in 0..2 {
        let report = culler(&w, &code).check(later_check).await.unwrap();
        assert!(report.restarted.is_empty(), "{report:?}");
        later_check = later(later_check, 3600);
    }
    w.until_gone("pods", &id).await;
}

#[tokio::test]
async fn an_extension_holds_off_the_idle_stop_until_then_and_no_longer() {
    let (w, code) = world().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;

    // Over the cap, under one hour, or on someone else's instance: refused, nothing kept.
    for hours in [MAX_EXTENSION_HOURS + 1, 0, -3, i64::from(i32::MAX)] {
        let body = extend(&w, &alice, &id, hours).await;
        let (message, code) = error_of(&body);
        assert_eq!(code, "BAD_USER_INPUT", "{hours}: {body}");
        assert!(
            message.contains("hours") && message.contains("at most 8 hours"),
            "{message}"
        );
    }
    let bob = w.token("bob");
    assert_eq!(error_of(&extend(&w, &bob, &id, 2).await).1, "NOT_FOUND");
    assert_eq!(instance(&w, &alice).await["keepAliveUntil"], Value::Null);

    let before = Timestamp::now();
    let body = extend(&w, &alice, &id, 3).await;
    let kept = ok(&body, "extendCodeServer");
    let until: Timestamp = kept["keepAliveUntil"].as_str().unwrap().parse().unwrap();
    assert!(until >= later(before, 3 * 3600 - 1) && until <= later(Timestamp::now(), 3 * 3600));
    let culler = culler(&w, &code);

    // Idle for far longer than IDLE_TIMEOUT, but kept alive: not stopped.
    let report = culler.check(later(until, -120)).await.unwrap();
    assert!(report.stopped.is_empty(), "{report:?}");
    assert!(w.pod(&id).is_some());
    // Past it: stopped as idle, and the extension is gone with the stop.
    let report = culler.check(later(until, 1)).await.unwrap();
    assert_eq!(report.stopped, vec![id.clone()]);
    let stopped = instance(&w, &alice).await;
    assert_eq!(
        (
            stopped["stopReason"].clone(),
            stopped["keepAliveUntil"].clone()
        ),
        (json!("IDLE"), Value::Null)
    );

    // A stopped instance cannot be extended.
    let body = extend(&w, &alice, &id, 1).await;
    assert_eq!(error_of(&body).1, "FAILED_PRECONDITION", "{body}");
}

#[tokio::test]
async fn restart_pending_shows_when_a_start_would_recreate_the_pod() {
    let (w, _code) = world().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    assert_eq!(instance(&w, &alice).await["restartPending"], false);
    w.templates.swap(support::templates::edited_templates(|d| {
        support::templates::replace_in(
            d,
            "values.yaml",
            "  imagePullPolicy: IfNotPresent",
            "  imagePullPolicy: Always",
        );
    }));
    assert_eq!(instance(&w, &alice).await["restartPending"], true);
    act(&w, &alice, "startCodeServer", &id).await;
    assert_eq!(instance(&w, &alice).await["restartPending"], false);
}

#[tokio::test]
async fn an_evicted_pod_is_started_again_and_shown_as_evicted_until_it_settles() {
    let (w, code) = world().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    let pvc = naming::pvc_name(id.trim_start_matches("code-server-"));
    assert!(w.pvc(&pvc).is_some(), "{pvc}");
    let first_uid = pod_uid(&w, &id).unwrap();
    assert!(w.sim().evict_pod(
        NS,
        &id,
        "Pod ephemeral local storage usage exceeds the total limit of containers 6Gi."
    ));
    let evicted = w.pod(&id).unwrap();
    assert_eq!(evicted["status"]["reason"], "Evicted", "{evicted}");

    let now = Timestamp::now();
    let culler = culler_with(&w, &code, no_idle_stop());
    let report = culler.check(now).await.unwrap();
    assert_eq!(report.restarted, vec![id.clone()], "{report:?}");
    let second_uid = pod_uid(&w, &id).unwrap();
    assert_ne!(first_uid, second_uid, "the failed pod was replaced");
    let restarted = instance(&w, &alice).await;
    assert_eq!(restarted["stopReason"], "EVICTED", "{restarted}");
    let events = events_of(&w, &pvc);
    assert!(
        events.iter().any(|e| e["reason"] == "WorkspaceRestarted"
            && e["message"].as_str().unwrap().contains("Evicted")),
        "{events:?}"
    );
    // The events field shows it too.
    let body = w
        .query(
            Some(&alice),
            "{ myCodeServers { events { reason message } } }",
        )
        .await;
    let listed = ok(&body, "myCodeServers")[0]["events"].to_string();
    assert!(listed.contains("WorkspaceRestarted"), "{listed}");

    // Running ten minutes later: the loss is behind it.
    let ready = w
        .sim()
        .wait_for("pods", NS, &id, Duration::from_secs(10), |p| {
            p.is_some_and(|p| {
                p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
        })
        .await;
    assert!(ready, "the restarted pod gets ready");
    let report = culler.check(later(now, 11 * 60)).await.unwrap();
    assert!(report.restarted.is_empty());
    let settled = instance(&w, &alice).await;
    assert_eq!(settled["stopReason"], Value::Null, "{settled}");
    assert_eq!(
        annotations(&w, &pvc).get("devplatform.io/heal-attempts"),
        None
    );
}

#[tokio::test]
async fn a_pod_deleted_from_outside_comes_back_with_bounded_retries() {
    let (w, code) = world().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    let pods: Api<Pod> = Api::namespaced(w.sim().client(), NS);
    let culler = culler_with(&w, &code, no_idle_stop());
    let mut now = Timestamp::now();
    for attempt in 1..=HEAL_MAX_ATTEMPTS {
        pods.delete(&id, &DeleteParams::default()).await.unwrap();
        w.until_gone("pods", &id).await;
        // Before the backoff has passed nothing happens.
        if attempt > 1 {
            let early = culler.check(later(now, 1)).await.unwrap();
            assert!(early.restarted.is_empty(), "attempt {attempt}: {early:?}");
        }
        now = later(now, 3600);
        let report = culler.check(now).await.unwrap();
        assert_eq!(report.restarted, vec![id.clone()], "attempt {attempt}");
        assert!(w.pod(&id).is_some());
        assert_eq!(instance(&w, &alice).await["stopReason"], "EVICTED");
    }
    // Lost once more: no restart, stopped and EVICTED until its owner starts it.
    pods.delete(&id, &DeleteParams::default()).await.unwrap();
    w.until_gone("pods", &id).await;
    let report = culler.check(later(now, 3600)).await.unwrap();
    assert_eq!(
        (report.restarted.clone(), report.given_up.clone()),
        (vec![], vec![id.clone()])
    );
    let report = culler.check(later(now, 7200)).await.unwrap();
    assert!(report.restarted.is_empty() && report.given_up.is_empty());
    let left = instance(&w, &alice).await;
    assert_eq!(
        (left["status"].clone(), left["stopReason"].clone()),
        (json!("STOPPED"), json!("EVICTED"))
    );
    act(&w, &alice, "startCodeServer", &id).await;
    assert_eq!(instance(&w, &alice).await["stopReason"], Value::Null);
}

#[tokio::test]
async fn a_crash_loop_is_not_a_loss() {
    let (w, code) = world().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    let uid = pod_uid(&w, &id);
    w.sim()
        .set_pod_behaviour(&id, codeserver_sim::PodBehaviour::CrashLoop);
    let report = culler_with(&w, &code, no_idle_stop())
        .check(later(Timestamp::now(), 3600))
        .await
        .unwrap();
    assert!(report.restarted.is_empty(), "{report:?}");
    assert_eq!(
        pod_uid(&w, &id),
        uid,
        "the crash-looping pod is left to its owner"
    );
}

#[tokio::test]
async fn a_subscriber_to_the_restarted_instance_sees_why_it_restarts() {
    let (w, code) = world().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    // The restarted pod stays starting, so the progress stream stays open.
    w.sim()
        .set_pod_behaviour(&id, codeserver_sim::PodBehaviour::NeverReady);
    assert!(
        w.sim()
            .evict_pod(NS, &id, "The node was low on resource: memory.")
    );
    let report = culler_with(&w, &code, no_idle_stop())
        .check(Timestamp::now())
        .await
        .unwrap();
    assert_eq!(report.restarted, vec![id.clone()]);
    let owner = w.reconciler.owner_of(&id).await.unwrap();
    let progress = w.reconciler.progress(&owner, &id).await.unwrap();
    let mut progress = std::pin::pin!(progress);
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        use futures::StreamExt as _;
        while let Some(item) = progress.next().await {
            if let Some(event) = item.event
                && event.reason == "WorkspaceRestarted"
            {
                return Some(event.message);
            }
        }
        None
    })
    .await
    .expect("the event in time");
    let message = seen.expect("the stream shows the restart");
    assert!(
        message.contains("Evicted") && message.contains("restart 1 of 5"),
        "{message}"
    );
}

#[tokio::test]
async fn a_delete_that_stops_halfway_is_not_taken_for_a_lost_pod() {
    let (w, code) = world().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    // The volume cannot be deleted: the delete fails with the pod gone and the record left.
    w.sim().inject(
        codeserver_sim::Fault::status(500)
            .verb("delete")
            .resource("persistentvolumeclaims"),
    );
    let delete = "mutation($id: String!) { deleteCodeServer(id: $id) }";
    let body = w.on_id(&alice, delete, &id).await;
    assert!(body["errors"].is_array(), "{body}");
    w.until_gone("pods", &id).await;
    let report = culler_with(&w, &code, no_idle_stop())
        .check(later(Timestamp::now(), 3600))
        .await
        .unwrap();
    assert!(report.restarted.is_empty(), "{report:?}");
    assert!(
        w.pod(&id).is_none(),
        "no pod started for an instance being deleted"
    );
}
