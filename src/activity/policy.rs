//! The idle decisions: pure functions of the instance record, the heartbeat and the time.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

/// The PVC annotation holding when the instance was last used (RFC 3339).
pub const ANNOTATION_LAST_ACCESSED: &str = "devplatform.io/last-accessed-at";
/// The field manager of the activity annotation (apart from the templates' manager, so
/// that applying the templates never removes it).
pub const FIELD_MANAGER: &str = "codeserver-service-activity";
/// The shortest time between two writes of an instance's `lastAccessedAt`, except that a
/// newer heartbeat is always written while the instance is in its warning window (so that
/// `idleStopAt` moves as soon as the user is back).
pub const RECORD_EVERY: Duration = Duration::from_secs(300);

/// When an instance stops for being idle, and how long before that it says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdlePolicy {
    /// Idle time after which the instance stops; zero: never.
    pub timeout: Duration,
    /// How long before the stop `idleStopAt` shows.
    pub warning: Duration,
    /// The longest an owner may keep an instance alive ahead (`extendCodeServer`); zero:
    /// extensions are off.
    pub max_extension: Duration,
}

impl IdlePolicy {
    /// Whether idle instances are stopped at all.
    pub fn enabled(&self) -> bool {
        !self.timeout.is_zero()
    }
}

/// The recorded `lastAccessedAt` of a PVC.
pub fn recorded(pvc: &PersistentVolumeClaim) -> Option<Timestamp> {
    pvc.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_LAST_ACCESSED)?
        .parse()
        .ok()
}

/// When the pod started (else was created): a fresh start counts as use.
pub use crate::instance::started;

/// The last use: the latest of the record, the heartbeat and the pod's start.
pub fn last_access(
    recorded: Option<Timestamp>,
    heartbeat: Option<Timestamp>,
    started: Option<Timestamp>,
) -> Option<Timestamp> {
    [recorded, heartbeat, started].into_iter().flatten().max()
}

/// When a running instance last used at `last` stops, if `now` is within the warning
/// window (or past the stop); `None` when idle stop is off or the stop is further away.
pub fn idle_stop_at(policy: IdlePolicy, last: Timestamp, now: Timestamp) -> Option<Timestamp> {
    if !policy.enabled() {
        return None;
    }
    let stop = last.checked_add(policy.timeout).ok()?;
    let warn_from = stop.checked_sub(policy.warning).ok()?;
    (now >= warn_from).then_some(stop)
}

/// The last use as idle stop counts it: `last`, or later so that the stop is never
/// before `keep_alive_until` (the owner's `extendCodeServer`).
pub fn kept_alive(
    policy: IdlePolicy,
    last: Timestamp,
    keep_alive_until: Option<Timestamp>,
) -> Timestamp {
    keep_alive_until
        .and_then(|until| until.checked_sub(policy.timeout).ok())
        .map_or(last, |moved| moved.max(last))
}

/// Whether `observed` (the latest use seen now) should be written over `recorded`: when
/// nothing is recorded, when it is [`RECORD_EVERY`] newer, or when it is newer and the
/// recorded value puts the instance in its warning window.
pub fn should_record(
    policy: IdlePolicy,
    recorded: Option<Timestamp>,
    observed: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    let Some(observed) = observed else {
        return false;
    };
    let Some(recorded) = recorded else {
        return true;
    };
    if observed <= recorded {
        return false;
    }
    let newer = observed.duration_since(recorded).unsigned_abs();
    newer >= RECORD_EVERY || idle_stop_at(policy, recorded, now).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    const POLICY: IdlePolicy = IdlePolicy {
        timeout: Duration::from_secs(7200),
        warning: Duration::from_secs(900),
        max_extension: Duration::from_secs(8 * 3600),
    };

    #[test]
    fn a_keep_alive_moves_the_stop_to_it_at_the_earliest() {
        // Used at 0, kept alive until 10 h: the stop is at 10 h, the warning 15 min before.
        let last = kept_alive(POLICY, at(0), Some(at(36_000)));
        assert_eq!(idle_stop_at(POLICY, last, at(35_099)), None);
        assert_eq!(idle_stop_at(POLICY, last, at(35_100)), Some(at(36_000)));
        // A keep-alive already passed changes nothing.
        assert_eq!(kept_alive(POLICY, at(9000), Some(at(100))), at(9000));
        assert_eq!(kept_alive(POLICY, at(9000), None), at(9000));
    }

    #[test]
    fn idle_stop_shows_only_in_the_warning_window() {
        assert_eq!(idle_stop_at(POLICY, at(0), at(6299)), None);
        assert_eq!(idle_stop_at(POLICY, at(0), at(6300)), Some(at(7200)));
        assert_eq!(idle_stop_at(POLICY, at(0), at(9000)), Some(at(7200)));
        assert_eq!(idle_stop_at(IdlePolicy::default(), at(0), at(99_999)), None);
    }

    #[test]
    fn activity_is_recorded_every_few_minutes_or_in_the_warning_window() {
        assert!(should_record(POLICY, None, Some(at(10)), at(10)));
        assert!(!should_record(POLICY, Some(at(10)), Some(at(10)), at(20)));
        assert!(!should_record(POLICY, Some(at(10)), Some(at(200)), at(200)));
        assert!(should_record(POLICY, Some(at(10)), Some(at(310)), at(310)));
        // In the warning window any newer use is written at once.
        assert!(should_record(POLICY, Some(at(0)), Some(at(6400)), at(6400)));
        assert!(!should_record(POLICY, Some(at(10)), None, at(6400)));
    }
}
