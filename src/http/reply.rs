//! The JSON answers the HTTP layer gives by itself (refusals before GraphQL runs).

use http::{HeaderValue, StatusCode, header};
use warp::{Reply, reply::Response};

use crate::graphql::{ApiError, Code};

/// `{"status": text}` with `status` (`/health`, a disabled GraphiQL).
pub(super) fn status_reply(status: StatusCode, text: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "status": text })),
        status,
    )
    .into_response()
}

/// A GraphQL error answer for `error`, with its message, code and reason (if any).
pub(super) fn api_error_reply(status: StatusCode, error: ApiError) -> Response {
    reply_with(status, error.message(), error.code(), error.reason())
}

/// A GraphQL error answer with `message` and `code`, never cached.
pub(super) fn code_reply(status: StatusCode, message: &str, code: Code) -> Response {
    reply_with(status, message, code, None)
}

fn reply_with(status: StatusCode, message: &str, code: Code, reason: Option<&str>) -> Response {
    let mut extensions = serde_json::json!({"code": code.as_str()});
    if let Some(reason) = reason {
        extensions["reason"] = reason.into();
    }
    let body = serde_json::json!({
        "errors": [{"message": message, "extensions": extensions}]
    });
    let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A GraphQL error answer for a request that could not be read (`BAD_USER_INPUT`).
pub(super) fn error_reply(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]
    });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
