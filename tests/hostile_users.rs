//! Hostile users against the whole service, in-process: the GraphQL API over HTTP, the
//! reconciler and the kube client against the simulated cluster, with the simulated Gitea
//! and issuer. Every attack must fail with a clear error and change nothing.

#[path = "support/world.rs"]
mod world;

use codeserver_service::{gitea::AuthMode, naming};
use codeserver_sim::gitea::SimRepo;
use serde_json::{Value, json};
use world::{NS, World, error_of, ok};

/// The service with deploy keys, asking Gitea with Sudo.
async fn world() -> World {
    world_in(AuthMode::Sudo).await
}

/// A world whose service asks Gitea as the caller in `mode`, with deploy keys.
async fn world_in(mode: AuthMode) -> World {
    World::builder().deploy_keys(mode).start().await
}

fn label<'a>(object: &'a Value, key: &str) -> &'a str {
    object["metadata"]["labels"][key]
        .as_str()
        .unwrap_or_default()
}

/// `john.doe` hashes to `john-doe-<16 hex>` (and did to `john-doe-30f69670`); a user
/// literally called either must get a different instance, whichever comes first.
#[tokio::test]
async fn a_user_named_like_a_hashed_name_gets_a_different_instance_in_either_order() {
    let hashed = naming::safe_name("john.doe").unwrap();
    let cases = [
        (true, hashed.as_str()),
        (false, hashed.as_str()),
        (true, "john-doe-30f69670"),
    ];
    for (victim_first, attacker_id) in cases {
        let w = world().await;
        w.gitea.add_user("john.doe");
        w.gitea.add_user(attacker_id);
        let victim = w.token("john.doe");
        let attacker = w.token(attacker_id);
        let provision_as = |token| w.provision(token, "devteam", "docs");
        let (first, second) = if victim_first {
            (&victim, &attacker)
        } else {
            (&attacker, &victim)
        };
        let a = provision_as(first).await;
        let b = provision_as(second).await;
        let a_id = ok(&a, "provisionCodeServer")["instance"]["id"].clone();
        let b_id = ok(&b, "provisionCodeServer")["instance"]["id"].clone();
        assert_ne!(a_id, b_id);
        assert_eq!(ok(&b, "provisionCodeServer")["isNew"], json!(true));
        let pvc = w.pvc(&format!("workspace-{hashed}")).unwrap();
        assert_eq!(label(&pvc, "devplatform.io/owner"), "sub-john.doe");
        let theirs = w.mine(&victim).await;
        assert_eq!(theirs.as_array().unwrap().len(), 1, "{theirs}");
        assert_eq!(theirs[0]["id"], json!(format!("code-server-{hashed}")));
        assert_eq!(theirs[0]["userId"], json!("john.doe"));
        let attackers = w.mine(&attacker).await;
        assert_eq!(attackers.as_array().unwrap().len(), 1, "{attackers}");
        assert_ne!(attackers[0]["id"], theirs[0]["id"]);
    }
}

