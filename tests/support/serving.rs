//! Serves the service's routes on 127.0.0.1 for a test, and posts GraphQL to a server.

// NB: each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use std::sync::Arc;

use codeserver_service::{
    auth::AuthSettings,
    gitea::GiteaSettings,
    http,
    metrics::Metrics,
    reconcile::Reconciler,
    serve::{Parts, Routes},
};
use codeserver_sim::{
    gitea::SERVICE_TOKEN,
    issuer::{DEFAULT_AUDIENCE, Issuer},
};
use warp::Filter;

/// The server's parts for `reconciler` behind the simulated identity provider and Gitea:
/// tokens are verified against `issuer`'s key set, repositories looked up at `gitea_url`
/// (asked with Sudo under the simulated Gitea's service token).
pub fn simulated_parts(
    reconciler: Arc<Reconciler>,
    issuer: &Issuer,
    gitea_url: &str,
    metrics: Metrics,
) -> Parts {
    Parts {
        reconciler,
        auth: AuthSettings::issued_by(&issuer.jwks_url(), &issuer.issuer_url(), DEFAULT_AUDIENCE),
        gitea: GiteaSettings::sudo(gitea_url, SERVICE_TOKEN),
        metrics,
        refusals: None,
        api: http::ApiSettings::default(),
        gate: codeserver_service::gate::GateSettings::default(),
    }
}

/// Serves `routes` (API and metrics on one port) on a free loopback port; returns the base
/// URL and a sender that stops the server when sent to or dropped.
pub async fn serve_routes(routes: Routes) -> (String, tokio::sync::oneshot::Sender<()>) {
    let server = routes.server;
    let filter = routes.api.or(routes.metrics).unify();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (base, serve_on(listener, filter, server))
}

/// Serves `filter` on `listener` with `server`'s limits; the sender stops it when sent to
/// or dropped.
pub fn serve_on<F>(
    listener: tokio::net::TcpListener,
    filter: F,
    server: http::ServerLimits,
) -> tokio::sync::oneshot::Sender<()>
where
    F: warp::Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(http::serve_with(
        listener,
        filter,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
        server,
    ));
    stop
}

/// Posts the GraphQL request `body` to `base`'s `/graphql`, with `token` as the bearer
/// when given; the HTTP status and the JSON answer (null when the body is not JSON).
pub async fn post_graphql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut request = client
        .post(format!("{base}/graphql"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}
