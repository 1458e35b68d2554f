//! The parameters of writes and deletes, and the patch types.

use std::sync::Arc;

/// Parameters common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteParams {
    /// dryRun=All.
    pub dry_run: bool,
    /// fieldManager (or the one derived from the User-Agent).
    pub field_manager: Option<String>,
    /// force=true (apply).
    pub force: bool,
    /// Subresource (`status`).
    pub subresource: Option<String>,
    /// The version the request used.
    pub version: String,
    /// fieldValidation=Strict: unknown fields are refused instead of dropped.
    pub strict: bool,
    /// Warnings for the response (`Warning: 299 - "..."` headers), e.g. dropped fields.
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// application/apply-patch+yaml
    Apply,
    /// application/merge-patch+json
    Merge,
    /// application/strategic-merge-patch+json
    Strategic,
    /// application/json-patch+json
    Json,
}

/// Delete options.
#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    /// dryRun=All.
    pub dry_run: bool,
    /// gracePeriodSeconds.
    pub grace: Option<i64>,
    /// propagationPolicy.
    pub propagation: Option<String>,
    /// preconditions.uid.
    pub uid: Option<String>,
    /// preconditions.resourceVersion.
    pub resource_version: Option<String>,
}