/// An instance another owner holds under the names the caller's id maps to (here one
/// created before names were made injective): provisioning answers `instance name taken`
/// and writes nothing; the holder keeps the instance.
#[tokio::test]
async fn provisioning_never_writes_over_another_owners_live_objects() {
    let h = naming::safe_name("john.doe").unwrap();
    let w = world().await;
    w.gitea.add_user("john.doe");
    w.sim()
        .seed(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": format!("workspace-{h}"),
                "namespace": NS,
                "labels": {
                    "app.kubernetes.io/managed-by": "codeserver-service",
                    "app.kubernetes.io/name": "code-server",
                    "app.kubernetes.io/instance": format!("code-server-{h}"),
                    "devplatform.io/user": h.clone(),
                    "devplatform.io/owner": format!("sub-{h}"),
                },
                "annotations": {
                    "devplatform.io/user-id": h.clone(),
                    "devplatform.io/repos": "[{\"owner\":\"devteam\",\"name\":\"docs\",\"cloneUrl\":\"http://gitea:3000/devteam/docs.git\"}]",
                },
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }))
        .unwrap();
    assert!(world::record_cached(&w.reconciler, &format!("workspace-{h}")).await);
    let before = w.pvc(&format!("workspace-{h}")).unwrap();
    let victim = w.token("john.doe");
    w.sim().reset_requests();
    for _ in 0..2 {
        let body = w.provision(&victim, "devteam", "docs").await;
        assert_eq!(
            error_of(&body),
            ("instance name taken", "INSTANCE_NAME_TAKEN"),
            "{body}"
        );
    }
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
    assert!(
        w.gitea.deploy_keys().is_empty(),
        "no key was added for the refused caller"
    );
    let after = w.pvc(&format!("workspace-{h}")).unwrap();
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    // NB: the simulated volume controller binds the claim meanwhile (its annotations).
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    for key in ["devplatform.io/repos", "devplatform.io/user-id"] {
        let annotation = |o: &Value| o["metadata"]["annotations"][key].clone();
        assert_eq!(annotation(&after), annotation(&before), "{key}");
    }
    assert_eq!(after["spec"]["resources"], before["spec"]["resources"]);
    assert_eq!(label(&after, "devplatform.io/owner"), format!("sub-{h}"));
    assert!(
        w.sim()
            .object("pods", NS, &format!("code-server-{h}"))
            .is_none()
    );
    assert_eq!(w.mine(&victim).await, json!([]));
    // The holder still finds, starts and owns it (its name is kept although the id now
    // maps elsewhere).
    w.gitea.add_user(&h);
    let holder = w.token(&h);
    let mine = w.mine(&holder).await;
    assert_eq!(mine[0]["id"], json!(format!("code-server-{h}")), "{mine}");
    let started = w
        .gql(
            &holder,
            "mutation($id: String!) { startCodeServer(id: $id) { id status } }",
            json!({"id": format!("code-server-{h}")}),
        )
        .await;
    assert_eq!(
        ok(&started, "startCodeServer")["id"],
        json!(format!("code-server-{h}"))
    );
}

/// A workspace volume recording `repos` for `user` (as the service writes it), seeded as a
/// stopped instance.
fn seeded_record(user: &str, repos: &[(String, String)]) -> Value {
    let repos: Vec<Value> = repos
        .iter()
        .map(|(o, n)| json!({"owner": o, "name": n, "cloneUrl": format!("http://gitea:3000/{o}/{n}.git")}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": format!("workspace-{user}"),
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/managed-by": "codeserver-service",
                "app.kubernetes.io/name": "code-server",
                "app.kubernetes.io/instance": format!("code-server-{user}"),
                "devplatform.io/user": user,
                "devplatform.io/owner": format!("sub-{user}"),
            },
            "annotations": {
                "devplatform.io/user-id": user,
                "devplatform.io/repos": serde_json::to_string(&repos).unwrap(),
            },
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    })
}

