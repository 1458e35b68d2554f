//! Serves the service's routes on 127.0.0.1 for a test.

use std::time::Duration;

use codeserver_service::{http, serve::Routes};
use warp::Filter;

/// Serves `routes` (API and metrics on one port) on a free loopback port; returns the base
/// URL and a sender that stops the server when sent to or dropped.
pub async fn serve_routes(routes: Routes) -> (String, tokio::sync::oneshot::Sender<()>) {
    let server = routes.server;
    let filter = routes.api.or(routes.metrics).unify();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
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
    (base, stop)
}
