//! The routes: `/graphql` (POST, GraphiQL, websocket upgrade), `/health` and `/ready` on
//! PORT; `/metrics` on METRICS_PORT.

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use warp::{Filter, Rejection, Reply, reply::Response};

use super::{
    documents::{Checks, Documents},
    post::{self, InFlight},
    reply::status_reply,
    settings::{ApiSettings, MAX_BODY_BYTES},
    websocket,
};
use crate::{
    auth::Authenticator,
    graphql::AppSchema,
    metrics::Metrics,
    ready::{Degraded, ReadyCheck},
    reload::TemplatesReport,
};

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
    pub templates: TemplatesReport,
    /// What the cluster lacks (e.g. Istio), listed by `/ready`; the service still serves
    /// whatever does not need it.
    pub degraded: Degraded,
    /// Limits and switches of the API.
    pub settings: ApiSettings,
}

/// The shared state of the API routes.
pub(super) struct Shared {
    pub(super) app: App,
    pub(super) in_flight: Arc<InFlight>,
    pub(super) documents: Documents,
}

/// The API routes: `/graphql`, `/health`, `/ready`.
pub fn routes(app: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let graphiql_enabled = app.settings.graphiql;
    let body_timeout = app.settings.server.header_read_timeout;
    let documents = Documents::new(Checks {
        limits: app.settings.query,
        introspection: app.settings.introspection,
    });
    let app = Arc::new(Shared {
        app,
        in_flight: Arc::default(),
        documents,
    });
    let with_app = warp::any().map(move || app.clone());
    // NB: path before method, so an unknown path answers 404 and not 405.
    let graphql = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_app.clone())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::stream())
        .then(move |app, headers, body| async move {
            match post::read_body(body, body_timeout).await {
                Ok(body) => post::graphql(app, headers, body).await,
                Err(refused) => refused,
            }
        });
    // NB: before GraphiQL's GET route; anything but a websocket upgrade falls through.
    let subscriptions = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::ws())
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(with_app.clone())
        .map(
            |ws: warp::ws::Ws, protocols: Option<String>, app: Arc<Shared>| {
                websocket::upgrade(ws, protocols.as_deref(), app)
            },
        );
    let graphiql = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            if graphiql_enabled {
                let mut page = warp::reply::html(GRAPHIQL_PAGE).into_response();
                page.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(GRAPHIQL_CSP),
                );
                page
            } else {
                status_reply(StatusCode::NOT_FOUND, "GraphiQL is disabled")
            }
        });
    let health = warp::path("health")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| status_reply(StatusCode::OK, "ok"));
    let ready = warp::path("ready")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_app)
        .then(|shared: Arc<Shared>| async move { ready(&shared.app).await });
    graphql
        .or(subscriptions)
        .unify()
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

/// The self-contained GraphiQL page: plain HTML and script, no external assets, so it works
/// offline and loads nothing from a CDN.
const GRAPHIQL_PAGE: &str = include_str!("graphiql.html");
/// The page's Content-Security-Policy: its own inline script and style, requests to itself.
const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'";

/// `/ready`: ready or not and the template revision; why not, the template problems and what
/// the cluster lacks go to the log only.
async fn ready(app: &App) -> Response {
    let templates = (app.templates)();
    let (code, text) = match (app.ready)().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        }
    };
    let degraded = (app.degraded)();
    if !degraded.is_empty() || templates.last_refusal.is_some() {
        tracing::warn!(
            degraded = ?degraded,
            refused_templates = ?templates.last_refusal.as_ref().map(|r| &r.problems),
            revision = %templates.revision,
            "readiness details"
        );
    }
    let body = serde_json::json!({
        "status": text,
        "templates": { "revision": templates.revision },
        // NB: fixed descriptions of what the deployment lacks; never template errors,
        // user data or anything a caller sent.
        "degraded": degraded,
    });
    warp::reply::with_status(warp::reply::json(&body), code).into_response()
}