/// An instance holds at most `limits.repositoriesPerInstance` (20) repositories: one more
/// is refused with its own code and nothing is written; the ones it has still provision.
#[tokio::test]
async fn the_repository_cap_refuses_one_more_and_changes_nothing() {
    let w = world().await;
    let full: Vec<(String, String)> = (0..20)
        .map(|i| ("alice".to_owned(), format!("r{i}")))
        .collect();
    w.sim().seed(seeded_record("alice", &full)).unwrap();
    assert!(world::record_cached(&w.reconciler, "workspace-alice").await);
    for (owner, name) in &full {
        w.gitea.add_repo(SimRepo::new(owner, name, false));
    }
    let alice = w.token("alice");
    w.sim().reset_requests();
    let body = w.provision(&alice, "devteam", "docs").await;
    let (message, code) = error_of(&body);
    assert_eq!(code, "REPOSITORY_LIMIT_EXCEEDED", "{body}");
    assert_eq!(
        message,
        "repository limit reached: an instance holds at most 20 repositories"
    );
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
    let pvc = w.pvc("workspace-alice").unwrap();
    let recorded: Vec<Value> = serde_json::from_str(
        pvc["metadata"]["annotations"]["devplatform.io/repos"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(recorded.len(), 20);
    // A repository already recorded is no addition: the instance starts as usual.
    w.gitea
        .add_repo(codeserver_sim::gitea::SimRepo::new("alice", "r3", false));
    let again = w.provision(&alice, "alice", "r3").await;
    assert_eq!(
        ok(&again, "provisionCodeServer")["message"],
        json!("Instance started")
    );
}

const SYNC: &str = "mutation($id: String!) { syncRepository(id: $id) }";

/// One sync at a time per instance, across requests and replicas: the sync Job's one name
/// per instance is the lock. While a sync Job runs (here one left by another replica), a
/// second sync answers `sync in progress` and writes nothing; a finished Job is replaced.
#[tokio::test]
async fn a_second_sync_while_one_runs_answers_sync_in_progress() {
    let w = world().await;
    let alice = w.token("alice");
    let id = "code-server-alice";
    let p = w.provision(&alice, "devteam", "docs").await;
    assert_eq!(
        ok(&p, "provisionCodeServer")["instance"]["status"],
        json!("RUNNING")
    );
    // Two syncs one after the other: the first Job is kept (TTL) and replaced by the second.
    for _ in 0..2 {
        let body = w.gql(&alice, SYNC, json!({"id": id})).await;
        assert_eq!(ok(&body, "syncRepository"), &json!(true));
    }
    let first = w.sim().object("jobs", NS, "sync-alice").unwrap();
    // A running sync: a Job of that name that has not finished (suspended, so it stays).
    w.sim().reset_requests();
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> =
        kube::Api::namespaced(w.sim().client(), NS);
    jobs.delete("sync-alice", &kube::api::DeleteParams::background())
        .await
        .unwrap();
    let mut running = first.clone();
    running["metadata"] = json!({
        "name": "sync-alice",
        "namespace": NS,
        "labels": first["metadata"]["labels"].clone(),
    });
    running["spec"]["suspend"] = json!(true);
    running["spec"].as_object_mut().unwrap().remove("selector");
    let template_labels = running["spec"]["template"]["metadata"]["labels"]
        .as_object_mut()
        .unwrap();
    template_labels.retain(|k, _| !k.contains("controller-uid") && !k.contains("job-name"));
    running.as_object_mut().unwrap().remove("status");
    let seeded = w.sim().seed(running).unwrap();
    w.sim().reset_requests();
    let (a, b) = tokio::join!(
        w.gql(&alice, SYNC, json!({"id": id})),
        w.gql(&alice, SYNC, json!({"id": id}))
    );
    for body in [&a, &b] {
        assert_eq!(
            error_of(body),
            ("sync in progress", "SYNC_IN_PROGRESS"),
            "{body}"
        );
    }
    let writes: Vec<_> = w
        .sim()
        .writes()
        .into_iter()
        .filter(|r| r.verb != "create" || r.resource != "jobs")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(
        w.sim().count("create", "jobs"),
        2,
        "one refused attempt each"
    );
    let still = w.sim().object("jobs", NS, "sync-alice").unwrap();
    assert_eq!(still["metadata"]["uid"], seeded["metadata"]["uid"]);
    assert_eq!(still["spec"]["suspend"], json!(true));
}

const START: &str = "mutation($id: String!) { startCodeServer(id: $id) { id status } }";
const STOP: &str = "mutation($id: String!) { stopCodeServer(id: $id) }";
const DELETE: &str = "mutation($id: String!) { deleteCodeServer(id: $id) }";

fn secret_data_keys(w: &World, name: &str) -> Vec<String> {
    w.sim()
        .object("secrets", NS, name)
        .and_then(|s| s["data"].as_object().map(|d| d.keys().cloned().collect()))
        .unwrap_or_default()
}

fn repos_env(containers: &Value) -> String {
    containers[0]["env"]
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == "REPOS"))
        .and_then(|v| v["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Every instance gets its own read-only deploy keys: nothing in alice's pod is in bob's.
#[tokio::test]
async fn each_instance_gets_its_own_read_only_deploy_keys() {
    let w = world().await;
    for user in ["alice", "bob"] {
        let body = w.provision(&w.token(user), "devteam", "backend-api").await;
        ok(&body, "provisionCodeServer");
    }
    let keys = w.gitea.deploy_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.read_only && k.repo == "devteam/backend-api")
    );
    assert_ne!(keys[0].key, keys[1].key);
    let titles: Vec<&str> = keys.iter().map(|k| k.title.as_str()).collect();
    assert!(
        titles.iter().any(|t| t.ends_with("code-server-alice")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.ends_with("code-server-bob")),
        "{titles:?}"
    );
    let (a, b) = (
        secret_data_keys(&w, "git-keys-alice"),
        secret_data_keys(&w, "git-keys-bob"),
    );
    assert_eq!((a.len(), b.len()), (1, 1));
    let private = |name: &str| {
        w.sim().object("secrets", NS, name).unwrap()["data"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .cloned()
            .unwrap()
    };
    assert_ne!(private("git-keys-alice"), private("git-keys-bob"));
    for user in ["alice", "bob"] {
        let pod = w
            .sim()
            .object("pods", NS, &format!("code-server-{user}"))
            .unwrap();
        let volumes = pod["spec"]["volumes"].to_string();
        assert!(volumes.contains(&format!("git-keys-{user}")), "{volumes}");
        let cloned = repos_env(&pod["spec"]["initContainers"]);
        assert!(
            cloned.ends_with(" git@127.0.0.1:devteam/backend-api.git"),
            "over SSH: {cloned}"
        );
        let other = if user == "alice" { "bob" } else { "alice" };
        assert!(!pod.to_string().contains(&format!("git-keys-{other}")));
    }
    // Deleting an instance revokes its keys and removes its Secret; bob's stay.
    let deleted = w
        .gql(
            &w.token("alice"),
            DELETE,
            json!({"id": "code-server-alice"}),
        )
        .await;
    assert_eq!(ok(&deleted, "deleteCodeServer"), &json!(true));
    let left = w.gitea.deploy_keys();
    assert_eq!(left.len(), 1);
    assert!(left[0].title.ends_with("code-server-bob"));
    assert!(w.sim().object("secrets", NS, "git-keys-alice").is_none());
    assert!(w.sim().object("secrets", NS, "git-keys-bob").is_some());
}

/// A repository the owner lost access to in Gitea is not pulled by sync or start, its
/// key is revoked, and the answer says so; with no readable repository left, nothing is
/// started.
#[tokio::test]
async fn a_repository_the_owner_lost_is_not_pulled_and_the_answer_says_so() {
    let w = world().await;
    let alice = w.token("alice");
    let id = "code-server-alice";
    ok(
        &w.provision(&alice, "devteam", "backend-api").await,
        "provisionCodeServer",
    );
    ok(
        &w.provision(&alice, "devteam", "docs").await,
        "provisionCodeServer",
    );
    assert_eq!(secret_data_keys(&w, "git-keys-alice").len(), 2);
    w.gitea
        .remove_collaborator("devteam", "backend-api", "alice");

    let body = w.gql(&alice, SYNC, json!({"id": id})).await;
    assert_eq!(body["data"]["syncRepository"], json!(true), "{body}");
    let (message, code) = error_of(&body);
    assert_eq!(code, "REPOSITORY_ACCESS_LOST", "{body}");
    assert_eq!(
        message,
        "repository access lost, not pulled: devteam/backend-api"
    );
    let job = w.sim().object("jobs", NS, "sync-alice").unwrap();
    let pulled = repos_env(&job["spec"]["template"]["spec"]["containers"]);
    assert!(
        pulled.contains("devteam/docs.git") && !pulled.contains("backend-api"),
        "{pulled}"
    );
    let keys = w.gitea.deploy_keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].repo, "devteam/docs");
    assert_eq!(secret_data_keys(&w, "git-keys-alice").len(), 1);

    // Start: the new pod gets only what alice may still read; the answer says so.
    ok(
        &w.gql(&alice, STOP, json!({"id": id})).await,
        "stopCodeServer",
    );
    let started = w.gql(&alice, START, json!({"id": id})).await;
    assert_eq!(
        started["data"]["startCodeServer"]["id"],
        json!(id),
        "{started}"
    );
    assert_eq!(error_of(&started).1, "REPOSITORY_ACCESS_LOST");
    let pod = w.sim().object("pods", NS, id).unwrap();
    let cloned = repos_env(&pod["spec"]["initContainers"]);
    assert!(
        cloned.contains("devteam/docs.git") && !cloned.contains("backend-api"),
        "{cloned}"
    );
    // The record keeps the repository: if access comes back, so does the repository.
    let pvc = w.pvc("workspace-alice").unwrap();
    let record = pvc["metadata"]["annotations"]["devplatform.io/repos"].to_string();
    assert!(record.contains("backend-api"), "{record}");

    // Nothing left that alice may read: start and sync start and pull nothing.
    w.gitea.add_user("carol");
    let carol = w.token("carol");
    w.gitea
        .add_repo(SimRepo::new("devteam", "carols", true).with_collaborators(&["carol"]));
    let body = w.provision(&carol, "devteam", "carols").await;
    ok(&body, "provisionCodeServer");
    w.gitea.remove_collaborator("devteam", "carols", "carol");
    let carols = json!({"id": "code-server-carol"});
    w.sim().reset_requests();
    let body = w.gql(&carol, SYNC, carols.clone()).await;
    assert_eq!(
        error_of(&body),
        ("repository access denied", "FORBIDDEN"),
        "{body}"
    );
    // The only write takes the revoked key out of carol's Secret; nothing is pulled.
    let writes = w.sim().writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].resource, "secrets");
    assert!(
        !w.gitea
            .deploy_keys()
            .iter()
            .any(|k| k.repo == "devteam/carols")
    );
    assert!(w.sim().object("jobs", NS, "sync-carol").is_none());
    ok(&w.gql(&carol, STOP, carols.clone()).await, "stopCodeServer");
    w.sim().reset_requests();
    let body = w.gql(&carol, START, carols).await;
    assert_eq!(
        error_of(&body),
        ("repository access denied", "FORBIDDEN"),
        "{body}"
    );
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
}

