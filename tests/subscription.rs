//! The `codeServerEvents` subscription over graphql-transport-ws on `/graphql`, with a real
//! websocket client, against the simulated cluster. The cluster's lifecycle is off: the
//! tests play the kubelet (pod status) and write the events, so every step is seen.

#[path = "support/world.rs"]
mod world;

use std::time::Duration;

use codeserver_service::http;
use codeserver_sim::{PodBehaviour, issuer::TokenSpec};
use futures::{SinkExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest as _, protocol::frame::coding::CloseCode,
};
use world::{NS, World};

/// A safety net only: every wait below ends on a message.
const PATIENCE: Duration = Duration::from_secs(30);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The service on a simulated cluster whose lifecycle is off: the test plays the
/// scheduler and the kubelet.
async fn world(api: http::ApiSettings) -> World {
    World::builder()
        .without_lifecycle()
        .reconciler(|r| r.ready_timeout(Duration::from_secs(3600)))
        .api(api)
        .start()
        .await
}

impl World {
    /// Provisions `devteam/docs` for `token`'s user without waiting; the instance id.
    async fn provision_pending(&self, token: &str) -> String {
        let body = json!({"query": "mutation { provisionCodeServer(repoOwner: \"devteam\", repoName: \"docs\", wait: false) { instance { id status } } }"});
        let (_, answer) = self.post(Some(token), &body).await;
        let instance = &answer["data"]["provisionCodeServer"]["instance"];
        assert_eq!(instance["status"], "PENDING", "{answer}");
        instance["id"].as_str().unwrap().to_owned()
    }

    /// A websocket on `/graphql` speaking graphql-transport-ws.
    async fn socket(&self) -> Socket {
        let url = format!("{}/graphql", self.base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        socket
    }

    /// A socket whose `connection_init` carried `payload` and was acknowledged.
    async fn connected(&self, payload: Value) -> Socket {
        let mut socket = self.socket().await;
        send(
            &mut socket,
            json!({"type": "connection_init", "payload": payload}),
        )
        .await;
        assert_eq!(next(&mut socket).await["type"], "connection_ack");
        socket
    }

    async fn set_pod_status(&self, id: &str, status: Value) {
        let pods: Api<Pod> = Api::namespaced(self.sim().client(), NS);
        pods.patch_status(
            id,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next text message; pings are skipped.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// The close code the server ends the socket with.
async fn closed_with(socket: &mut Socket) -> CloseCode {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a message in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code,
            Some(Ok(Message::Text(text))) => panic!("a message instead of a close: {text}"),
            Some(Ok(_)) => {}
            other => panic!("closed without a close frame: {other:?}"),
        }
    }
}

fn subscribe(id: &str, instance: &str) -> Value {
    json!({
        "id": id,
        "type": "subscribe",
        "payload": {
            "query": "subscription($id: String!) { codeServerEvents(id: $id) { kind status message at event { reason object } } }",
            "variables": {"id": instance},
        },
    })
}

/// Subscription `id` answers one `next` with no data and the error `message` (`code`),
/// then `complete`.
async fn refused_then_complete(socket: &mut Socket, id: &str, message: &str, code: &str) {
    let answer = next(socket).await;
    assert_eq!(answer["id"], id);
    assert!(answer["payload"]["data"].is_null(), "{answer}");
    assert_eq!(answer["payload"]["errors"][0]["message"], message);
    assert_eq!(answer["payload"]["errors"][0]["extensions"]["code"], code);
    assert_eq!(next(socket).await, json!({"id": id, "type": "complete"}));
}

/// The next progress item of subscription `id`.
async fn item(socket: &mut Socket, id: &str) -> Value {
    let message = next(socket).await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["id"], id, "{message}");
    assert!(message["payload"]["errors"].is_null(), "{message}");
    message["payload"]["data"]["codeServerEvents"].clone()
}

fn init_status(state: Value) -> Value {
    json!([{
        "name": "git-clone", "image": "alpine/git:2.45.2", "imageID": "", "ready": false,
        "restartCount": 0, "state": state,
    }])
}

#[tokio::test]
async fn a_subscription_follows_a_provision_from_pending_through_the_clone_to_running() {
    let w = world(http::ApiSettings::default()).await;
    let alice = w.token("alice");
    let id = w.provision_pending(&alice).await;
    let mut socket = w
        .connected(json!({"Authorization": format!("Bearer {alice}")}))
        .await;
    send(&mut socket, subscribe("1", &id)).await;

    let first = item(&mut socket, "1").await;
    assert_eq!(
        (first["kind"].as_str(), first["status"].as_str()),
        (Some("PHASE"), Some("PENDING"))
    );
    assert!(
        first["at"]
            .as_str()
            .is_some_and(|at| at.parse::<jiff::Timestamp>().is_ok())
    );

    // Scheduled; the clone runs.
    w.set_pod_status(
        &id,
        json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": init_status(json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}})),
        }),
    )
    .await;
    let starting = item(&mut socket, "1").await;
    assert_eq!(
        (starting["kind"].as_str(), starting["status"].as_str()),
        (Some("PHASE"), Some("STARTING"))
    );
    let cloning = item(&mut socket, "1").await;
    assert_eq!(cloning["kind"], "CLONE");
    assert_eq!(cloning["message"], "git-clone: running");

    // A Kubernetes event of the pod.
    let events: Api<Event> = Api::namespaced(w.sim().client(), NS);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": format!("{id}.pulled"), "namespace": NS},
        "involvedObject": {"kind": "Pod", "name": id, "namespace": NS, "apiVersion": "v1"},
        "reason": "Pulled", "message": "Container image \"alpine/git\" already present on machine",
        "type": "Normal", "count": 1, "source": {"component": "kubelet"},
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    let reported = item(&mut socket, "1").await;
    assert_eq!(reported["kind"], "EVENT");
    assert_eq!(reported["status"], "STARTING");
    assert_eq!(reported["event"]["reason"], "Pulled");
    assert_eq!(reported["event"]["object"], format!("Pod/{id}"));

    // The clone is done, then code-server is ready: RUNNING, and the subscription ends.
    w.set_pod_status(
        &id,
        json!({"initContainerStatuses": init_status(json!({"terminated": {"exitCode": 0, "reason": "Completed"}}))}),
    )
    .await;
    let cloned = item(&mut socket, "1").await;
    assert_eq!(cloned["kind"], "CLONE");
    assert_eq!(
        cloned["message"],
        "git-clone: terminated (Completed, exit code 0)"
    );
    w.set_pod_status(
        &id,
        json!({
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
        }),
    )
    .await;
    let running = item(&mut socket, "1").await;
    assert_eq!(
        (running["kind"].as_str(), running["status"].as_str()),
        (Some("PHASE"), Some("RUNNING"))
    );
    assert_eq!(
        next(&mut socket).await,
        json!({"id": "1", "type": "complete"})
    );

    // A subscription to a running instance answers RUNNING and ends at once.
    send(&mut socket, subscribe("2", &id)).await;
    assert_eq!(item(&mut socket, "2").await["status"], "RUNNING");
    assert_eq!(
        next(&mut socket).await,
        json!({"id": "2", "type": "complete"})
    );
}

