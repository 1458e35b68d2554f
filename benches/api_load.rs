//! Load benchmark of the GraphQL API: 1,000 instances in the simulated cluster, 50
//! concurrent clients, throughput and p50/p99 latency of `myCodeServers` and `health`.
//! Fails (exit code 1) on any error answer.
//!
//! `cargo bench --bench api_load` (INSTANCES, CLIENTS and REQUESTS override the sizes).

use std::time::{Duration, Instant};

#[path = "../tests/support/world.rs"]
mod world;

use codeserver_service::{
    reconcile::Timeouts,
    values::{Owner, Repo},
};
use codeserver_sim::issuer::TokenSpec;
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use world::World;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Report {
    name: &'static str,
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.latencies.len() as f64) * p).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    fn print(&self, clients: usize) {
        println!(
            "{:<14} {:>6} requests  {:>3} clients  {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            self.name,
            self.latencies.len() + self.errors,
            clients,
            (self.latencies.len() + self.errors) as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.50).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.errors,
        );
    }
}

/// Sends `requests` POSTs from `clients` concurrent clients; request `i` uses `tokens[i % n]`.
async fn load(
    name: &'static str,
    url: &str,
    query: &str,
    tokens: &[String],
    clients: usize,
    requests: usize,
    expect: impl Fn(&Value) -> bool + Sync,
) -> Report {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("HTTP client");
    let body = json!({ "query": query }).to_string();
    let started = Instant::now();
    let outcomes: Vec<Result<Duration, String>> = stream::iter(0..requests)
        .map(|i| {
            let request = http
                .post(url)
                .bearer_auth(&tokens[i % tokens.len()])
                .header("content-type", "application/json")
                .body(body.clone());
            let expect = &expect;
            async move {
                let sent = Instant::now();
                let response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let answer: Value = response.json().await.map_err(|e| e.to_string())?;
                if status.is_success() && answer["errors"].is_null() && expect(&answer) {
                    Ok(sent.elapsed())
                } else {
                    Err(format!("{status} {answer}"))
                }
            }
        })
        .buffer_unordered(clients)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for outcome in outcomes {
        match outcome {
            Ok(latency) => latencies.push(latency),
            Err(error) => {
                if errors == 0 {
                    eprintln!("{name}: first error: {error:.300}");
                }
                errors += 1;
            }
        }
    }
    latencies.sort();
    Report {
        name,
        latencies,
        errors,
        elapsed,
    }
}

fn main() {
    let instances = env_or("INSTANCES", 1_000);
    let clients = env_or("CLIENTS", 50);
    let requests = env_or("REQUESTS", 5_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let failed = runtime.block_on(async move {
        let w = World::builder()
            .reconciler(|r| r.timeouts(Timeouts::default()))
            .start()
            .await;
        let reconciler = &w.reconciler;
        let seeding = Instant::now();
        let users: Vec<String> = (0..instances).map(|i| format!("user-{i:04}")).collect();
        let seeded: Vec<bool> = stream::iter(users.iter())
            .map(|user| {
                let reconciler = reconciler.clone();
                async move {
                    let repo = Repo::new(
                        "devteam",
                        "backend-api",
                        "http://gitea:3000/devteam/backend-api.git",
                    )
                    .expect("repo");
                    // NB: the same `sub` the issuer puts in this user's tokens: instances
                    // belong to the token's subject.
                    let owner = Owner {
                        sub: Some(TokenSpec::new(user).sub),
                        ..Owner::new(user.clone())
                    };
                    reconciler.provision(&owner, repo).await.is_ok()
                }
            })
            .buffer_unordered(50)
            .collect()
            .await;
        let seed_errors = seeded.iter().filter(|ok| !**ok).count();
        println!(
            "seeded {instances} instances in {:.1} s ({seed_errors} errors)",
            seeding.elapsed().as_secs_f64()
        );

        let url = format!("{}/graphql", w.base);
        let tokens: Vec<String> = users.iter().map(|u| w.token(u)).collect();
        let mine = load(
            "myCodeServers",
            &url,
            "{ myCodeServers { id status url } }",
            &tokens,
            clients,
            requests,
            |answer| {
                answer["data"]["myCodeServers"]
                    .as_array()
                    .is_some_and(|a| a.len() == 1)
            },
        )
        .await;
        let health = load(
            "health",
            &url,
            "{ health }",
            &tokens,
            clients,
            requests,
            |answer| answer["data"]["health"] == true,
        )
        .await;
        println!("{instances} instances in the simulated cluster; {clients} concurrent clients");
        mine.print(clients);
        health.print(clients);
        seed_errors + mine.errors + health.errors > 0
    });
    if failed {
        std::process::exit(1);
    }
}
