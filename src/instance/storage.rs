//! The workspace volume's size, read from its PVC: what was asked for
//! (`spec.resources.requests.storage`), what the volume has (`status.capacity.storage`), and
//! whether a grown volume waits for its file system to grow.
//!
//! How Kubernetes grows a volume (`pkg/volume/util/resize_util.go`, the external-resizer
//! and the kubelet): the request grows; the resizer marks the claim `Resizing` and grows
//! the volume; a file system volume then gets the condition `FileSystemResizePending`
//! ("Waiting for user to (re-)start a pod to finish file system resize of volume on
//! node.") until the kubelet grows the file system, when a pod mounts the volume; only then
//! does `status.capacity` show the new size and the condition go.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use crate::quantity::Quantity;

/// The condition the external-resizer sets once the volume grew and its file system has
/// not yet (`v1.PersistentVolumeClaimFileSystemResizePending`).
pub const FILE_SYSTEM_RESIZE_PENDING: &str = "FileSystemResizePending";

/// The workspace volume's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkspaceStorage {
    /// What the PVC asks for (`spec.resources.requests.storage`).
    pub requested: Option<Quantity>,
    /// What the volume has (`status.capacity.storage`), once bound.
    pub capacity: Option<Quantity>,
    /// True while the volume has grown and its file system waits for a pod to mount it.
    pub resize_pending: bool,
}

impl WorkspaceStorage {
    /// The size of the volume of `pvc`.
    pub fn of(pvc: &PersistentVolumeClaim) -> Self {
        Self {
            requested: requested(pvc),
            capacity: capacity(pvc),
            resize_pending: resize_pending(pvc),
        }
    }
}

/// What the PVC asks for.
pub fn requested(pvc: &PersistentVolumeClaim) -> Option<Quantity> {
    pvc.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?
        .0
        .parse()
        .ok()
}

/// What the volume has, once bound.
pub fn capacity(pvc: &PersistentVolumeClaim) -> Option<Quantity> {
    pvc.status
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")?
        .0
        .parse()
        .ok()
}

/// True while the PVC has the condition `FileSystemResizePending` (status `True`).
pub fn resize_pending(pvc: &PersistentVolumeClaim) -> bool {
    pvc.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == FILE_SYSTEM_RESIZE_PENDING && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pvc(v: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_size_is_read_from_the_claim() {
        let grown = pvc(json!({
            "metadata": {"name": "workspace-jd"},
            "spec": {"resources": {"requests": {"storage": "20Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
                "conditions": [{"type": "FileSystemResizePending", "status": "True",
                    "message": "Waiting for user to (re-)start a pod to finish file system resize of volume on node."}]}}));
        let storage = WorkspaceStorage::of(&grown);
        assert_eq!(storage.requested.unwrap().to_string(), "20Gi");
        assert_eq!(storage.capacity.unwrap().to_string(), "10Gi");
        assert!(storage.resize_pending);

        let resizing = pvc(json!({
            "metadata": {"name": "workspace-jd"},
            "spec": {"resources": {"requests": {"storage": "20Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
                "conditions": [{"type": "Resizing", "status": "True"},
                    {"type": "FileSystemResizePending", "status": "False"}]}}));
        assert!(!resize_pending(&resizing));

        let pending = pvc(json!({"metadata": {"name": "w"}, "status": {"phase": "Pending"}}));
        assert_eq!(WorkspaceStorage::of(&pending), WorkspaceStorage::default());
    }
}
