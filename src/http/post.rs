//! `POST /graphql`: the body read within the header-read timeout, JSON only, cost-checked
//! before authentication, at most a few requests in flight per caller, executed in a span
//! carrying the request id. The answer is at most [`MAX_RESPONSE_BYTES`] of JSON and holds
//! the caller's slot until it is handed to the connection (or the connection gives up).

use std::{
    collections::HashMap,
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tracing::Instrument;
use warp::{Reply, reply::Response};

use super::{
    documents::Parsed,
    reply::{api_error_reply, code_reply, error_reply},
    routes::Shared,
    settings::{MAX_RESPONSE_BYTES, RESPONSE_CHUNK_BYTES},
};
use crate::{
    auth::{AuthError, truncate_for_log},
    errors::error_chain,
    graphql::{ApiError, Code},
    telemetry::{REQUEST_ID_HEADER, request_id, request_span},
};

/// Requests in flight per caller; a slot is given back when its [`Slot`] is dropped.
#[derive(Default)]
pub(super) struct InFlight {
    counts: Mutex<HashMap<String, usize>>,
}

/// One caller's request in flight: held by its answer until the answer is written.
pub(super) struct Slot {
    in_flight: Arc<InFlight>,
    user: String,
}

impl InFlight {
    /// A slot for `user`, unless `user` already has `max` requests in flight.
    fn acquire(self: &Arc<Self>, user: &str, max: usize) -> Option<Slot> {
        // NB: the lock is never held across a panic point; should it be poisoned anyway,
        // the counts are still right, so go on with them.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(user.to_owned()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            in_flight: self.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for Slot {
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

/// The body of a GraphQL request, unless the client takes longer than `timeout` to send it
/// (its length is already limited by `Content-Length`).
///
/// NB: the request timeout is long enough for a provisioning; a client that trickles its
/// body would hold a connection that long before it is even authenticated.
pub(super) async fn read_body<S, B>(body: S, timeout: Duration) -> Result<Bytes, Response>
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

pub(super) async fn graphql(app: Arc<Shared>, headers: HeaderMap, body: Bytes) -> Response {
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
    if let Some(parsed) = shared.documents.get(&request.query) {
        match &*parsed {
            Parsed::Refused(refusal) => {
                tracing::info!(?refusal, "GraphQL request refused before authentication");
                return api_error_reply(StatusCode::OK, refusal.clone());
            }
            Parsed::Allowed(document) => request.set_parsed_query(document.clone()),
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
            log_unauthenticated(&error, "caller not authenticated");
            (request, None)
        }
    };
    let slot = match &user {
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
                        ApiError::TooManyRequests,
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
    let body = match to_json(&answer, MAX_RESPONSE_BYTES) {
        Ok(body) => body,
        Err(ApiError::ResponseTooLarge) => {
            return api_error_reply(StatusCode::OK, ApiError::ResponseTooLarge);
        }
        Err(error) => return api_error_reply(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    drop(answer);
    answer_reply(body, slot)
}

/// `answer` as JSON of at most `max` bytes, or `ResponseTooLarge`: never more than `max`
/// bytes are written, whatever the answer holds.
fn to_json(answer: &impl serde::Serialize, max: usize) -> Result<Bytes, ApiError> {
    let mut capped = Capped {
        bytes: Vec::new(),
        max,
    };
    match serde_json::to_writer(&mut capped, answer) {
        Ok(()) => Ok(Bytes::from(capped.bytes)),
        Err(error) if error.is_io() => {
            tracing::info!(max_bytes = max, "GraphQL answer over the size limit");
            Err(ApiError::ResponseTooLarge)
        }
        Err(error) => {
            tracing::error!(%error, "a GraphQL answer does not serialise");
            Err(ApiError::Internal)
        }
    }
}

/// A JSON answer whose body holds `slot` until the connection has taken all of it.
fn answer_reply(body: Bytes, slot: Option<Slot>) -> Response {
    let length = body.len();
    let mut response = warp::reply::stream(Chunks { body, slot }).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A writer that refuses to grow past `max` bytes.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(data.len()) > self.max {
            return Err(std::io::Error::other("the answer is over the size limit"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An answer in [`RESPONSE_CHUNK_BYTES`] pieces: hyper takes the next piece only once it
/// has written most of the previous ones, so the slot goes back when the client has read
/// all but the last few pieces, or when the connection drops the body.
struct Chunks {
    body: Bytes,
    slot: Option<Slot>,
}

impl futures::Stream for Chunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.body.is_empty() {
            self.slot = None;
            return Poll::Ready(None);
        }
        let at = self.body.len().min(RESPONSE_CHUNK_BYTES);
        Poll::Ready(Some(Ok(self.body.split_to(at))))
    }
}

/// Logs why a caller was not authenticated: failures on the service's side loudly, the
/// caller's own quietly and cut short (the chain may quote the token's header or claims,
/// which the caller chose), a request without credentials not at all.
pub(super) fn log_unauthenticated(error: &AuthError, refused: &str) {
    if error.is_server_fault() {
        tracing::error!(error = %error_chain(error), "authentication failed");
    } else if !matches!(error, AuthError::MissingCredentials) {
        // NB: cut so that a 12 KB `kid` is not logged on every request.
        let error = truncate_for_log(&error_chain(error));
        tracing::info!(%error, "{refused}");
    }
}
