//! The HTTP server: `POST /graphql` (JSON), `GET /graphql` (GraphiQL, or a websocket
//! upgrade for subscriptions over graphql-transport-ws), `/health` and `/ready` on PORT, and
//! Prometheus `/metrics` on METRICS_PORT.
//!
//! Each GraphQL request is authenticated here and runs in a span carrying its request id
//! (echoed in `X-Request-Id`); the caller's identity is attached as request data for the
//! resolvers. Bodies are limited in size and must be JSON. Before authentication and before
//! async-graphql validates anything, the parsed query's cost is checked
//! ([`crate::graphql::limits`]); each caller may have a few requests in flight; every request
//! has a server-side timeout and every connection a header-read (and idle) timeout. On
//! SIGTERM the server stops accepting connections and gives in-flight requests
//! SHUTDOWN_TIMEOUT to finish.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tracing::Instrument;
use warp::{Filter, Rejection, Reply, reply::Response};

use crate::{
    auth::Authenticator,
    graphql::{
        AppSchema, Code,
        limits::{self, QueryLimits},
    },
    metrics::Metrics,
    telemetry::{REQUEST_ID_HEADER, request_id, request_span},
};

/// The largest GraphQL request body accepted.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// The default header-read timeout: a client must send a request's headers within this,
/// and an idle keep-alive connection is closed after it.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default server-side timeout of one request (longer than CODESERVER_TIMEOUT's
/// default, which a provisioning may wait).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// The default number of GraphQL requests one caller may have in flight.
pub const DEFAULT_MAX_REQUESTS_PER_CALLER: usize = 4;

/// Timeouts of the HTTP server, for every route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a client may take to send a request's headers, and then the body of a
    /// GraphQL request; also how long an idle keep-alive connection is kept open.
    pub header_read_timeout: Duration,
    /// How long one request (body included) may take before it is answered `TIMEOUT`.
    pub request_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// What the API allows a request and a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// The cost limits of one GraphQL request.
    pub query: QueryLimits,
    /// GraphQL requests one caller may have in flight.
    pub max_requests_per_caller: usize,
    /// Subscriptions one caller may have open.
    pub max_subscriptions_per_caller: usize,
    /// How long a subscription, and a websocket connection, may stay open.
    pub subscription_timeout: Duration,
    /// Server timeouts.
    pub server: ServerLimits,
    /// Serve the GraphiQL page on `GET /graphql`.
    pub graphiql: bool,
    /// Answer introspection queries.
    pub introspection: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            query: QueryLimits::default(),
            max_requests_per_caller: DEFAULT_MAX_REQUESTS_PER_CALLER,
            max_subscriptions_per_caller: crate::graphql::DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER,
            subscription_timeout: crate::graphql::DEFAULT_SUBSCRIPTION_TIMEOUT,
            server: ServerLimits::default(),
            graphiql: true,
            introspection: true,
        }
    }
}

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
    /// unprotected, listed by `/ready`; the service still serves whatever does not
    /// need it.
    pub degraded: crate::serve::Degraded,
    /// Limits and switches of the API.
    pub settings: ApiSettings,
}

/// Requests in flight per caller; a slot is given back when its [`Slot`] is dropped.
#[derive(Default)]
struct InFlight {
    counts: Mutex<HashMap<String, usize>>,
}

/// One caller's request in flight.
struct Slot<'a> {
    in_flight: &'a InFlight,
    user: String,
}

