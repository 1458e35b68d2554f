//! Building responses: JSON bodies and Status errors, with the headers the real server sets.

use bytes::Bytes;
use serde_json::Value;
use warp::http::{Response, StatusCode};

use crate::status::ApiError;

/// A response of the warp filters.
pub(crate) type Reply_ = warp::reply::Response;

/// A JSON response.
pub(crate) fn json_response(code: u16, body: &Value) -> Reply_ {
    bytes_response(
        code,
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
        "application/json",
    )
}

pub(crate) fn bytes_response(code: u16, body: Bytes, content_type: &str) -> Reply_ {
    let mut r = Response::new(body.into());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r.headers_mut().insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// A Status error response.
pub(crate) fn error_response(e: &ApiError) -> Reply_ {
    let mut r = json_response(e.code, &e.to_json());
    if let Some(secs) = e.retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        r.headers_mut().insert("retry-after", v);
    }
    r
}
