//! The owner's git identity as the instance record shows it (never the private key): what
//! `CodeServerInstance.gitIdentity` answers from the PVC, without a call.

use k8s_openapi::{
    api::core::v1::PersistentVolumeClaim, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::{Deserialize, Serialize};

/// The record of the identity (JSON of [`IdentityRecord`]) on its Secret and the PVC.
pub const ANNOTATION_GIT_IDENTITY: &str = "devplatform.io/git-identity";

/// What is recorded about an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityRecord {
    /// `SHA256:...`, as `ssh-keygen -l` and Gitea show it.
    pub fingerprint: String,
    /// When the key was made (RFC 3339).
    pub created_at: String,
    /// Gitea's id of the key.
    pub key_id: u64,
    /// The Gitea account it is registered to.
    pub account: String,
}

/// The identity recorded on an instance's PVC.
pub fn recorded(pvc: &PersistentVolumeClaim) -> Option<IdentityRecord> {
    recorded_in(&pvc.metadata)
}

/// The identity recorded in an object's metadata (the PVC's, or its Secret's).
pub fn recorded_in(meta: &ObjectMeta) -> Option<IdentityRecord> {
    let json = meta.annotations.as_ref()?.get(ANNOTATION_GIT_IDENTITY)?;
    serde_json::from_str(json).ok()
}
