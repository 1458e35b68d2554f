//! End to end through the HTTP server, in-process: the real GraphQL API, the reconciler and
//! the kube client against the simulated cluster, with the simulated Gitea and issuer.

#[path = "support/world.rs"]
mod world;

use std::time::Duration;

use codeserver_service::render::Templates;
use codeserver_sim::{self, SimOptions, gitea::GiteaFault};
use serde_json::{Value, json};
use world::{NS, World, error_of, ok};

const STATUS: &str = "query($id: String!) { codeServerStatus(id: $id) }";
const GET: &str = "query($id: String!) { codeServer(id: $id) { id status repoName } }";
const LOGS: &str = "query($id: String!) { codeServerLogs(id: $id, lines: 2) }";
const STOP: &str = "mutation($id: String!) { stopCodeServer(id: $id) }";
const START: &str = "mutation($id: String!) { startCodeServer(id: $id) { id status } }";
const DELETE: &str = "mutation($id: String!) { deleteCodeServer(id: $id) }";
const SYNC: &str = "mutation($id: String!) { syncRepository(id: $id) }";

#[tokio::test]
async fn provision_creates_the_volume_pod_and_service_and_reuses_them() {
    let w = World::start().await;
    let alice = w.token("alice");
    let body = w.provision(&alice, "devteam", "backend-api").await;
    let result = ok(&body, "provisionCodeServer");
    assert_eq!(result["isNew"], true);
    assert_eq!(result["message"], "Instance created successfully");
    let instance = &result["instance"];
    assert_eq!(instance["id"], "code-server-alice");
    assert_eq!(instance["userId"], "alice");
    assert_eq!(instance["repoOwner"], "devteam");
    assert_eq!(instance["repoName"], "backend-api");
    assert_eq!(instance["url"], "https://code-alice.devplatform.local");
    assert_eq!(instance["status"], "RUNNING");
    assert!(!instance["createdAt"].as_str().unwrap().is_empty());
    assert_eq!(instance["storageUsed"], "10Gi");
    assert!(w.pvc("workspace-alice").is_some());
    assert!(w.pod("code-server-alice").is_some());
    assert!(
        w.sim()
            .object("services", NS, "code-server-alice")
            .is_some()
    );
    let clone_url = format!("{}/devteam/backend-api.git", w.gitea.url());
    let pvc = w.pvc("workspace-alice").unwrap().to_string();
    assert!(pvc.contains(&clone_url), "the clone URL comes from Gitea");
    let pod = w.pod("code-server-alice").unwrap();
    let clones = pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .any(|env| {
            // NB: clones go over Gitea's SSH URL, with the instance's deploy key.
            env["name"] == "REPOS"
                && env["value"]
                    .as_str()
                    .unwrap()
                    .ends_with(" git@127.0.0.1:devteam/backend-api.git")
        });
    assert!(
        clones,
        "the repository is cloned before code-server starts: {pod}"
    );

    w.sim().reset_requests();
    let again = w.provision(&alice, "devteam", "backend-api").await;
    let again = ok(&again, "provisionCodeServer");
    assert_eq!(again["isNew"], false);
    assert_eq!(again["message"], "Using existing instance");
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());

    let text = w.metrics.encode();
    assert!(
        text.contains("codeserver_provision_duration_seconds_count{result=\"ok\"} 2"),
        "{text}"
    );
    // NB: the apply, and the record of the start (`runs-since`, a merge patch of its own).
    let applied = "codeserver_kube_requests_total{resource=\"persistentvolumeclaims\",result=\"ok\",verb=\"patch\"} 2";
    assert!(
        text.contains(applied),
        "one apply of the volume and one record of the start, none the second time: {text}"
    );
}

#[tokio::test]
async fn queries_report_the_callers_instances() {
    let w = World::start().await;
    let alice = w.token("alice");
    ok(
        &w.provision(&alice, "devteam", "docs").await,
        "provisionCodeServer",
    );
    let mine = w
        .gql(
            &alice,
            "{ myCodeServers { id repoName status } }",
            json!({}),
        )
        .await;
    let mine = ok(&mine, "myCodeServers").as_array().unwrap().clone();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["repoName"], "docs");
    let one = w.on_id(&alice, GET, "code-server-alice").await;
    assert_eq!(ok(&one, "codeServer")["status"], "RUNNING");
    let status = w.on_id(&alice, STATUS, "code-server-alice").await;
    assert_eq!(ok(&status, "codeServerStatus"), "RUNNING");
    w.sim().set_logs(
        NS,
        "code-server-alice",
        "code-server",
        &["one", "two", "three"],
    );
    let logs = w.on_id(&alice, LOGS, "code-server-alice").await;
    assert_eq!(
        ok(&logs, "codeServerLogs").as_str().unwrap().trim(),
        "two\nthree"
    );
    let health = w.gql(&alice, "{ health }", json!({})).await;
    assert_eq!(ok(&health, "health"), true);
}

