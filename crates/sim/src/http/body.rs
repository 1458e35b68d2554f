//! Request bodies (media types, JSON or YAML) and objects served in the version asked for.

use bytes::Bytes;
use serde_json::{Value, json};
use warp::http::HeaderMap;

use crate::resources::ResourceDef;
use crate::status::ApiError;

pub(crate) fn body_dry_run(body: &Bytes) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("dryRun").cloned())
        .and_then(|d| d.as_array().cloned())
        .is_some_and(|a| a.iter().any(|x| x == "All"))
}

/// The media types a create or update body may use; protobuf (what kubectl sends for
/// built-in kinds) and CBOR are not decoded here.
pub(crate) const BODY_TYPES: [&str; 2] = ["application/json", "application/yaml"];
/// The patch types of built-in kinds, in upstream's order.
pub(crate) const PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
/// The patch types of custom resources (no strategic merge).
pub(crate) const PATCH_TYPES_CUSTOM: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// The request's `Content-Type` without parameters, lower case; empty when absent.
pub(crate) fn media_type(h: &HeaderMap) -> String {
    h.get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A create or update body: JSON or YAML (no `Content-Type` counts as JSON, as upstream);
/// any other media type is 415.
pub(crate) fn parse_body(h: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = media_type(h);
    if !ct.is_empty() && !BODY_TYPES.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media_type(&BODY_TYPES));
    }
    parse_json(body)
}

pub(crate) fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).or_else(|_| {
        serde_yaml_ng::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{}': {e}",
                String::from_utf8_lossy(body)
            ))
        })
    })
}

/// Serve an object in the version the request asked for (VirtualService v1/v1beta1).
pub(crate) fn served_version(d: &ResourceDef, version: &str, mut v: Value) -> Value {
    if version != d.storage_version() && v.get("kind").and_then(Value::as_str) == Some(d.kind) {
        v["apiVersion"] = json!(d.api_version(version));
    }
    v
}

pub(crate) fn served_bytes(d: &ResourceDef, version: &str, b: &Bytes) -> Bytes {
    if version == d.storage_version() {
        return b.clone();
    }
    let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
    Bytes::from(serde_json::to_vec(&served_version(d, version, v)).unwrap_or_default())
}
