//! Serving a filter: hyper with header-read (and idle), request and write timeouts (a
//! stalled write fails after the header-read timeout), graceful shutdown on SIGTERM.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use http::StatusCode;
use tokio::net::TcpListener;
use warp::{Filter, Rejection, reply::Response};

use super::{reply::code_reply, settings::ServerLimits, write_timeout::WriteTimeout};
use crate::graphql::Code;

/// Errors of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A listener could not be bound.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The SIGTERM handler could not be installed.
    #[error("failed to install the SIGTERM handler")]
    Signal(#[source] std::io::Error),
}

/// Binds `addr` (such as `0.0.0.0:8082`).
pub async fn bind(addr: &str) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// Serves `filter` on `listener` until `shutdown` completes, then stops accepting and waits
/// up to `grace` for in-flight requests; with the default [`ServerLimits`].
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    serve_with(listener, filter, shutdown, grace, ServerLimits::default()).await;
}

/// Serves `filter` on `listener` with `limits` until `shutdown` completes, then stops
/// accepting and waits up to `grace` for in-flight requests.
///
/// NB: warp's own server sets no timer on hyper, so it has no header-read timeout; the
/// filter is served here with hyper directly. hyper's header-read timeout also runs while a
/// keep-alive connection waits for its next request, which makes it the idle timeout too.
pub async fn serve_with<F>(
    listener: TcpListener,
    filter: F,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
    limits: ServerLimits,
) where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // NB: HTTP/1 only, served with upgrades (the websocket of subscriptions); the
    // header-read timeout still applies to every request before an upgrade. hyper-util's
    // `auto` builder is used because its graceful shutdown supports the upgradeable
    // connection of this builder, not hyper's own.
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
            .http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // NB: out of file descriptors and the like; wait before trying again.
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = timed_service(filter.clone(), limits.request_timeout);
        let write_timeout = limits.header_read_timeout;
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // NB: a client that stops reading its answer fails the stalled write after
            // the header-read timeout, which closes the connection and frees the answer.
            let stream = WriteTimeout::new(stream, write_timeout);
            let connection = builder
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight requests did not finish before the shutdown timeout"
        );
    }
}

/// `filter` as a hyper service whose every request is answered within `timeout`.
fn timed_service<F>(
    filter: F,
    timeout: Duration,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = Response,
    Error = Infallible,
    Future = BoxFuture<'static, Result<Response, Infallible>>,
>
where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    let service = warp::service(filter);
    hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let mut service = service.clone();
        Box::pin(async move {
            use tower_service::Service as _;
            match tokio::time::timeout(timeout, service.call(request)).await {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::warn!(timeout_secs = timeout.as_secs(), "request timed out");
                    Ok(code_reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "request timed out",
                        Code::Timeout,
                    ))
                }
            }
        }) as BoxFuture<'static, Result<Response, Infallible>>
    })
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() -> Result<(), HttpError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(HttpError::Signal)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received, shutting down"),
    }
    Ok(())
}