#[tokio::test]
async fn one_user_cannot_touch_another_users_instance() {
    let w = World::start().await;
    let alice = w.token("alice");
    let bob = w.token("bob");
    ok(
        &w.provision(&alice, "devteam", "backend-api").await,
        "provisionCodeServer",
    );
    let id = "code-server-alice";
    w.sim().reset_requests();
    let get = w.on_id(&bob, GET, id).await;
    assert!(ok(&get, "codeServer").is_null());
    for operation in [STATUS, LOGS, STOP, START, DELETE, SYNC] {
        let body = w.on_id(&bob, operation, id).await;
        assert_eq!(
            error_of(&body),
            ("instance not found", "NOT_FOUND"),
            "{operation}: {body}"
        );
    }
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
    assert!(w.pod(id).is_some() && w.pvc("workspace-alice").is_some());
    let theirs = w.gql(&bob, "{ myCodeServers { id } }", json!({})).await;
    assert_eq!(ok(&theirs, "myCodeServers"), &json!([]));
}

#[tokio::test]
async fn users_get_isolated_instances() {
    let w = World::start().await;
    let alice = w.token("alice");
    let bob = w.token("bob");
    let a = w.provision(&alice, "devteam", "backend-api").await;
    let b = w.provision(&bob, "devteam", "backend-api").await;
    let a = ok(&a, "provisionCodeServer")["instance"]["id"].clone();
    let b = ok(&b, "provisionCodeServer")["instance"]["id"].clone();
    assert_ne!(a, b);
    assert!(w.pvc("workspace-alice").is_some() && w.pvc("workspace-bob").is_some());
    let netpols = w.sim().list_objects("networkpolicies");
    assert!(netpols.len() >= 2, "one policy per user: {}", netpols.len());
    // NB: no per-user object on the gateway: the service itself decides who opens a
    // workspace (tests/gatekeeper).
    assert!(
        w.sim().list_objects("authorizationpolicies").is_empty(),
        "no access policy per user"
    );
}

#[tokio::test]
async fn stop_keeps_the_volume_start_brings_the_pod_back_delete_removes_all() {
    let w = World::start().await;
    let alice = w.token("alice");
    ok(
        &w.provision(&alice, "devteam", "docs").await,
        "provisionCodeServer",
    );
    let id = "code-server-alice";
    let volume_uid = w.pvc("workspace-alice").unwrap()["metadata"]["uid"].clone();
    let stopped = w.on_id(&alice, STOP, id).await;
    assert_eq!(ok(&stopped, "stopCodeServer"), true);
    w.until_gone("pods", id).await;
    assert!(w.pvc("workspace-alice").is_some(), "the work is kept");
    let status = w.on_id(&alice, STATUS, id).await;
    assert_eq!(ok(&status, "codeServerStatus"), "STOPPED");

    let logs = w.on_id(&alice, LOGS, id).await;
    assert_eq!(error_of(&logs), ("pod not ready", "FAILED_PRECONDITION"));
    assert_eq!(
        logs["errors"][0]["extensions"]["reason"],
        "the instance is stopped; it has no logs"
    );
    let sync = w.on_id(&alice, SYNC, id).await;
    assert_eq!(error_of(&sync), ("pod not ready", "FAILED_PRECONDITION"));
    assert_eq!(
        sync["errors"][0]["extensions"]["reason"],
        "the instance is STOPPED; start it before syncing"
    );

    let started = w.on_id(&alice, START, id).await;
    assert_eq!(ok(&started, "startCodeServer")["status"], "RUNNING");
    assert!(w.pod(id).is_some());
    assert_eq!(
        w.pvc("workspace-alice").unwrap()["metadata"]["uid"],
        volume_uid,
        "the restarted pod mounts the same volume, so the work persists"
    );

    let synced = w.on_id(&alice, SYNC, id).await;
    assert_eq!(ok(&synced, "syncRepository"), true);

    let deleted = w.on_id(&alice, DELETE, id).await;
    assert_eq!(ok(&deleted, "deleteCodeServer"), true);
    // NB: like a real cluster, the volume goes once its protection finalizer is released.
    w.until_gone("persistentvolumeclaims", "workspace-alice")
        .await;
    assert!(w.sim().object("services", NS, id).is_none());
    let mine = w.gql(&alice, "{ myCodeServers { id } }", json!({})).await;
    assert_eq!(ok(&mine, "myCodeServers"), &json!([]));
    let again = w.on_id(&alice, STATUS, id).await;
    assert_eq!(error_of(&again), ("instance not found", "NOT_FOUND"));
}