#[tokio::test]
async fn another_users_instance_is_not_found_and_the_stream_ends() {
    let w = world(http::ApiSettings::default()).await;
    let id = w.provision_pending(&w.token("alice")).await;
    let bob = w.token("bob");
    let mut socket = w.connected(json!({"token": bob})).await;
    send(&mut socket, subscribe("1", &id)).await;
    refused_then_complete(&mut socket, "1", "instance not found", "NOT_FOUND").await;
    // An admin may follow any instance.
    let mut admin = w.connected(json!({"token": w.admin_token("admin")})).await;
    send(&mut admin, subscribe("1", &id)).await;
    assert_eq!(item(&mut admin, "1").await["status"], "PENDING");
    // A malformed id is refused the same way, before any cluster call.
    send(&mut socket, subscribe("2", "../../etc")).await;
    let answer = next(&mut socket).await;
    assert!(
        answer["payload"]["errors"][0]["message"].is_string(),
        "{answer}"
    );
    assert!(answer["payload"]["data"].is_null(), "{answer}");
}

#[tokio::test]
async fn connections_without_valid_credentials_are_closed() {
    let w = world(http::ApiSettings::default()).await;
    let expired = w
        .issuer
        .mint(&TokenSpec::new("alice").expires_in(-3600))
        .unwrap();
    for payload in [
        json!({}),
        json!(null),
        json!({"Authorization": "Bearer not-a-token"}),
        json!({"Authorization": format!("Bearer {expired}")}),
        json!({"token": w.issuer.mint_alg_none(&TokenSpec::new("alice"))}),
        json!({"Authorization": "Basic YWxpY2U6cGFzcw=="}),
    ] {
        let mut socket = w.socket().await;
        send(
            &mut socket,
            json!({"type": "connection_init", "payload": payload}),
        )
        .await;
        assert_eq!(
            closed_with(&mut socket).await,
            CloseCode::from(4403),
            "{payload}"
        );
    }
    // Subscribing before connection_init is refused as the protocol says.
    let mut socket = w.socket().await;
    send(&mut socket, subscribe("1", "code-server-alice")).await;
    assert_eq!(closed_with(&mut socket).await, CloseCode::from(4401));
    // A websocket without the graphql-transport-ws subprotocol is not upgraded.
    let url = format!("{}/graphql", w.base.replacen("http", "ws", 1));
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn each_caller_has_a_limited_number_of_subscriptions_and_costly_ones_are_refused() {
    let w = world(http::ApiSettings {
        max_subscriptions_per_caller: 2,
        ..http::ApiSettings::default()
    })
    .await;
    let alice = w.token("alice");
    let id = w.provision_pending(&alice).await;
    let mut first = w.connected(json!({"token": alice})).await;
    send(&mut first, subscribe("a", &id)).await;
    assert_eq!(item(&mut first, "a").await["status"], "PENDING");
    // The limit is per caller, across connections.
    let mut second = w.connected(json!({"token": alice})).await;
    send(&mut second, subscribe("b", &id)).await;
    assert_eq!(item(&mut second, "b").await["status"], "PENDING");
    send(&mut second, subscribe("c", &id)).await;
    refused_then_complete(
        &mut second,
        "c",
        "too many subscriptions",
        "TOO_MANY_REQUESTS",
    )
    .await;

    // Another caller is not affected.
    let bob = w.token("bob");
    let bobs = w.provision_pending(&bob).await;
    let mut third = w.connected(json!({"token": bob})).await;
    send(&mut third, subscribe("x", &bobs)).await;
    assert_eq!(item(&mut third, "x").await["status"], "PENDING");

    // Closing a connection gives its subscription's place back.
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(PATIENCE, first.next()).await.unwrap() {}
    send(&mut second, subscribe("d", &id)).await;
    assert_eq!(item(&mut second, "d").await["status"], "PENDING");

    // The cost limits apply to every subscribe.
    let aliases: String = (0..11)
        .map(|i| format!("a{i}: codeServerEvents(id: \"{id}\") {{ kind }} "))
        .collect();
    send(
        &mut third,
        json!({"id": "big", "type": "subscribe", "payload": {"query": format!("subscription {{ {aliases} }}")}}),
    )
    .await;
    let refused = next(&mut third).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["id"], "big");
    assert_eq!(refused["payload"][0]["message"], "too many root fields");
}

