//! The reconciler: renders an instance's desired objects, compares them with what is
//! live, applies the difference with server-side apply and derives every answer from
//! live objects, read from the watch-backed caches (`crate::cache`). One async function
//! per lifecycle operation; the GraphQL layer calls these and builds no Kubernetes
//! objects itself.
//!
//! Along the data flow: `reconciler` (the shared state and its caches), `cached` (where
//! reads come from, and reading one's own writes), `desired` (values -> render -> plan
//! -> apply, and the dry runs), `provision` (provision and start), `remove` (stop
//! and delete), `sync` (the sync Job), `read` (get, list, status, logs, stats),
//! `guards` (a running instance's NetworkPolicies following the templates, for the
//! Lease holder after a reload) and `restart` (whether a live pod is rendered from older
//! inputs, without rendering).

mod admin;
pub mod apply;
mod cached;
mod credentials;
mod desired;
mod error;
mod events;
mod explain;
pub mod git_identity;
mod guards;
pub mod kinds;
mod lifecycle;
mod live;
pub mod plan;
mod prepull;
mod profiles;
mod progress;
mod provision;
mod read;
mod reconciler;
mod remove;
mod resize;
mod restart;
mod retention;
mod sshkey;
mod sync;

pub use self::{
    admin::InstanceFilter,
    cached::WRITE_VISIBLE,
    credentials::{ANNOTATION_DEPLOY_KEYS, LABEL_CREDENTIALS_OF},
    error::{Error, MAX_ATTEMPTS, reason, retry_delay, with_retry},
    events::{InstanceEvent, MAX_EVENTS},
    kinds::Kinds,
    lifecycle::Healed,
    live::stamp_record,
    plan::{Action, Plan, Step},
    prepull::{
        DEFAULT_PAUSE_IMAGE, PREPULL_NAME, Prepull, PrepullStatus, status_of as prepull_status_of,
    },
    profiles::{ProfileSummary, StartOptions},
    progress::{Progress, ProgressKind},
    provision::{Checked, Provisioned},
    read::{MAX_LOG_BYTES, Stats, WorkspaceAccess},
    reconciler::{Reconciler, Timeouts},
};

/// Result of reconciler operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
