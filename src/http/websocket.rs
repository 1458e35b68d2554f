//! `GET /graphql` upgraded to a websocket: subscriptions over graphql-transport-ws, with the
//! caller identified by `connection_init` and every `subscribe` cost-checked first.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::{Reply, reply::Response};

use super::{
    post::log_unauthenticated, reply::error_reply, routes::Shared, settings::MAX_BODY_BYTES,
};
use crate::{
    auth::{Authenticator, Identity},
    graphql::{
        ApiError,
        limits::{self, QueryLimits},
    },
};

/// The websocket subprotocol of subscriptions.
const GRAPHQL_TRANSPORT_WS: &str = "graphql-transport-ws";

/// Upgrades a `GET /graphql` websocket request that asks for graphql-transport-ws.
pub(super) fn upgrade(ws: warp::ws::Ws, protocols: Option<&str>, app: Arc<Shared>) -> Response {
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
) -> Result<Identity, &'static str> {
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
            log_unauthenticated(&error, "websocket caller not authenticated");
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
        Err(refusal) => ApiError::from(refusal),
        Ok(_) if !introspection && limits::asks_for_introspection(&document) => {
            ApiError::IntrospectionDisabled
        }
        Ok(_) if !only_subscriptions => ApiError::BadInput(
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