#[tokio::test]
async fn a_failed_instance_says_why_and_lists_every_repository() {
    let w = World::start().await;
    let alice = w.token("alice");
    let id = "code-server-alice";
    w.sim()
        .set_pod_behaviour(id, codeserver_sim::PodBehaviour::ErrImagePull);
    let body = w
        .gql(
            &alice,
            "mutation { provisionCodeServer(repoOwner: \"devteam\", repoName: \"docs\") { instance { status statusMessage } message isNew } }",
            json!({}),
        )
        .await;
    let result = ok(&body, "provisionCodeServer");
    assert_eq!(result["instance"]["status"], "ERROR", "{result}");
    let reason = result["instance"]["statusMessage"].as_str().unwrap();
    assert!(
        reason.contains("ErrImagePull") || reason.contains("ImagePullBackOff"),
        "{reason}"
    );
    assert!(
        reason.contains("codercom/code-server"),
        "the image is named: {reason}"
    );
    let message = result["message"].as_str().unwrap();
    assert!(
        message.starts_with("Instance created, but it failed: "),
        "{message}"
    );
    let logs = w.on_id(&alice, LOGS, id).await;
    assert_eq!(error_of(&logs), ("pod not ready", "FAILED_PRECONDITION"));
    assert!(
        logs["errors"][0]["extensions"]["reason"].is_string(),
        "{logs}"
    );
    let got = w
        .on_id(
            &alice,
            "query($id: String!) { codeServer(id: $id) { events { type reason message count lastSeen object } } }",
            id,
        )
        .await;
    let events = ok(&got, "codeServer")["events"].as_array().unwrap().clone();
    let has = |kind: &str, reason: &str| {
        events
            .iter()
            .any(|e| e["type"] == kind && e["reason"] == reason)
    };
    assert!(has("Normal", "Scheduled"), "{events:?}");
    assert!(has("Warning", "Failed"), "{events:?}");
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("codercom/code-server")),
        "the image is named: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["object"] == "PersistentVolumeClaim/workspace-alice"
                && e["reason"] == "ProvisioningSucceeded"),
        "the volume's events too: {events:?}"
    );
    assert!(events.iter().all(|e| e["object"] == "Pod/code-server-alice"
        || e["object"] == "PersistentVolumeClaim/workspace-alice"));
    let seen: Vec<&str> = events
        .iter()
        .map(|e| e["lastSeen"].as_str().unwrap())
        .collect();
    assert!(
        seen.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {seen:?}"
    );
    assert!(events.len() <= 20);

    w.sim()
        .set_pod_behaviour(id, codeserver_sim::PodBehaviour::Normal);
    // NB: adding a repository answers at once; the pod recovers from the failed pull on
    // the kubelet's own schedule, so the instance is read until it runs.
    ok(
        &w.provision(&alice, "devteam", "backend-api").await,
        "provisionCodeServer",
    );
    let got = world::eventually::eventually(
        "the instance runs again",
        std::time::Duration::from_secs(30),
        || async {
            let got = w
                .on_id(
                    &alice,
                    "query($id: String!) { codeServer(id: $id) { status statusMessage repoName repositories { owner name cloneUrl } } }",
                    id,
                )
                .await;
            (got["data"]["codeServer"]["status"] == "RUNNING").then_some(got)
        },
    )
    .await;
    let instance = ok(&got, "codeServer");
    assert_eq!(instance["status"], "RUNNING", "{instance}");
    assert!(instance["statusMessage"].is_null(), "{instance}");
    assert_eq!(
        instance["repoName"], "docs",
        "the first repository, as the spec says"
    );
    let names: Vec<&str> = instance["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs", "backend-api"]);
    assert_eq!(
        instance["repositories"][1]["cloneUrl"],
        format!("{}/devteam/backend-api.git", w.gitea.url())
    );
}

