//! Recoverable delete on the instance record: with DELETE_RETENTION set, a delete removes
//! the pod, the routes, the policies and the keys, but keeps the workspace PVC, marked
//! deleted, until its purge time. The only reader and writer of these marks.
//!
//! The marks are PVC annotations written by merge patches under the lifecycle's field
//! manager (`crate::instance::lifecycle::FIELD_MANAGER`), never by the templates' apply:
//!
//! - `devplatform.io/deleted-at`: when the instance was deleted (RFC 3339).
//! - `devplatform.io/purge-at`: when the Lease holder deletes the PVC (RFC 3339), stamped
//!   at deletion from the setting in force then; a later change of DELETE_RETENTION, or a
//!   replica with another one, never moves it.
//!
//! A record with either key is deleted ([`is_deleted`]): it has no pod, no one may open
//! it, and nothing but a restore or a purge acts on it. A purge time that does not parse
//! is never due: such a record waits for its owner (or an admin) to restore or purge it.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::{Map, Value, json};

use super::{
    StopReason,
    lifecycle::{
        ANNOTATION_HEAL_AFTER, ANNOTATION_HEAL_ATTEMPTS, ANNOTATION_KEEP_ALIVE_UNTIL,
        ANNOTATION_RUNS_SINCE, ANNOTATION_STOP_REASON,
    },
};

/// When the instance was deleted (RFC 3339).
pub const ANNOTATION_DELETED_AT: &str = "devplatform.io/deleted-at";
/// When the deleted instance's volume is purged (RFC 3339).
pub const ANNOTATION_PURGE_AT: &str = "devplatform.io/purge-at";

use super::lifecycle::{annotation, timestamp};

/// True when the record is marked deleted (either mark, whatever its value: a mangled
/// mark still keeps everyone out).
pub fn is_deleted(pvc: &PersistentVolumeClaim) -> bool {
    annotation(pvc, ANNOTATION_DELETED_AT).is_some()
        || annotation(pvc, ANNOTATION_PURGE_AT).is_some()
}

/// When the instance was deleted, when it is.
pub fn deleted_at(pvc: &PersistentVolumeClaim) -> Option<Timestamp> {
    timestamp(pvc, ANNOTATION_DELETED_AT)
}

/// When the deleted instance's volume is purged, when it is deleted and the time parses.
pub fn purge_at(pvc: &PersistentVolumeClaim) -> Option<Timestamp> {
    timestamp(pvc, ANNOTATION_PURGE_AT)
}

/// True when the record is deleted, not being deleted already, and its recorded purge
/// time has come at `now`. Decided by the recorded time only, never by the setting.
pub fn purge_due(pvc: &PersistentVolumeClaim, now: Timestamp) -> bool {
    pvc.metadata.deletion_timestamp.is_none()
        && is_deleted(pvc)
        && purge_at(pvc).is_some_and(|at| at <= now)
}

/// `now` plus `retention`, to the second (the latest time there is when it overflows).
pub fn purge_time(now: Timestamp, retention: Duration) -> Timestamp {
    let now = whole_seconds(now);
    let wait = SignedDuration::try_from(retention).unwrap_or(SignedDuration::MAX);
    now.checked_add(wait).unwrap_or(Timestamp::MAX)
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The instance is deleted at `now`, its volume kept until `now` + `retention`: the
/// marks, and no longer meant to run (no keep-alive, no self-healing). `stop` is recorded
/// as the stop reason when the instance was meant to run.
pub fn on_delete(now: Timestamp, retention: Duration, stop: Option<StopReason>) -> Value {
    let mut annotations = Map::new();
    annotations.insert(
        ANNOTATION_DELETED_AT.to_owned(),
        json!(whole_seconds(now).to_string()),
    );
    annotations.insert(
        ANNOTATION_PURGE_AT.to_owned(),
        json!(purge_time(now, retention).to_string()),
    );
    for key in [
        ANNOTATION_RUNS_SINCE,
        ANNOTATION_KEEP_ALIVE_UNTIL,
        ANNOTATION_HEAL_ATTEMPTS,
        ANNOTATION_HEAL_AFTER,
    ] {
        annotations.insert(key.to_owned(), Value::Null);
    }
    if let Some(reason) = stop {
        annotations.insert(ANNOTATION_STOP_REASON.to_owned(), json!(reason.as_str()));
    }
    json!({"metadata": {"annotations": annotations}})
}

/// The deleted instance is restored: the marks go, only if the record is still at
/// `resource_version` (the API server refuses a patch naming an older resourceVersion
/// with 409 Conflict, so a restore never races a purge unseen).
pub fn on_restore(resource_version: &str) -> Value {
    json!({"metadata": {
        "resourceVersion": resource_version,
        "annotations": {ANNOTATION_DELETED_AT: null, ANNOTATION_PURGE_AT: null},
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(annotations: Value) -> PersistentVolumeClaim {
        serde_json::from_value(
            json!({"metadata": {"name": "workspace-jd", "annotations": annotations}}),
        )
        .unwrap()
    }

    #[test]
    fn the_recorded_purge_time_decides_never_the_setting() {
        let now: Timestamp = "2026-11-01T10:00:00.75Z".parse().unwrap();
        let patch = on_delete(now, Duration::from_secs(3600), Some(StopReason::User));
        let marks = &patch["metadata"]["annotations"];
        assert_eq!(marks[ANNOTATION_DELETED_AT], "2026-11-01T10:00:00Z");
        assert_eq!(marks[ANNOTATION_PURGE_AT], "2026-11-01T11:00:00Z");
        assert_eq!(marks[ANNOTATION_STOP_REASON], "USER");
        assert!(marks[ANNOTATION_RUNS_SINCE].is_null());
        let written: Map<String, Value> = marks
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let pvc = record(Value::Object(written));
        assert!(is_deleted(&pvc));
        assert!(!purge_due(&pvc, "2026-11-01T10:59:59Z".parse().unwrap()));
        assert!(purge_due(&pvc, "2026-11-01T11:00:00Z".parse().unwrap()));
        assert_eq!(
            deleted_at(&pvc),
            Some("2026-11-01T10:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn a_mangled_mark_keeps_the_record_deleted_and_never_purges_it() {
        let pvc = record(json!({ANNOTATION_PURGE_AT: "soon"}));
        assert!(is_deleted(&pvc));
        assert!(!purge_due(&pvc, Timestamp::MAX));
        assert!(!is_deleted(&record(json!({}))));
        assert_eq!(purge_time(Timestamp::MAX, Duration::MAX), Timestamp::MAX);
    }

    #[test]
    fn a_restore_names_the_version_it_read() {
        let patch = on_restore("42");
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert!(patch["metadata"]["annotations"][ANNOTATION_PURGE_AT].is_null());
    }
}
