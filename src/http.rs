//! The HTTP server: `POST /graphql` (JSON), `GET /graphql` (GraphiQL), `/health` and
//! `/ready` on PORT, and Prometheus `/metrics` on METRICS_PORT.
//!
//! Each GraphQL request is authenticated here and runs in a span carrying its request id
//! (echoed in `X-Request-Id`); the caller's identity is attached as request data for the
//! resolvers. Bodies are limited in size and must be JSON; the schema limits query depth and
//! complexity. On SIGTERM the server stops accepting connections and gives in-flight
//! requests SHUTDOWN_TIMEOUT to finish.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::{net::TcpListener, sync::oneshot};
use tracing::Instrument;
use warp::{Filter, Rejection, Reply, reply::Response};

use crate::{
    auth::Authenticator,
    graphql::AppSchema,
    metrics::Metrics,
    telemetry::{REQUEST_ID_HEADER, request_id, request_span},
};

/// The largest GraphQL request body accepted.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Decides readiness: `Ok` when the Kubernetes API answers and the templates are loaded,
/// else why not (logged, never shown).
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

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

/// What the API routes need.
#[derive(Clone)]
pub struct App {
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// Authenticates each request.
    pub auth: Authenticator,
    /// Readiness of the service.
    pub ready: ReadyCheck,
    /// The active template set, reported by `/ready`.
    pub templates: crate::reload::TemplatesReport,
    /// What the cluster lacks (e.g. Istio) or what the active templates leave
    /// unprotected, reported by `/ready`; the service still serves whatever does not
    /// need it.
    pub degraded: crate::serve::Degraded,
}

/// The API routes: `/graphql`, `/health`, `/ready`.
pub fn routes(app: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let app = Arc::new(app);
    let with_app = warp::any().map(move || app.clone());
    // NB: path before method, so an unknown path answers 404 and not 405.
    let graphql = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_app.clone())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .then(graphql);
    let graphiql = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| {
            let page = async_graphql::http::GraphiQLSource::build()
                .endpoint("/graphql")
                .title("codeserver-service")
                .finish();
            warp::reply::html(page).into_response()
        });
    let health = warp::path("health")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| status_reply(StatusCode::OK, "ok"));
    let ready = warp::path("ready")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_app)
        .then(|app: Arc<App>| async move {
            let templates = (app.templates)();
            let (code, text) = match (app.ready)().await {
                Ok(()) => (StatusCode::OK, "ready"),
                Err(reason) => {
                    tracing::warn!(%reason, "not ready");
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            };
            let body = serde_json::json!({
                "status": text,
                "templates": templates,
                "degraded": (app.degraded)(),
            });
            warp::reply::with_status(warp::reply::json(&body), code).into_response()
        });
    graphql
        .or(graphiql)
        .unify()
        .or(health)
        .unify()
        .or(ready)
        .unify()
}

/// The metrics route: `GET /metrics`.
pub fn metrics_routes(
    metrics: Metrics,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            let mut response = Response::new(metrics.encode().into());
            if let Ok(value) = HeaderValue::from_str(&metrics.content_type()) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        })
}

async fn graphql(app: Arc<App>, headers: HeaderMap, body: Bytes) -> Response {
    let id = request_id(
        headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok()),
    );
    let span = request_span(&id);
    let mut response = execute(&app, &headers, &body).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

async fn execute(app: &App, headers: &HeaderMap, body: &[u8]) -> Response {
    let started = Instant::now();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return error_reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        );
    }
    let request: async_graphql::Request = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => {
            tracing::info!(%error, "unreadable GraphQL request");
            return error_reply(StatusCode::BAD_REQUEST, "the body is not a GraphQL request");
        }
    };
    let (request, user) = match app.auth.authenticate(headers).await {
        Ok(identity) => {
            let user = identity.user_id.clone();
            (request.data(identity), Some(user))
        }
        Err(error) => {
            if error.is_server_fault() {
                tracing::error!(error = %crate::graphql::error_chain(&error), "authentication failed");
            } else if !matches!(error, crate::auth::AuthError::MissingCredentials) {
                tracing::info!(%error, "caller not authenticated");
            }
            (request, None)
        }
    };
    let answer = app.schema.execute(request).await;
    let errors: Vec<&str> = answer.errors.iter().map(|e| e.message.as_str()).collect();
    tracing::info!(
        user = user.as_deref().unwrap_or("-"),
        elapsed_ms = started.elapsed().as_millis() as u64,
        ?errors,
        "graphql request"
    );
    let mut response = warp::reply::json(&answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn status_reply(status: StatusCode, text: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "status": text })),
        status,
    )
    .into_response()
}

fn error_reply(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]
    });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
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
/// up to `grace` for in-flight requests.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        warp::serve(filter)
            .incoming(listener)
            .graceful(async {
                let _sent_or_dropped = stopped.await;
            })
            .run(),
    );
    shutdown.await;
    let _receiver_gone = stop.send(());
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight requests did not finish before the shutdown timeout"
        );
    }
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