/// Start never writes over a live object of the instance that another owner holds either:
/// it answers `instance name taken`, and nothing is written (no pod, no key).
#[tokio::test]
async fn start_never_writes_over_another_owners_live_objects() {
    let w = world().await;
    let alice = w.token("alice");
    let id = "code-server-alice";
    ok(
        &w.provision(&alice, "devteam", "docs").await,
        "provisionCodeServer",
    );
    ok(
        &w.gql(&alice, STOP, json!({"id": id})).await,
        "stopCodeServer",
    );
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(w.sim().client(), NS);
    let foreign = json!({"metadata": {"labels": {"devplatform.io/owner": "sub-mallory", "devplatform.io/user": "mallory"}}});
    services
        .patch(
            id,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&foreign),
        )
        .await
        .unwrap();
    let keys_before = w.gitea.deploy_keys();
    w.sim().reset_requests();
    let body = w.gql(&alice, START, json!({"id": id})).await;
    assert_eq!(
        error_of(&body),
        ("instance name taken", "INSTANCE_NAME_TAKEN"),
        "{body}"
    );
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
    assert!(w.sim().object("pods", NS, id).is_none());
    assert_eq!(w.gitea.deploy_keys(), keys_before);
    let service = w.sim().object("services", NS, id).unwrap();
    assert_eq!(label(&service, "devplatform.io/owner"), "sub-mallory");
}

/// GITEA_AUTH_MODE=forward: Gitea is asked with the caller's own token (no Sudo), on
/// provision and again on sync; deploy keys still use the service token.
#[tokio::test]
async fn the_forward_mode_asks_gitea_with_the_callers_token() {
    let w = world_in(AuthMode::Forward).await;
    let (alice, bob) = (w.token("alice"), w.token("bob"));
    let body = w.provision(&alice, "devteam", "backend-api").await;
    ok(&body, "provisionCodeServer");
    assert_eq!(w.gitea.deploy_keys().len(), 1);
    let denied = w.provision(&bob, "alice", "notes").await;
    assert_eq!(error_of(&denied), ("repository access denied", "FORBIDDEN"));
    w.gitea
        .remove_collaborator("devteam", "backend-api", "alice");
    let synced = w
        .gql(&alice, SYNC, json!({"id": "code-server-alice"}))
        .await;
    assert_eq!(
        error_of(&synced),
        ("repository access denied", "FORBIDDEN"),
        "{synced}"
    );
    assert!(
        w.gitea.deploy_keys().is_empty(),
        "the lost repository's key is revoked"
    );
    assert!(secret_data_keys(&w, "git-keys-alice").is_empty());
}
