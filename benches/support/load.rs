//! Load on the GraphQL API for the benches: `requests` POSTs from `clients` concurrent
//! clients, their latencies and error answers ([`load`], [`Report`]); sizes from the
//! environment ([`env_or`]).
//!
//! Include it with `#[path = "support/load.rs"] mod load;`.

// NB: each bench compiles this module and uses only part of it.
#![allow(dead_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// The number in the environment variable `name`, else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one load run measured.
pub struct Report {
    pub name: &'static str,
    /// The latencies of the good answers, sorted.
    pub latencies: Vec<Duration>,
    /// Requests that failed or answered with an error (or not as expected).
    pub errors: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// The latency at `p` (0 to 1) of the good answers; zero when there were none.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.latencies.len() as f64) * p).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// Every request sent.
    pub fn requests(&self) -> usize {
        self.latencies.len() + self.errors
    }

    /// Requests per second over the whole run.
    pub fn per_second(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64()
    }

    /// One line: requests, clients, requests/s, p50, p99, errors.
    pub fn print(&self, clients: usize) {
        println!(
            "{:<14} {:>6} requests  {:>3} clients  {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            self.name,
            self.requests(),
            clients,
            self.per_second(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            self.errors,
        );
    }
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One load run: `requests` POSTs of `query` to `url` from `clients` concurrent clients;
/// request `i` uses `tokens[i % n]`.
pub struct Run<'a> {
    pub name: &'static str,
    pub url: &'a str,
    pub query: &'a str,
    pub tokens: &'a Arc<[String]>,
    pub clients: usize,
    pub requests: usize,
}

/// Sends `run`'s requests, each client in its own task (so that the clients' work
/// spreads over the runtime's threads as the server's does). An answer is good when it
/// has HTTP 2xx, no `errors` and `expect` holds for it; the first bad one is printed on
/// stderr.
pub async fn load(
    http: &reqwest::Client,
    run: Run<'_>,
    expect: impl Fn(&Value) -> bool + Send + Sync + 'static,
) -> Report {
    let Run {
        name,
        url,
        query,
        tokens,
        clients,
        requests,
    } = run;
    let body = bytes::Bytes::from(json!({ "query": query }).to_string());
    // NB: parsed once, not per request: the clients' work is measured with the service's.
    let url = match reqwest::Url::parse(url) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("{name}: the URL {url:?}: {error}");
            return Report {
                name,
                latencies: Vec::new(),
                errors: requests,
                elapsed: Duration::ZERO,
            };
        }
    };
    let expect = Arc::new(expect);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (http, url, body, tokens) = (http.clone(), url.clone(), body.clone(), tokens.clone());
        let (expect, next) = (expect.clone(), next.clone());
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return outcomes;
                }
                let sent = Instant::now();
                let outcome = async {
                    let response = http
                        .post(url.clone())
                        .bearer_auth(&tokens[i % tokens.len()])
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = response.status();
                    let answer: Value = response.json().await.map_err(|e| e.to_string())?;
                    if status.is_success() && answer["errors"].is_null() && expect(&answer) {
                        Ok(sent.elapsed())
                    } else {
                        Err(format!("{status} {answer}"))
                    }
                }
                .await;
                outcomes.push(outcome);
            }
        });
    }
    let mut outcomes: Vec<Result<Duration, String>> = Vec::with_capacity(requests);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(some) => outcomes.extend(some),
            Err(error) => outcomes.push(Err(format!("a client task failed: {error}"))),
        }
    }
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
