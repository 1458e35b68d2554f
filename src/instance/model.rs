//! The instance model: one user's code-server instance, built from its record (the PVC)
//! and its pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use super::{
    record,
    status::{InstanceStatus, Status, derive_status, volume_pending},
};
use crate::{naming, quantity::Quantity, values::Repo};

#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Instance id, `code-server-<name>`.
    pub id: String,
    /// The original user id.
    pub user_id: String,
    /// The durable owner key.
    pub owner: String,
    /// Repositories of the workspace, in the order they were added.
    pub repos: Vec<Repo>,
    /// Browser URL.
    pub url: String,
    /// Status and reason.
    pub status: Status,
    /// When the instance (its PVC) was created, RFC 3339.
    pub created_at: Option<String>,
    /// Allocated workspace storage (the PVC's capacity, else its request), e.g. `10Gi`.
    pub storage: Option<Quantity>,
    /// The workspace volume's requested size, capacity and pending file system resize.
    pub volume: super::storage::WorkspaceStorage,
    /// Pod name.
    pub pod_name: String,
    /// PVC name.
    pub pvc_name: String,
    /// Service name.
    pub service_name: String,
    /// Node the pod runs on, when scheduled.
    pub node: Option<String>,
    /// True when the live pod was rendered from other templates or values than the
    /// current ones: a restart applies the change.
    pub restart_pending: bool,
    /// When the instance was last used: the recorded activity, or its pod's start if later.
    pub last_accessed_at: Option<jiff::Timestamp>,
    /// When a running instance will stop for being idle, during the warning window.
    pub idle_stop_at: Option<jiff::Timestamp>,
    /// Why the instance stopped (or lost its pod), until it is started again.
    pub stop_reason: Option<super::StopReason>,
    /// No idle stop before this time, when its owner asked for it.
    pub keep_alive_until: Option<jiff::Timestamp>,
    /// The owner's git identity in the workspace, when one was made.
    pub git_identity: Option<super::git_identity::IdentityRecord>,
    /// The recorded workspace profile; none for an instance of a set without profiles or
    /// from before them (the reconciler shows the default then).
    pub profile: Option<String>,
    /// When the instance was deleted, while its volume is kept (status DELETED).
    pub deleted_at: Option<jiff::Timestamp>,
    /// When the deleted instance's volume is purged (status DELETED).
    pub purge_at: Option<jiff::Timestamp>,
}

