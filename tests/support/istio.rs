//! The Istio kinds of `k8s/`, checked with the service's own tables
//! ([`codeserver_service::render::istio`]); here an Istio kind without a table is an
//! error, since every manifest must be checked.

pub use codeserver_service::render::istio::{CrdCheck, problems};
use serde_json::Value;

/// The check for an Istio group's document, `None` for other groups; an Istio kind or
/// version without a check is an error.
pub fn check_for(value: &Value) -> Option<Result<&'static CrdCheck, String>> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    if !api_version.contains(".istio.io/") {
        return None;
    }
    Some(
        codeserver_service::render::istio::check_for(api_version, kind).ok_or_else(|| {
            format!("no check for Istio {api_version} {kind}: add one to src/render/istio.rs")
        }),
    )
}
