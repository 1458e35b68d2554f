//! The instance's lifecycle on its record: why it stopped, how long its owner asked it to
//! be kept alive, since when it is meant to run, and the self-healing's retries.
//!
//! These PVC annotations are written by merge patches under their own field manager
//! ([`FIELD_MANAGER`]), never by the templates' apply, so applying the templates leaves
//! them alone (server-side apply removes only fields its own manager set). Each writer
//! sets every key it owns in one patch ([`on_start`], [`on_stop`], [`on_extend`],
//! [`on_heal`]), so the record never shows a half-written state.
//!
//! - `devplatform.io/stop-reason`: set when the pod is stopped (by its owner, an admin or
//!   the culler) or lost (eviction, node loss, an external delete); cleared by a start.
//! - `devplatform.io/runs-since`: set when a start creates the pod, cleared by a stop.
//!   An instance that has it, has no stop reason and has no working pod was lost: the
//!   Lease holder starts it again. Instances stopped before this record existed have
//!   neither and are never started by anyone but their owner.
//! - `devplatform.io/keep-alive-until`: no idle stop before it (`extendCodeServer`).
//! - `devplatform.io/heal-attempts`, `devplatform.io/heal-after`: the self-healing's
//!   bounded retries and when the next may happen.

use async_graphql::Enum;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde::Serialize;
use serde_json::{Value, json};

/// Why an instance stopped.
pub const ANNOTATION_STOP_REASON: &str = "devplatform.io/stop-reason";
/// Since when the instance is meant to run (RFC 3339).
pub const ANNOTATION_RUNS_SINCE: &str = "devplatform.io/runs-since";
/// No idle stop before this time (RFC 3339).
pub const ANNOTATION_KEEP_ALIVE_UNTIL: &str = "devplatform.io/keep-alive-until";
/// Restarts the self-healing made since the instance last ran for a while.
pub const ANNOTATION_HEAL_ATTEMPTS: &str = "devplatform.io/heal-attempts";
/// No self-healing restart before this time (RFC 3339).
pub const ANNOTATION_HEAL_AFTER: &str = "devplatform.io/heal-after";
/// The field manager of these annotations.
pub const FIELD_MANAGER: &str = "codeserver-service-lifecycle";

/// Why an instance is (or was last) stopped.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StopReason {
    /// Its owner stopped it.
    User,
    /// An admin stopped it.
    Admin,
    /// The idle culler stopped it (no activity for IDLE_TIMEOUT).
    Idle,
    /// Its pod was lost without anyone stopping it: evicted (node pressure, its disk
    /// limit), its node lost or drained, or deleted from outside the service. The
    /// service starts it again (bounded retries).
    Evicted,
}

impl StopReason {
    /// The reason as the record (and the API) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Admin => "ADMIN",
            Self::Idle => "IDLE",
            Self::Evicted => "EVICTED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::User, Self::Admin, Self::Idle, Self::Evicted]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

pub(super) use super::record::annotation;

/// The annotation `key` of `pvc` as a time (RFC 3339).
pub(super) fn timestamp(pvc: &PersistentVolumeClaim, key: &str) -> Option<Timestamp> {
    annotation(pvc, key)?.parse().ok()
}

/// The recorded stop reason.
pub fn stop_reason(pvc: &PersistentVolumeClaim) -> Option<StopReason> {
    annotation(pvc, ANNOTATION_STOP_REASON).and_then(StopReason::parse)
}

/// Since when the instance is meant to run, when it is.
pub fn runs_since(pvc: &PersistentVolumeClaim) -> Option<Timestamp> {
    timestamp(pvc, ANNOTATION_RUNS_SINCE)
}

/// Until when its owner asked it to be kept alive.
pub fn keep_alive_until(pvc: &PersistentVolumeClaim) -> Option<Timestamp> {
    timestamp(pvc, ANNOTATION_KEEP_ALIVE_UNTIL)
}

/// The self-healing's restarts so far, and when the next may happen.
pub fn heal_state(pvc: &PersistentVolumeClaim) -> (u32, Option<Timestamp>) {
    let attempts = annotation(pvc, ANNOTATION_HEAL_ATTEMPTS)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    (attempts, timestamp(pvc, ANNOTATION_HEAL_AFTER))
}

fn patch(entries: &[(&str, Value)]) -> Value {
    let annotations: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({"metadata": {"annotations": annotations}})
}

/// A start by its owner or an admin created the pod at `now`: it is meant to run, no
/// stop reason, no keep-alive, no self-healing history.
pub fn on_start(now: Timestamp) -> Value {
    patch(&[
        (ANNOTATION_RUNS_SINCE, json!(now.to_string())),
        (ANNOTATION_STOP_REASON, Value::Null),
        (ANNOTATION_KEEP_ALIVE_UNTIL, Value::Null),
        (ANNOTATION_HEAL_ATTEMPTS, Value::Null),
        (ANNOTATION_HEAL_AFTER, Value::Null),
    ])
}

/// The pod is stopped for `reason`: no longer meant to run, no keep-alive.
pub fn on_stop(reason: StopReason) -> Value {
    patch(&[
        (ANNOTATION_STOP_REASON, json!(reason.as_str())),
        (ANNOTATION_RUNS_SINCE, Value::Null),
        (ANNOTATION_KEEP_ALIVE_UNTIL, Value::Null),
        (ANNOTATION_HEAL_ATTEMPTS, Value::Null),
        (ANNOTATION_HEAL_AFTER, Value::Null),
    ])
}

/// No idle stop before `until`.
pub fn on_extend(until: Timestamp) -> Value {
    patch(&[(ANNOTATION_KEEP_ALIVE_UNTIL, json!(until.to_string()))])
}

/// The pod was lost and the self-healing restarts it (attempt `attempts`), the next
/// attempt not before `next`. It stays meant to run.
pub fn on_heal(attempts: u32, next: Timestamp) -> Value {
    patch(&[
        (ANNOTATION_STOP_REASON, json!(StopReason::Evicted.as_str())),
        (ANNOTATION_HEAL_ATTEMPTS, json!(attempts.to_string())),
        (ANNOTATION_HEAL_AFTER, json!(next.to_string())),
    ])
}

/// The pod was lost and the self-healing gave up after its retries: stopped, EVICTED,
/// until its owner starts it.
pub fn on_heal_given_up() -> Value {
    on_stop(StopReason::Evicted)
}

/// The restarted pod has run long enough: the loss is behind it (the reason and the
/// retries are cleared).
pub fn on_healed() -> Value {
    patch(&[
        (ANNOTATION_STOP_REASON, Value::Null),
        (ANNOTATION_HEAL_ATTEMPTS, Value::Null),
        (ANNOTATION_HEAL_AFTER, Value::Null),
    ])
}

/// Restarts the self-healing makes before it gives up (until the instance has run for
/// [`HEAL_SETTLED`] again, or its owner starts it).
pub const HEAL_MAX_ATTEMPTS: u32 = 5;
/// How long a restarted pod must run before its loss counts as behind it.
pub const HEAL_SETTLED: std::time::Duration = std::time::Duration::from_secs(600);
/// The wait after the first restart; doubled after each one, at most [`HEAL_BACKOFF_MAX`].
pub const HEAL_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);
/// The longest wait between two restarts.
pub const HEAL_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1800);