impl Instance {
    /// Builds an instance from its PVC (the record) and pod. `None` when the PVC is not
    /// one of ours.
    pub fn from_live(
        pvc: &PersistentVolumeClaim,
        pod: Option<&Pod>,
        base_domain: &str,
        now_unix: i64,
        unschedulable_after: Duration,
    ) -> Option<Self> {
        let id = record::instance_id(pvc)?.to_owned();
        let name = record::safe_name(pvc)?.to_owned();
        let repos = record::repos(Some(pvc));
        let storage = record::storage(pvc);
        let host = naming::host(&name, base_domain);
        let mut status = Self::record_status(pvc, pod, now_unix, unschedulable_after);
        if matches!(
            status.status,
            InstanceStatus::Pending | InstanceStatus::Starting
        ) && status.reason.is_none()
        {
            status.reason = volume_pending(pvc);
        }
        Some(Self {
            user_id: record::user_id(pvc).unwrap_or(&name).to_owned(),
            owner: record::owner_key(pvc).unwrap_or(&name).to_owned(),
            repos,
            url: format!("https://{host}"),
            status,
            created_at: pvc
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string()),
            storage,
            volume: super::storage::WorkspaceStorage::of(pvc),
            pod_name: id.clone(),
            pvc_name: pvc.metadata.name.clone().unwrap_or_default(),
            service_name: id.clone(),
            node: pod.and_then(|p| p.spec.as_ref()?.node_name.clone()),
            restart_pending: false,
            last_accessed_at: crate::activity::last_access(
                record::last_accessed(pvc),
                None,
                pod.and_then(super::started),
            ),
            idle_stop_at: None,
            stop_reason: super::lifecycle::stop_reason(pvc),
            keep_alive_until: super::lifecycle::keep_alive_until(pvc),
            git_identity: super::git_identity::recorded(pvc),
            profile: record::profile(pvc).map(str::to_owned),
            deleted_at: super::retention::deleted_at(pvc),
            purge_at: super::retention::purge_at(pvc),
            id,
        })
    }

    /// The status alone of the instance [`Instance::from_live`] would build, without
    /// building it (no reason): for totals over every instance.
    pub fn status_of(
        pvc: &PersistentVolumeClaim,
        pod: Option<&Pod>,
        now_unix: i64,
        unschedulable_after: Duration,
    ) -> Option<InstanceStatus> {
        record::instance_id(pvc)?;
        record::safe_name(pvc)?;
        Some(Self::record_status(pvc, pod, now_unix, unschedulable_after).status)
    }

    /// The status of the instance recorded on `pvc` with `pod`: its pod's, except that a
    /// deleted record is DELETED whatever pod is left (a delete that stopped halfway): the
    /// record, not the pod, says it.
    pub fn record_status(
        pvc: &PersistentVolumeClaim,
        pod: Option<&Pod>,
        now_unix: i64,
        unschedulable_after: Duration,
    ) -> Status {
        if super::retention::is_deleted(pvc) {
            return Status {
                status: InstanceStatus::Deleted,
                reason: None,
            };
        }
        derive_status(pod, now_unix, unschedulable_after)
    }

    /// The repository the instance was created for (the first one).
    pub fn primary_repo(&self) -> Option<&Repo> {
        self.repos.first()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn an_unbound_volume_explains_a_pending_instance() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "workspace-jd", "labels": {"app.kubernetes.io/instance": "code-server-jd", "devplatform.io/user": "jd"}},
            "status": {"phase": "Pending", "conditions": [{"type": "Resizing", "status": "False", "message": "waiting for first consumer"}]}})).unwrap();
        let pending: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}}),
        )
        .unwrap();
        let i = Instance::from_live(&pvc, Some(&pending), "d", NOW, Duration::ZERO).unwrap();
        assert_eq!(i.status.status, InstanceStatus::Pending);
        assert_eq!(
            i.status.reason.as_deref(),
            Some("workspace volume Pending: waiting for first consumer")
        );
        let mut bound = pvc.clone();
        bound.status.as_mut().unwrap().phase = Some("Bound".into());
        let i = Instance::from_live(&bound, Some(&pending), "d", NOW, Duration::ZERO).unwrap();
        assert_eq!(i.status.reason, None);
    }

    #[test]
    fn the_pvc_is_the_record() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "workspace-jd", "creationTimestamp": "2026-11-01T10:00:00Z",
                "labels": {"app.kubernetes.io/instance": "code-server-jd", "devplatform.io/user": "jd", "devplatform.io/owner": "sub-1"},
                "annotations": {"devplatform.io/user-id": "J.D", "devplatform.io/repos":
                    "[{\"owner\":\"o\",\"name\":\"n\",\"cloneUrl\":\"http://g/o/n.git\"}]"}},
            "spec": {"resources": {"requests": {"storage": "10Gi"}}}})).unwrap();
        let i = Instance::from_live(&pvc, None, "devplatform.local", NOW, Duration::ZERO).unwrap();
        assert_eq!(
            (i.id.as_str(), i.user_id.as_str(), i.owner.as_str()),
            ("code-server-jd", "J.D", "sub-1")
        );
        assert_eq!(i.url, "https://code-jd.devplatform.local");
        assert_eq!(i.primary_repo().unwrap().name, "n");
        assert_eq!(i.status.status, InstanceStatus::Stopped);
        assert_eq!(i.storage.unwrap().to_string(), "10Gi");
        assert_eq!(i.created_at.as_deref(), Some("2026-11-01T10:00:00Z"));
    }
}
