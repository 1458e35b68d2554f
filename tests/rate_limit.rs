//! The client-side rate limit on tokio's paused clock, through the real kube client: a
//! burst goes at once, the rest at the configured rate, and nothing fails.

use std::{
    convert::Infallible,
    future::Ready,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use codeserver_service::rate_limit::{Rate, RateLimit};
use http::{Request, Response};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, client::Body};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// An API server that answers at once with an empty ConfigMap, recording when each
/// request arrived.
#[derive(Clone)]
struct Recorder {
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Service<Request<Body>> for Recorder {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        self.arrivals.lock().unwrap().push(Instant::now());
        let body =
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"ns"}}"#;
        std::future::ready(Ok(Response::new(Body::from(body.to_vec()))))
    }
}

fn client(rate: Rate) -> (Client, Arc<Mutex<Vec<Instant>>>) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let server = Recorder {
        arrivals: arrivals.clone(),
    };
    (
        Client::new(RateLimit::new(rate).layer(server), "ns"),
        arrivals,
    )
}

#[tokio::test(start_paused = true)]
async fn a_burst_goes_at_once_and_the_rest_at_the_rate() {
    let (qps, burst) = (10.0, 5);
    let (client, arrivals) = client(Rate::new(qps, burst).unwrap());
    let start = Instant::now();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    let calls = (0..15).map(|_| {
        let api = api.clone();
        tokio::spawn(async move { api.get("c").await })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap()
            .expect("a limited request waits, it never fails");
    }
    let arrivals: Vec<Duration> = arrivals
        .lock()
        .unwrap()
        .iter()
        .map(|t| *t - start)
        .collect();
    assert_eq!(arrivals.len(), 15);
    for (i, at) in arrivals.iter().enumerate() {
        // The first `burst` at once; request i (0-based) when its token is due.
        let due = Duration::from_secs_f64((i.saturating_sub(burst as usize - 1)) as f64 / qps);
        let due = if i < burst as usize {
            Duration::ZERO
        } else {
            due
        };
        assert!(
            *at >= due && *at <= due + Duration::from_millis(2),
            "request {i} went at {at:?}, due at {due:?}"
        );
    }
    // Ten requests past the burst at ten per second: the last goes after a second.
    assert!(arrivals[14] >= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn an_idle_client_saves_up_a_burst_again() {
    let (client, arrivals) = client(Rate::new(2.0, 3).unwrap());
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    for _ in 0..4 {
        api.get("c").await.unwrap();
    }
    // The fourth waited half a second for its token.
    let first = arrivals.lock().unwrap()[0];
    assert_eq!(
        arrivals.lock().unwrap()[3] - first,
        Duration::from_millis(500)
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rested = Instant::now();
    for _ in 0..3 {
        api.get("c").await.unwrap();
    }
    let arrivals = arrivals.lock().unwrap();
    assert!(
        arrivals[4..].iter().all(|t| *t == rested),
        "a full bucket again"
    );
}
