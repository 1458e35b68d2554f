//! The per-user mutation rate limit through the GraphQL API: past MUTATIONS_PER_MINUTE a
//! caller's mutations are answered `RATE_LIMITED` without running; other callers and
//! queries are not affected.

#[path = "support/world.rs"]
mod world;

use codeserver_service::capacity::{Capacity, CapacitySettings};
use serde_json::json;
use world::World;

#[tokio::test]
async fn mutations_beyond_the_rate_are_refused_without_running() {
    let w = World::builder()
        .reconciler(|r| {
            r.capacity(Capacity::new(
                &CapacitySettings {
                    mutations_per_minute: 2,
                    ..CapacitySettings::default()
                },
                None,
            ))
        })
        .start()
        .await;
    let sim = w.sim();
    let post = |user: &str, query: &str| {
        let (w, token, body) = (&w, w.token(user), json!({ "query": query }));
        async move { w.post(Some(&token), &body).await.1 }
    };
    let stop = r#"mutation { stopCodeServer(id: "code-server-alice") }"#;
    for _ in 0..2 {
        let body = post("alice", stop).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{body}"
        );
    }
    sim.reset_requests();
    let body = post("alice", stop).await;
    assert_eq!(body["errors"][0]["message"], "rate limited", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        sim.requests().is_empty(),
        "the refused mutation ran: {:?}",
        sim.requests()
    );
    // Two mutations in one request take two calls: bob has two, not three.
    let body = post(
        "bob",
        r#"mutation { a: stopCodeServer(id: "code-server-bob") b: stopCodeServer(id: "code-server-bob") c: stopCodeServer(id: "code-server-bob") }"#,
    )
    .await;
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["extensions"]["code"].as_str())
        .collect();
    assert_eq!(codes, ["NOT_FOUND", "NOT_FOUND", "RATE_LIMITED"], "{body}");
    // Queries are not charged.
    let body = post("alice", "{ myCodeServers { id } }").await;
    assert!(body.get("errors").is_none(), "{body}");
}