#[tokio::test]
async fn with_the_simulated_kubelet_a_subscription_ends_at_running() {
    let w = World::start().await;
    let alice = w.token("alice");
    // NB: the simulated kubelet runs on its own; the scheduler holds alice's pod (no node
    // fits, for less than UNSCHEDULABLE_TIMEOUT: still PENDING) until the subscription has
    // seen it pending, then lets it go.
    let id = "code-server-alice";
    w.sim().set_pod_behaviour(id, PodBehaviour::Unschedulable);
    assert_eq!(w.provision_pending(&alice).await, id);
    let mut socket = w.connected(json!({"token": alice})).await;
    send(&mut socket, subscribe("1", id)).await;
    let first = item(&mut socket, "1").await;
    assert_eq!(
        (first["kind"].as_str(), first["status"].as_str()),
        (Some("PHASE"), Some("PENDING"))
    );
    w.sim().set_pod_behaviour(id, PodBehaviour::Normal);
    // The statuses only move forward and the last one is RUNNING.
    let order = ["PENDING", "STARTING", "RUNNING"];
    let mut seen = vec![0];
    loop {
        let message = next(&mut socket).await;
        if message == json!({"id": "1", "type": "complete"}) {
            break;
        }
        assert_eq!(message["type"], "next", "{message}");
        let item = &message["payload"]["data"]["codeServerEvents"];
        let status = item["status"].as_str().unwrap().to_owned();
        let rank = order
            .iter()
            .position(|s| *s == status)
            .expect("a known status");
        assert!(
            seen.last().is_none_or(|last| *last <= rank),
            "{seen:?} then {status}"
        );
        seen.push(rank);
        if item["kind"] == "PHASE" && status == "RUNNING" {
            assert_eq!(
                next(&mut socket).await,
                json!({"id": "1", "type": "complete"})
            );
            return;
        }
    }
    panic!("completed before RUNNING: {seen:?}");
}