/// What the self-healing does about an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heal {
    /// Nothing: it runs, is stopped on purpose, or was never recorded as running.
    Nothing,
    /// Its pod was lost, and the next restart may not happen yet (or the pod is still
    /// going away).
    Wait,
    /// Its pod was lost: restart it (this is restart `attempt`), the next one not before
    /// `next`.
    Restart {
        /// 1 for the first restart.
        attempt: u32,
        /// When the next restart may happen, if this one is lost too.
        next: Timestamp,
    },
    /// Its pod was lost again after [`HEAL_MAX_ATTEMPTS`] restarts: leave it stopped.
    GiveUp,
    /// The restarted pod has run for [`HEAL_SETTLED`]: clear the loss.
    Settled,
}

/// The wait after restart `attempt` (1-based).
pub fn heal_backoff(attempt: u32) -> std::time::Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    HEAL_BACKOFF
        .saturating_mul(1 << doublings)
        .min(HEAL_BACKOFF_MAX)
}

/// What the self-healing does about the instance recorded on `pvc` whose pod is `pod`,
/// at `now`. A pod is lost when it is gone or has failed (an evicted pod stays, failed,
/// until it is deleted) while the record says the instance is meant to run.
pub fn heal(
    pvc: &PersistentVolumeClaim,
    pod: Option<&k8s_openapi::api::core::v1::Pod>,
    now: Timestamp,
) -> Heal {
    // NB: a deleted instance (kept for DELETE_RETENTION) is never started again.
    if pvc.metadata.deletion_timestamp.is_some()
        || runs_since(pvc).is_none()
        || super::retention::is_deleted(pvc)
    {
        return Heal::Nothing;
    }
    let reason = stop_reason(pvc);
    if reason.is_some_and(|r| r != StopReason::Evicted) {
        return Heal::Nothing;
    }
    let (attempts, after) = heal_state(pvc);
    let failed = |p: &k8s_openapi::api::core::v1::Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    };
    match pod {
        Some(p) if p.metadata.deletion_timestamp.is_some() => Heal::Wait,
        Some(p) if !failed(p) => {
            let recovering = reason.is_some() || attempts > 0;
            let ready = super::derive_status(Some(p), now.as_second(), std::time::Duration::MAX)
                .status
                == super::InstanceStatus::Running;
            let settled = super::started(p).is_some_and(|started| {
                now.duration_since(started).unsigned_abs() >= HEAL_SETTLED && started <= now
            });
            if recovering && ready && settled {
                Heal::Settled
            } else {
                Heal::Nothing
            }
        }
        _ if after.is_some_and(|after| now < after) => Heal::Wait,
        _ if attempts >= HEAL_MAX_ATTEMPTS => Heal::GiveUp,
        _ => {
            let attempt = attempts + 1;
            let wait = jiff::SignedDuration::try_from(heal_backoff(attempt))
                .unwrap_or(jiff::SignedDuration::MAX);
            let next = now.checked_add(wait).unwrap_or(Timestamp::MAX);
            let next = Timestamp::from_second(next.as_second()).unwrap_or(next);
            Heal::Restart { attempt, next }
        }
    }
}
