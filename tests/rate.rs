//! The per-user mutation rate limit through the GraphQL API: past MUTATIONS_PER_MINUTE a
//! caller's mutations are answered `RATE_LIMITED` without running; other callers and
//! queries are not affected.

#[path = "support/serving.rs"]
mod serving;

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    capacity::{Capacity, CapacitySettings},
    config::InstanceSettings,
    metrics::Metrics,
    reconcile::{Kinds, Reconciler, Timeouts},
    render::{ActiveTemplates, Templates},
    serve,
};
use codeserver_sim::{
    Sim,
    gitea::SimGitea,
    issuer::{Issuer, TokenSpec},
};
use serde_json::json;

#[tokio::test]
async fn mutations_beyond_the_rate_are_refused_without_running() {
    let issuer = Arc::new(Issuer::start().await.unwrap());
    let gitea = SimGitea::start(issuer.clone()).await.unwrap();
    let sim = Sim::start().await.unwrap();
    let reconciler = Arc::new(
        Reconciler::new(
            sim.client(),
            Kinds::new(Some("v1".to_owned())),
            Arc::new(ActiveTemplates::new(Templates::builtin().unwrap())),
            InstanceSettings {
                jwt_issuer: Some(issuer.issuer_url()),
                ..InstanceSettings::default()
            },
            Timeouts {
                ready: Duration::from_secs(5),
                ..Timeouts::default()
            },
        )
        .with_capacity(Capacity::new(
            &CapacitySettings {
                mutations_per_minute: 2,
                ..CapacitySettings::default()
            },
            None,
        )),
    );
    let routes = serve::assemble(serving::simulated_parts(
        reconciler,
        &issuer,
        &gitea.url(),
        Metrics::new().unwrap(),
    ))
    .unwrap();
    let (base, _stop) = serving::serve_routes(routes).await;
    let client = reqwest::Client::new();
    let post = |user: &str, query: &str| {
        let token = issuer.mint(&TokenSpec::new(user)).unwrap();
        let (client, base, body) = (&client, &base, json!({ "query": query }));
        async move {
            serving::post_graphql(client, base, Some(&token), &body)
                .await
                .1
        }
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
