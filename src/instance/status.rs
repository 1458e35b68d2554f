//! An instance's status, derived from its pod (and, while pending, its volume) only.

use std::time::Duration;

use async_graphql::Enum;
use k8s_openapi::api::core::v1::{ContainerStatus, PersistentVolumeClaim, Pod};
use serde::Serialize;

/// Status of an instance.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceStatus {
    /// Created, not scheduled yet.
    Pending,
    /// Scheduled, cloning or starting.
    Starting,
    /// Ready.
    Running,
    /// Being stopped.
    Stopping,
    /// Workspace kept, no pod.
    Stopped,
    /// Failed (image pull, crash loop, failed clone).
    Error,
    /// Deleted, its workspace volume kept until its purge time (DELETE_RETENTION); no
    /// pod. Derived from the record (`crate::instance::retention`), never from a pod.
    Deleted,
}

impl InstanceStatus {
    /// Every status, for metrics.
    pub const ALL: [InstanceStatus; 7] = [
        Self::Pending,
        Self::Starting,
        Self::Running,
        Self::Stopping,
        Self::Stopped,
        Self::Error,
        Self::Deleted,
    ];

    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Error => "ERROR",
            Self::Deleted => "DELETED",
        }
    }
}

/// A status and, for ERROR (and some others), a reason people can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The status.
    pub status: InstanceStatus,
    /// Why, when there is something to say.
    pub reason: Option<String>,
}

impl Status {
    fn of(status: InstanceStatus) -> Self {
        Self {
            status,
            reason: None,
        }
    }

    fn error(reason: String) -> Self {
        Self {
            status: InstanceStatus::Error,
            reason: Some(reason),
        }
    }
}

/// Container waiting reasons that will not resolve by themselves.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Derives the status from the pod (if any). `now_unix` and `unschedulable_after` decide
/// when a pod that cannot be scheduled counts as failed.
pub fn derive_status(pod: Option<&Pod>, now_unix: i64, unschedulable_after: Duration) -> Status {
    let Some(pod) = pod else {
        return Status::of(InstanceStatus::Stopped);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Status::of(InstanceStatus::Stopping);
    }
    let Some(status) = &pod.status else {
        return Status::of(InstanceStatus::Pending);
    };
    if status.phase.as_deref() == Some("Failed") {
        let why = status
            .message
            .clone()
            .or_else(|| status.reason.clone())
            .unwrap_or_else(|| "the pod failed".to_owned());
        return Status::error(format!("pod failed: {why}"));
    }
    for c in status.init_container_statuses.iter().flatten() {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            return Status::error(format!(
                "init container {} failed (exit code {}): {}",
                c.name,
                t.exit_code,
                t.message
                    .clone()
                    .or_else(|| t.reason.clone())
                    .unwrap_or_else(|| "see codeServerLogs".to_owned())
            ));
        }
        if let Some(reason) = fatal_waiting(c) {
            return Status::error(reason);
        }
    }
    for c in status.container_statuses.iter().flatten() {
        if let Some(reason) = fatal_waiting(c) {
            return Status::error(reason);
        }
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |t: &str| conditions.iter().find(|c| c.type_ == t);
    if condition("Ready").is_some_and(|c| c.status == "True") {
        return Status::of(InstanceStatus::Running);
    }
    if let Some(c) = condition("PodScheduled").filter(|c| c.status == "False") {
        let since = c.last_transition_time.as_ref().map(|t| t.0.as_second());
        let waited = since.map(|s| now_unix.saturating_sub(s)).unwrap_or(0);
        let reason = format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or("Unschedulable"),
            c.message.as_deref().unwrap_or("no node can run the pod")
        );
        if u64::try_from(waited).unwrap_or(0) >= unschedulable_after.as_secs() {
            return Status::error(format!("pod cannot be scheduled: {reason}"));
        }
        return Status {
            status: InstanceStatus::Pending,
            reason: Some(reason),
        };
    }
    if condition("PodScheduled").is_some_and(|c| c.status == "True")
        || status.phase.as_deref() == Some("Running")
    {
        return Status::of(InstanceStatus::Starting);
    }
    Status::of(InstanceStatus::Pending)
}

/// What a pod's status depends on, kept without the pod: the status derived now, and, for
/// a pod that cannot be scheduled, since when (the status turns to ERROR once that has
/// lasted the unschedulable timeout). For totals over many instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSummary {
    status: InstanceStatus,
    /// Seconds since the epoch; `i64::MAX` when the condition carries no time.
    unschedulable_since: Option<i64>,
}

impl StatusSummary {
    /// The summary of `pod` (`None`: no pod).
    pub fn of(pod: Option<&Pod>) -> Self {
        // NB: a `now` before any timestamp and an endless timeout never escalate.
        let status = derive_status(pod, i64::MIN, Duration::MAX).status;
        let unschedulable_since = pod
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            })
            .filter(|_| status == InstanceStatus::Pending)
            .map(|c| {
                c.last_transition_time
                    .as_ref()
                    .map_or(i64::MAX, |t| t.0.as_second())
            });
        Self {
            status,
            unschedulable_since,
        }
    }

    /// The status [`derive_status`] gives at `now_unix` with `unschedulable_after`.
    pub fn at(&self, now_unix: i64, unschedulable_after: Duration) -> InstanceStatus {
        match self.unschedulable_since {
            Some(since)
                if u64::try_from(now_unix.saturating_sub(since)).unwrap_or(0)
                    >= unschedulable_after.as_secs() =>
            {
                InstanceStatus::Error
            }
            _ => self.status,
        }
    }
}

