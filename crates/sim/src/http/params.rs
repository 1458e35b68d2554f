//! Query parameters and options of writes, deletes and selections.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use warp::http::HeaderMap;

use crate::ops::{DeleteParams, WriteParams};
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

use super::*;

pub(crate) fn write_params(
    r: &ResourceRoute,
    q: &HashMap<String, String>,
    h: &HeaderMap,
    dry_run: bool,
    warnings: &Arc<std::sync::Mutex<Vec<String>>>,
) -> WriteParams {
    WriteParams {
        warnings: warnings.clone(),
        dry_run,
        field_manager: Some(
            q.get("fieldManager")
                .cloned()
                .unwrap_or_else(|| user_agent_manager(h)),
        ),
        force: is_true(q, "force"),
        subresource: r.sub.clone(),
        version: r.version.clone(),
        strict: q.get("fieldValidation").is_some_and(|v| v == "Strict"),
    }
}

pub(crate) fn delete_params(
    q: &HashMap<String, String>,
    body: &Bytes,
    dry_run: bool,
) -> DeleteParams {
    let opts: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    DeleteParams {
        dry_run,
        grace: q
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse().ok())
            .or_else(|| opts.get("gracePeriodSeconds").and_then(Value::as_i64)),
        propagation: q
            .get("propagationPolicy")
            .cloned()
            .or_else(|| {
                opts.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .or_else(|| {
                opts.get("orphanDependents")
                    .and_then(Value::as_bool)
                    .map(|o| {
                        if o {
                            "Orphan".to_string()
                        } else {
                            "Background".to_string()
                        }
                    })
            }),
        uid: opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

pub(crate) fn selectors(
    d: &ResourceDef,
    q: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let ls = LabelSelector::parse(
        q.get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fs = FieldSelector::parse(
        q.get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
        d.plural,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((ls, fs))
}