impl InFlight {
    /// A slot for `user`, unless `user` already has `max` requests in flight.
    fn acquire(&self, user: &str, max: usize) -> Option<Slot<'_>> {
        // NB: the lock is never held across a panic point; should it be poisoned anyway,
        // the counts are still right, so go on with them.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(user.to_owned()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            in_flight: self,
            user: user.to_owned(),
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut counts = self
            .in_flight
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

/// The shared state of the API routes.
struct Shared {
    app: App,
    in_flight: InFlight,
}

/// The API routes: `/graphql`, `/health`, `/ready`.
pub fn routes(app: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let graphiql_enabled = app.settings.graphiql;
    let body_timeout = app.settings.server.header_read_timeout;
    let app = Arc::new(Shared {
        app,
        in_flight: InFlight::default(),
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
            match read_body(body, body_timeout).await {
                Ok(body) => graphql(app, headers, body).await,
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
                upgrade(ws, protocols.as_deref(), app)
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

/// The body of a GraphQL request, unless the client takes longer than `timeout` to send it
/// (its length is already limited by `Content-Length`).
///
/// NB: the request timeout is long enough for a provisioning; a client that trickles its
/// body would hold a connection that long before it is even authenticated.
async fn read_body<S, B>(body: S, timeout: Duration) -> Result<Bytes, Response>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures::StreamExt as _;
    let collect = async {
        let mut collected = bytes::BytesMut::new();
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk?;
            while chunk.has_remaining() {
                let part = chunk.chunk();
                let len = part.len();
                collected.extend_from_slice(part);
                chunk.advance(len);
            }
        }
        Ok::<_, warp::Error>(collected.freeze())
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(error)) => {
            tracing::info!(%error, "failed to read a GraphQL request body");
            Err(error_reply(
                StatusCode::BAD_REQUEST,
                "the body could not be read",
            ))
        }
        Err(_) => {
            tracing::info!(
                timeout_secs = timeout.as_secs(),
                "a GraphQL request body did not arrive in time"
            );
            Err(code_reply(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
                Code::Timeout,
            ))
        }
    }
}

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

async fn graphql(app: Arc<Shared>, headers: HeaderMap, body: Bytes) -> Response {
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

async fn execute(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let app = &shared.app;
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
    let mut request: async_graphql::Request = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => {
            tracing::info!(%error, "unreadable GraphQL request");
            return error_reply(StatusCode::BAD_REQUEST, "the body is not a GraphQL request");
        }
    };
    // NB: the cost check runs on the parsed document before authentication and before
    // async-graphql validates it: validation itself is what a fragment bomb exploits. A
    // document that does not parse goes on, and execution answers the parse error.
    if let Ok(document) = request.parsed_query() {
        if let Err(refusal) = limits::check(document, &app.settings.query) {
            tracing::info!(?refusal, "GraphQL request refused by its cost");
            return api_error_reply(StatusCode::OK, crate::graphql::ApiError::from(refusal));
        }
        if !app.settings.introspection && limits::asks_for_introspection(document) {
            return api_error_reply(
                StatusCode::OK,
                crate::graphql::ApiError::IntrospectionDisabled,
            );
        }
    }
    if !app.settings.introspection {
        request = request.disable_introspection();
    }
    let (request, user) = match app.auth.authenticate(headers).await {
        Ok(identity) => {
            let user = identity.user_id.clone();
            (request.data(identity), Some(user))
        }
        Err(error) => {
            if error.is_server_fault() {
                tracing::error!(error = %crate::graphql::error_chain(&error), "authentication failed");
            } else if !matches!(error, crate::auth::AuthError::MissingCredentials) {
                // NB: the chain may quote the token's header or claims, which the caller
                // chose; cut it so a 12 KB `kid` is not logged on every request.
                let error = crate::auth::truncate_for_log(&crate::graphql::error_chain(&error));
                tracing::info!(%error, "caller not authenticated");
            }
            (request, None)
        }
    };
    let _slot = match &user {
        Some(user) => {
            match shared
                .in_flight
                .acquire(user, app.settings.max_requests_per_caller)
            {
                Some(slot) => Some(slot),
                None => {
                    tracing::info!(%user, "caller has too many requests in flight");
                    return api_error_reply(
                        StatusCode::TOO_MANY_REQUESTS,
                        crate::graphql::ApiError::TooManyRequests,
                    );
                }
            }
        }
        None => None,
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

/// The websocket subprotocol of subscriptions.
const GRAPHQL_TRANSPORT_WS: &str = "graphql-transport-ws";

/// Upgrades a `GET /graphql` websocket request that asks for graphql-transport-ws.
fn upgrade(ws: warp::ws::Ws, protocols: Option<&str>, app: Arc<Shared>) -> Response {
    let asked = protocols
        .unwrap_or_default()
        .split(',')
        .any(|p| p.trim() == GRAPHQL_TRANSPORT_WS);
    if !asked {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "expected the graphql-transport-ws websocket subprotocol",
        );
    }
    let size = usize::try_from(MAX_BODY_BYTES).unwrap_or(usize::MAX);
    let reply = ws
        .max_message_size(size)
        .max_frame_size(size)
        .on_upgrade(move |socket| subscription_socket(app, socket));
    warp::reply::with_header(reply, "sec-websocket-protocol", GRAPHQL_TRANSPORT_WS).into_response()
}

/// graphql-transport-ws close codes.
mod close {
    /// A message the protocol does not allow.
    pub const BAD_REQUEST: u16 = 4400;
    /// A subscribe before `connection_ack`.
    pub const UNAUTHORIZED: u16 = 4401;
    /// `connection_init` without valid credentials.
    pub const FORBIDDEN: u16 = 4403;
    /// No `connection_init` in time.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// The connection stayed open as long as it may.
    pub const NORMAL: u16 = 1000;
}

/// Serves one graphql-transport-ws connection with async-graphql's protocol support.
///
/// The caller is identified by the `connection_init` payload (`{"Authorization": "Bearer
/// <token>"}` or `{"token": "<token>"}`), verified as an HTTP request's header is; without
/// valid credentials the socket closes with 4403. Each `subscribe` is cost-checked before
/// async-graphql sees it; `connection_init` must come within the header-read timeout and
/// the connection lasts at most SUBSCRIPTION_TIMEOUT.
async fn subscription_socket(shared: Arc<Shared>, socket: warp::ws::WebSocket) {
    use futures::{SinkExt as _, StreamExt as _};
    use warp::ws::Message;

    let app = &shared.app;
    let (mut sink, incoming) = socket.split();
    let (refusals, refused) = tokio::sync::mpsc::channel::<String>(16);
    let limits = app.settings.query;
    let introspection = app.settings.introspection;
    let input = incoming
        .take_while(|message| std::future::ready(message.as_ref().is_ok_and(|m| !m.is_close())))
        .filter_map(move |message| {
            let refusals = refusals.clone();
            async move {
                let message = message.ok()?;
                // NB: websocket keep-alive frames; the socket answers pings by itself.
                if message.is_ping() || message.is_pong() {
                    return None;
                }
                if !message.is_text() {
                    // NB: binary frames are not part of the protocol; async-graphql answers
                    // an unreadable message by closing the socket.
                    return Some(message.into_bytes().to_vec());
                }
                let text = message.to_str().unwrap_or_default();
                if let Some(refusal) = refuse_subscribe(text, &limits, introspection) {
                    // NB: a full channel means the client sends faster than it reads;
                    // dropping the refusal then is fine, the subscribe is dropped anyway.
                    let _ = refusals.try_send(refusal);
                    return None;
                }
                Some(text.as_bytes().to_vec())
            }
        });
    let auth = app.auth.clone();
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let init_failed = failed.clone();
    let protocol = async_graphql::http::WebSocket::new(
        app.schema.clone(),
        Box::pin(input),
        async_graphql::http::WebSocketProtocols::GraphQLWS,
    )
    .on_connection_init(move |payload| async move {
        match connection_identity(&auth, &payload).await {
            Ok(identity) => {
                let mut data = async_graphql::Data::default();
                data.insert(identity);
                Ok(data)
            }
            Err(error) => {
                init_failed.store(true, std::sync::atomic::Ordering::SeqCst);
                Err(async_graphql::Error::new(error))
            }
        }
    });
    enum Out {
        Protocol(async_graphql::http::WsMessage),
        Refused(String),
        /// async-graphql is done (the client closed the socket or broke the protocol).
        End,
    }
    // NB: the refusals' sender lives in `input`, inside `protocol`, so the merged stream
    // would never end by itself; `End` says when `protocol` did.
    let mut out = Box::pin(futures::stream::select(
        protocol
            .map(Out::Protocol)
            .chain(futures::stream::once(std::future::ready(Out::End))),
        tokio_stream::wrappers::ReceiverStream::new(refused).map(Out::Refused),
    ));
    let init_deadline = tokio::time::sleep(app.settings.server.header_read_timeout);
    let lifetime = tokio::time::sleep(app.settings.subscription_timeout);
    let (mut init_deadline, mut lifetime) =
        (std::pin::pin!(init_deadline), std::pin::pin!(lifetime));
    let mut acknowledged = false;
    loop {
        let message = tokio::select! {
            next = out.next() => match next {
                None | Some(Out::End) => break,
                Some(Out::Refused(text)) => Message::text(text),
                Some(Out::Protocol(async_graphql::http::WsMessage::Text(text))) => {
                    acknowledged = acknowledged || is_ack(&text);
                    Message::text(text)
                }
                Some(Out::Protocol(async_graphql::http::WsMessage::Close(code, reason))) => {
                    let (code, reason) = close_code(code, reason, failed.load(std::sync::atomic::Ordering::SeqCst));
                    let _ = sink.send(Message::close_with(code, reason)).await;
                    break;
                }
            },
            () = &mut init_deadline, if !acknowledged => {
                let _ = sink
                    .send(Message::close_with(close::INIT_TIMEOUT, "Connection initialisation timeout"))
                    .await;
                break;
            }
            () = &mut lifetime => {
                let _ = sink
                    .send(Message::close_with(close::NORMAL, "subscription timeout reached"))
                    .await;
                break;
            }
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
    // NB: the subscriptions (and their places in the per-caller limit) go before the
    // client sees the socket close.
    drop(out);
    let _ = sink.close().await;
}

/// async-graphql's close for graphql-transport-ws, with the protocol's codes: 4403 for a
/// refused `connection_init`, 4401 for a subscribe before it, 4400 for a bad message.
fn close_code(code: u16, reason: String, init_failed: bool) -> (u16, String) {
    match code {
        1002 if init_failed => (close::FORBIDDEN, "Forbidden".to_owned()),
        1011 => (close::UNAUTHORIZED, "Unauthorized".to_owned()),
        1002 => (close::BAD_REQUEST, "Invalid message".to_owned()),
        _ => (code, reason),
    }
}

/// Whether `text` is the server's `connection_ack`.
fn is_ack(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("connection_ack"))
}

/// The caller named by a `connection_init` payload, verified as an HTTP request's
/// `Authorization` header would be.
async fn connection_identity(
    auth: &Authenticator,
    payload: &serde_json::Value,
) -> Result<crate::auth::Identity, &'static str> {
    let field = |name: &str| {
        payload
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .and_then(|(_, v)| v.as_str())
    };
    let bearer = match (field("authorization"), field("token")) {
        (Some(header), _) => header.to_owned(),
        (None, Some(token)) => format!("Bearer {token}"),
        (None, None) => return Err("Forbidden"),
    };
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&bearer).map_err(|_| "Forbidden")?;
    headers.insert(header::AUTHORIZATION, value);
    match auth.authenticate(&headers).await {
        Ok(identity) => Ok(identity),
        Err(error) => {
            if error.is_server_fault() {
                tracing::error!(error = %crate::graphql::error_chain(&error), "authentication failed");
            } else {
                let error = crate::auth::truncate_for_log(&crate::graphql::error_chain(&error));
                tracing::info!(%error, "websocket caller not authenticated");
            }
            Err("Forbidden")
        }
    }
}

/// An `error` message for a `subscribe` (or its older name `start`, which async-graphql
/// also takes) whose query is over the cost limits, asks for introspection when it is off,
/// or holds anything but subscriptions (queries and mutations go over HTTP, where the
/// per-caller limits apply); `None` for any other message, which goes on to async-graphql.
fn refuse_subscribe(text: &str, limits: &QueryLimits, introspection: bool) -> Option<String> {
    let message: serde_json::Value = serde_json::from_str(text).ok()?;
    let kind = message.get("type").and_then(serde_json::Value::as_str)?;
    if !matches!(kind, "subscribe" | "start") {
        return None;
    }
    let id = message
        .get("id")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    // NB: without a query (or with one that does not parse) async-graphql answers the
    // error itself, without executing anything.
    let query = message.pointer("/payload/query")?.as_str()?;
    let document = async_graphql::parser::parse_query(query).ok()?;
    let only_subscriptions = document
        .operations
        .iter()
        .all(|(_, op)| op.node.ty == async_graphql::parser::types::OperationType::Subscription);
    let error = match limits::check(&document, limits) {
        Err(refusal) => crate::graphql::ApiError::from(refusal),
        Ok(_) if !introspection && limits::asks_for_introspection(&document) => {
            crate::graphql::ApiError::IntrospectionDisabled
        }
        Ok(_) if !only_subscriptions => crate::graphql::ApiError::BadInput(
            "invalid argument query: only subscriptions are served over the websocket; send \
             queries and mutations with POST /graphql"
                .to_owned(),
        ),
        Ok(_) => return None,
    };
    tracing::info!(message = error.message(), "websocket operation refused");
    let answer = serde_json::json!({
        "id": id,
        "type": "error",
        "payload": [{"message": error.message(), "extensions": {"code": error.code().as_str()}}],
    });
    Some(answer.to_string())
}

fn status_reply(status: StatusCode, text: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "status": text })),
        status,
    )
    .into_response()
}

fn api_error_reply(status: StatusCode, error: crate::graphql::ApiError) -> Response {
    code_reply(status, error.message(), error.code())
}

fn code_reply(status: StatusCode, message: &str, code: Code) -> Response {
    let body = serde_json::json!({
        "errors": [{"message": message, "extensions": {"code": code.as_str()}}]
    });
    let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
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