#[tokio::test]
async fn a_subscription_sent_as_a_post_is_refused() {
    let w = world(http::ApiSettings::default()).await;
    let body =
        json!({"query": "subscription { codeServerEvents(id: \"code-server-alice\") { kind } }"});
    let (_, answer) = w.post(Some(&w.token("alice")), &body).await;
    assert!(answer["data"].is_null(), "{answer}");
    assert!(answer["errors"][0]["message"].is_string(), "{answer}");
}

#[test]
fn the_subscription_is_documented_as_served() {
    let sdl = async_graphql::Schema::build(
        codeserver_service::graphql::Query,
        codeserver_service::graphql::Mutation,
        codeserver_service::graphql::Subscription,
    )
    .finish()
    .sdl();
    assert!(
        sdl.contains("codeServerEvents(id: String!): ProgressEvent!"),
        "{sdl}"
    );
    let api = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    assert!(api.contains("codeServerEvents(id: String!): ProgressEvent!"));
    for member in [
        "kind: ProgressKind!",
        "status: InstanceStatus!",
        "message: String",
        "at: String!",
        "event: InstanceEvent",
    ] {
        assert!(sdl.contains(member), "{member}");
        assert!(api.contains(member), "{member}");
    }
    for kind in ["PHASE", "CLONE", "EVENT"] {
        assert!(sdl.contains(kind), "{kind}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_without_connection_init_is_closed_after_the_header_read_timeout() {
    let w = world(http::ApiSettings {
        server: http::ServerLimits {
            header_read_timeout: Duration::from_secs(1),
            ..http::ServerLimits::default()
        },
        ..http::ApiSettings::default()
    })
    .await;
    let mut socket = w.socket().await;
    assert_eq!(closed_with(&mut socket).await, CloseCode::from(4408));
    // A second connection_init is refused too.
    let mut socket = w.connected(json!({"token": w.token("alice")})).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {}}),
    )
    .await;
    assert_eq!(closed_with(&mut socket).await, CloseCode::from(4429));
}

/// Fragments `F0` .. `F40`, each spreading the next twice: 2^40 fields once expanded.
fn fragment_bomb() -> String {
    let mut query = String::from("subscription { codeServerEvents(id: \"x\") { ...F0 } }\n");
    for level in 0..40 {
        let next = level + 1;
        query.push_str(&format!(
            "fragment F{level} on ProgressEvent {{ kind ...F{next} ...F{next} }}\n"
        ));
    }
    query.push_str("fragment F40 on ProgressEvent { kind }\n");
    query
}

#[tokio::test]
async fn every_name_of_subscribe_is_cost_checked_and_only_subscriptions_are_served() {
    let w = world(http::ApiSettings::default()).await;
    let alice = w.token("alice");
    let id = w.provision_pending(&alice).await;
    let mut socket = w.connected(json!({"token": alice})).await;

    // `start`, the older name async-graphql also takes, is checked like `subscribe`.
    for kind in ["subscribe", "start"] {
        send(
            &mut socket,
            json!({"id": kind, "type": kind, "payload": {"query": fragment_bomb()}}),
        )
        .await;
        let refused = next(&mut socket).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["id"], kind);
        assert_eq!(
            refused["payload"][0]["extensions"]["code"],
            "QUERY_TOO_COMPLEX"
        );
    }

    // Queries and mutations go over HTTP, where the per-caller limits apply.
    for (n, query) in [
        "{ myCodeServers { id } }",
        "mutation { stopCodeServer(id: \"code-server-alice\") }",
    ]
    .into_iter()
    .enumerate()
    {
        let op = format!("op{n}");
        send(
            &mut socket,
            json!({"id": op, "type": "subscribe", "payload": {"query": query}}),
        )
        .await;
        let refused = next(&mut socket).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["id"], op);
        assert_eq!(
            refused["payload"][0]["extensions"]["code"],
            "BAD_USER_INPUT"
        );
    }
    assert!(
        w.sim().object("pods", NS, &id).is_some(),
        "the mutation was not run"
    );

    // A keep-alive ping does not end the connection.
    socket
        .send(Message::Ping(b"keep-alive".to_vec().into()))
        .await
        .unwrap();
    send(&mut socket, subscribe("after-ping", &id)).await;
    assert_eq!(item(&mut socket, "after-ping").await["status"], "PENDING");
}