/// The JSON log lines of this test process, captured once for every test.
fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .json()
            .with_writer(move || Capture(writer.clone()))
            .try_init()
            .unwrap();
        buffer
    })
    .clone()
}

const ALL: &str = "query($user: String, $status: InstanceStatus, $first: Int, $after: String) { allCodeServers(user: $user, status: $status, first: $first, after: $after) { totalCount edges { cursor node { id userId status } } pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn admins_list_every_instance_page_by_page_and_act_on_any() {
    let w = World::start().await;
    let (alice, bob) = (w.token("alice"), w.token("bob"));
    let root = w.admin_token("root");
    for token in [&alice, &bob] {
        ok(
            &w.provision(token, "devteam", "docs").await,
            "provisionCodeServer",
        );
    }

    let denied = w.gql(&bob, ALL, json!({})).await;
    assert_eq!(error_of(&denied), ("forbidden", "FORBIDDEN"));
    w.sim().reset_requests();
    let stop = w.on_id(&bob, STOP, "code-server-alice").await;
    assert_eq!(error_of(&stop), ("instance not found", "NOT_FOUND"));
    let delete = w.on_id(&bob, DELETE, "code-server-alice").await;
    assert_eq!(error_of(&delete), ("instance not found", "NOT_FOUND"));
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());

    let first = w.gql(&root, ALL, json!({"first": 1})).await;
    let page = ok(&first, "allCodeServers");
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["edges"].as_array().unwrap().len(), 1);
    assert_eq!(page["edges"][0]["node"]["id"], "code-server-alice");
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let after = page["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let second = w.gql(&root, ALL, json!({"first": 1, "after": after})).await;
    let page = ok(&second, "allCodeServers");
    assert_eq!(page["edges"][0]["node"]["id"], "code-server-bob");
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    let bobs = w.gql(&root, ALL, json!({"user": "bob"})).await;
    assert_eq!(ok(&bobs, "allCodeServers")["totalCount"], 1);
    for bad in [
        json!({"after": "not-a-cursor"}),
        json!({"first": 0}),
        json!({"first": 101}),
    ] {
        let body = w.gql(&root, ALL, bad.clone()).await;
        assert_eq!(error_of(&body).1, "BAD_USER_INPUT", "{bad}: {body}");
    }

    let logs = captured_logs();
    let stopped = w.on_id(&root, STOP, "code-server-alice").await;
    assert_eq!(ok(&stopped, "stopCodeServer"), true);
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let logged = text.lines().any(|l| {
        l.contains("admin action on another user's instance")
            && l.contains(r#""admin":"root""#)
            && l.contains(r#""action":"stop""#)
            && l.contains(r#""instance":"code-server-alice""#)
            && l.contains(r#""owner":"alice""#)
    });
    assert!(logged, "the admin and the target are logged: {text}");
    w.until_gone("pods", "code-server-alice").await;
    let listed = w.gql(&root, ALL, json!({"status": "STOPPED"})).await;
    let page = ok(&listed, "allCodeServers");
    assert_eq!(page["totalCount"], 1);
    assert_eq!(page["edges"][0]["node"]["userId"], "alice");
    let started = w.on_id(&root, START, "code-server-alice").await;
    assert_eq!(ok(&started, "startCodeServer")["status"], "RUNNING");
    let pvc = w.pvc("workspace-alice").unwrap();
    assert_eq!(
        pvc["metadata"]["labels"]["devplatform.io/user"], "alice",
        "started as alice's instance, not the admin's"
    );
    let deleted = w.on_id(&root, DELETE, "code-server-bob").await;
    assert_eq!(ok(&deleted, "deleteCodeServer"), true);
    w.until_gone("persistentvolumeclaims", "workspace-bob")
        .await;
    assert!(w.pvc("workspace-alice").is_some());
}

#[tokio::test]
async fn a_failed_clone_names_the_repository_without_internal_urls() {
    // NB: the kubelet keeps the failed clone as it first ended (no restart in CrashLoopBackOff
    // while the test reads it), however slowly the test runs.
    let w = World::builder()
        .sim_options(SimOptions {
            backoff_delay: Duration::from_secs(3600),
            ..SimOptions::default()
        })
        .start()
        .await;
    let alice = w.token("alice");
    let id = "code-server-alice";
    w.sim()
        .set_pod_behaviour(id, codeserver_sim::PodBehaviour::InitFail);
    let body = w.provision(&alice, "devteam", "docs").await;
    let result = ok(&body, "provisionCodeServer");
    assert_eq!(result["instance"]["status"], "ERROR", "{result}");
    let got = w
        .on_id(
            &alice,
            "query($id: String!) { codeServer(id: $id) { status statusMessage } }",
            id,
        )
        .await;
    let reason = ok(&got, "codeServer")["statusMessage"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("git-clone failed"), "{reason}");
    assert!(reason.contains("error: cloning repo failed"), "{reason}");
    assert!(
        reason.contains("fatal: repository '<url>' not found"),
        "{reason}"
    );
    assert!(!reason.contains("http"), "no internal URL: {reason}");
    let message = result["message"].as_str().unwrap();
    assert!(!message.contains("http"), "{message}");
    let logs = w.on_id(&alice, LOGS, id).await;
    let text = ok(&logs, "codeServerLogs").as_str().unwrap();
    assert!(
        text.contains("error: cloning repo failed"),
        "the clone container's log: {text}"
    );
}

#[tokio::test]
async fn refused_and_failed_provisioning_creates_nothing() {
    let w = World::start().await;
    let bob = w.token("bob");
    w.sim().reset_requests();
    let denied = w.provision(&bob, "alice", "notes").await;
    assert_eq!(error_of(&denied), ("repository access denied", "FORBIDDEN"));
    let hostile = w.provision(&bob, "devteam", "x;reboot").await;
    assert_eq!(error_of(&hostile).1, "BAD_USER_INPUT");
    w.gitea.set_fault(GiteaFault::Unavailable);
    let down = w.provision(&bob, "devteam", "docs").await;
    assert_eq!(
        error_of(&down),
        ("repository service unavailable", "INTERNAL")
    );
    assert!(w.sim().requests().is_empty(), "{:?}", w.sim().requests());
}

#[tokio::test]
async fn dry_runs_render_and_plan_without_writing() {
    let w = World::start().await;
    let alice = w.token("alice");
    const RENDER: &str = "query($o: String!, $n: String!, $u: String) { renderCodeServer(repoOwner: $o, repoName: $n, userId: $u) { manifests objects } }";
    const PLAN: &str = "query($o: String!, $n: String!, $u: String) { planCodeServer(repoOwner: $o, repoName: $n, userId: $u) { unchanged steps { object action patch } text } }";
    w.sim().reset_requests();
    let render = w
        .gql(&alice, RENDER, json!({"o": "devteam", "n": "docs"}))
        .await;
    let render = ok(&render, "renderCodeServer");
    assert!(render["manifests"].as_str().unwrap().contains("kind: Pod"));
    assert!(
        render["objects"]
            .as_array()
            .unwrap()
            .contains(&json!("PersistentVolumeClaim/workspace-alice"))
    );
    let plan = w
        .gql(&alice, PLAN, json!({"o": "devteam", "n": "docs"}))
        .await;
    let plan = ok(&plan, "planCodeServer");
    assert_eq!(plan["unchanged"], false);
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "CREATE")
    );
    assert!(w.sim().writes().is_empty());

    ok(
        &w.provision(&alice, "devteam", "docs").await,
        "provisionCodeServer",
    );
    let plan = w
        .gql(&alice, PLAN, json!({"o": "devteam", "n": "docs"}))
        .await;
    assert_eq!(ok(&plan, "planCodeServer")["unchanged"], true, "{plan}");

    let admin = w.admin_token("admin");
    let for_alice = w
        .gql(
            &admin,
            RENDER,
            json!({"o": "devteam", "n": "docs", "u": "alice"}),
        )
        .await;
    assert!(
        ok(&for_alice, "renderCodeServer")["manifests"]
            .as_str()
            .unwrap()
            .contains("workspace-alice")
    );
    // alice's instance is tied to her token's `sub`; the admin names her by user id only,
    // and still sees her live instance (nothing to change), not a fresh one.
    w.sim().reset_requests();
    let plan_for_alice = w
        .gql(
            &admin,
            PLAN,
            json!({"o": "devteam", "n": "docs", "u": "alice"}),
        )
        .await;
    assert_eq!(
        ok(&plan_for_alice, "planCodeServer")["unchanged"],
        true,
        "{plan_for_alice}"
    );
    assert!(w.sim().writes().is_empty(), "dry runs write nothing");
}

#[tokio::test]
async fn instance_stats_are_for_admins_and_feed_the_gauges() {
    let w = World::start().await;
    let alice = w.token("alice");
    let bob = w.token("bob");
    ok(
        &w.provision(&alice, "devteam", "docs").await,
        "provisionCodeServer",
    );
    ok(
        &w.provision(&bob, "devteam", "docs").await,
        "provisionCodeServer",
    );
    ok(
        &w.on_id(&bob, STOP, "code-server-bob").await,
        "stopCodeServer",
    );
    w.until_gone("pods", "code-server-bob").await;
    let denied = w
        .gql(&alice, "{ instanceStats { totalInstances } }", json!({}))
        .await;
    assert_eq!(error_of(&denied), ("forbidden", "FORBIDDEN"));
    let admin = w.admin_token("admin");
    let stats = w
        .gql(
            &admin,
            "{ instanceStats { totalInstances runningInstances stoppedInstances totalStorageUsed } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok(&stats, "instanceStats"),
        &json!({"totalInstances": 2, "runningInstances": 1, "stoppedInstances": 1, "totalStorageUsed": "20Gi"})
    );
    let text = w.metrics.encode();
    assert!(
        text.contains("codeserver_instances_total{status=\"RUNNING\"} 1"),
        "{text}"
    );
    assert!(text.contains("codeserver_instances_total{status=\"STOPPED\"} 1"));
    assert!(text.contains("codeserver_storage_used_bytes{user=\"all\"} 21474836480"));
    assert!(
        !text.contains("alice"),
        "no user names in metric labels: {text}"
    );
}

#[tokio::test]
async fn cluster_failures_answer_with_the_spec_messages_only() {
    let w = World::builder()
        .fault(
            codeserver_sim::Fault::status(403)
                .verb("patch")
                .resource("persistentvolumeclaims"),
        )
        .start()
        .await;
    let alice = w.token("alice");
    let storage = w.provision(&alice, "devteam", "docs").await;
    assert_eq!(
        error_of(&storage),
        ("failed to create storage", "INTERNAL"),
        "{storage}"
    );
    assert!(
        w.pod("code-server-alice").is_none(),
        "no pod without its volume"
    );
    w.sim().clear_faults();

    w.sim().inject(
        codeserver_sim::Fault::status(403)
            .verb("patch")
            .resource("pods"),
    );
    let instance = w.provision(&alice, "devteam", "docs").await;
    assert_eq!(
        error_of(&instance),
        ("failed to create instance", "INTERNAL"),
        "{instance}"
    );
    let text = instance.to_string();
    assert!(
        !text.contains("403") && !text.contains("Forbidden"),
        "{text}"
    );
    w.sim().clear_faults();

    let retried = w.provision(&alice, "devteam", "docs").await;
    assert_eq!(
        ok(&retried, "provisionCodeServer")["instance"]["status"],
        "RUNNING"
    );
}

#[tokio::test]
async fn readiness_follows_the_simulated_cluster() {
    let w = World::start().await;
    let ready = w.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let health = w.get("/health").await;
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn ready_and_the_templates_query_report_the_active_revision() {
    let w = World::start().await;
    let builtin = Templates::builtin().unwrap();
    let ready: Value = w.get("/ready").await.json().await.unwrap();
    // Ready or not, the revision and what the deployment lacks, nothing more: the details
    // go to the log.
    assert_eq!(
        ready,
        json!({"status": "ready", "templates": {"revision": builtin.revision()}, "degraded": []})
    );

    let token = w.token("alice");
    let answer = w
        .gql(
            &token,
            "{ templates { revision source loadedAt lastRefusal { problems } } }",
            json!({}),
        )
        .await;
    let set = &answer["data"]["templates"];
    assert_eq!(set["revision"], builtin.revision(), "{answer}");
    assert_eq!(set["source"], "built-in");
    assert!(set["loadedAt"].as_str().unwrap().ends_with('Z'));
    assert!(set["lastRefusal"].is_null());
    let (_, anonymous) = w
        .post(None, &json!({"query": "{ templates { revision } }"}))
        .await;
    assert_eq!(
        anonymous["errors"][0]["message"], "unauthorized",
        "{anonymous}"
    );
}