fn fatal_waiting(c: &ContainerStatus) -> Option<String> {
    let w = c.state.as_ref()?.waiting.as_ref()?;
    let reason = w.reason.as_deref()?;
    if !FATAL_WAITING.contains(&reason) {
        return None;
    }
    // NB: a crash loop's waiting message only says "back-off"; the last termination
    // says why the container exited.
    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    if let (Some(t), "CrashLoopBackOff") = (last, reason) {
        return Some(format!(
            "container {} CrashLoopBackOff: last exit code {} ({}), restarted {} times",
            c.name,
            t.exit_code,
            t.message
                .as_deref()
                .or(t.reason.as_deref())
                .unwrap_or("no reason given"),
            c.restart_count
        ));
    }
    Some(format!(
        "container {} {}: {}",
        c.name,
        reason,
        w.message.as_deref().unwrap_or("see codeServerLogs")
    ))
}

/// Why the workspace volume `pvc` is not usable yet, when it is not bound.
pub fn volume_pending(pvc: &PersistentVolumeClaim) -> Option<String> {
    let status = pvc.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if phase == "Bound" {
        return None;
    }
    let condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.status == "True" || c.message.is_some())
        })
        .map(|c| {
            format!(
                ": {}",
                c.message
                    .as_deref()
                    .or(c.reason.as_deref())
                    .unwrap_or(&c.type_)
            )
        })
        .unwrap_or_default();
    Some(format!("workspace volume {phase}{condition}"))
}

/// True when the pod's init (clone) container failed: its logs explain more than the
/// main container's.
pub fn init_failed(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.init_container_statuses.as_ref()?;
    statuses
        .iter()
        .find(|c| {
            c.state.as_ref().is_some_and(|s| {
                s.terminated.as_ref().is_some_and(|t| t.exit_code != 0)
                    || s.waiting
                        .as_ref()
                        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
            }) || c
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0)
        })
        .map(|c| c.name.clone())
}

/// When the pod started (else was created).
pub fn started(pod: &Pod) -> Option<jiff::Timestamp> {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const LONG_AGO: &str = "2020-01-01T00:00:00Z";

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    fn status_of(status: serde_json::Value) -> Status {
        derive_status(Some(&pod(status)), NOW, Duration::from_secs(120))
    }

    #[test]
    fn a_summary_gives_the_status_derive_status_gives_at_any_time() {
        let pods = [
            json!({"phase": "Pending"}),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "lastTransitionTime": "2027-01-15T08:00:00Z"}]}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}),
            json!({"phase": "Failed", "message": "evicted"}),
            json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}]}),
        ];
        let since = 1_800_000_000;
        for status in pods {
            let pod = pod(status);
            let summary = StatusSummary::of(Some(&pod));
            for now in [since - 10, since, since + 119, since + 120, since + 10_000] {
                for after in [Duration::ZERO, Duration::from_secs(120)] {
                    assert_eq!(
                        summary.at(now, after),
                        derive_status(Some(&pod), now, after).status,
                        "{pod:?} at {now} after {after:?}"
                    );
                }
            }
        }
        assert_eq!(
            StatusSummary::of(None).at(NOW, Duration::ZERO),
            InstanceStatus::Stopped
        );
    }

    #[test]
    fn lifecycle_statuses() {
        assert_eq!(
            derive_status(None, NOW, Duration::ZERO).status,
            InstanceStatus::Stopped
        );
        assert_eq!(
            status_of(json!({"phase": "Pending"})).status,
            InstanceStatus::Pending
        );
        assert_eq!(
            status_of(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]})).status,
            InstanceStatus::Starting
        );
        assert_eq!(
            status_of(
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]})
            )
            .status,
            InstanceStatus::Starting
        );
        assert_eq!(
            status_of(
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
            )
            .status,
            InstanceStatus::Running
        );
        let deleting: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "deletionTimestamp": LONG_AGO}, "status": {"phase": "Running"}})).unwrap();
        assert_eq!(
            derive_status(Some(&deleting), NOW, Duration::ZERO).status,
            InstanceStatus::Stopping
        );
    }

    #[test]
    fn failures_are_errors_with_readable_reasons() {
        let cases = [
            (
                json!({"phase": "Pending", "containerStatuses": [{"name": "code-server", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"bad\""}}}]}),
                "ImagePullBackOff",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "code-server", "image": "i", "imageID": "", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                "CrashLoopBackOff",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "code-server", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
                "last exit code 137 (OOMKilled), restarted 3 times",
            ),
            (
                json!({"phase": "Pending", "containerStatuses": [{"name": "code-server", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"x\" not found"}}}]}),
                "secret \"x\" not found",
            ),
            (
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "git-clone", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
                "init container git-clone failed (exit code 1)",
            ),
            (
                json!({"phase": "Failed", "message": "evicted"}),
                "pod failed: evicted",
            ),
            (
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available", "lastTransitionTime": LONG_AGO}]}),
                "0/3 nodes are available",
            ),
        ];
        for (status, needle) in cases {
            let s = status_of(status);
            assert_eq!(s.status, InstanceStatus::Error, "{needle}");
            assert!(
                s.reason.as_deref().unwrap_or_default().contains(needle),
                "{:?} lacks {needle}",
                s.reason
            );
        }
    }

    #[test]
    fn briefly_unschedulable_pods_are_still_pending() {
        let recent = jiff::Timestamp::from_second(NOW - 10).unwrap().to_string();
        let s = status_of(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "insufficient cpu", "lastTransitionTime": recent}]}),
        );
        assert_eq!(s.status, InstanceStatus::Pending);
        assert!(s.reason.unwrap().contains("insufficient cpu"));
    }
}
