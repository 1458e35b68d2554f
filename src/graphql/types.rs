//! The spec's GraphQL types, names and nullability exactly as written there, plus the
//! additions of this service (`Repository`, and the dry-run render and plan answers).

use async_graphql::{Enum, SimpleObject};

use crate::gitea;

/// `enum InstanceStatus`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
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
}

/// `type CodeServerInstance`.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct CodeServerInstance {
    /// `id: String!`
    pub id: String,
    /// `userId: String!`
    pub user_id: String,
    /// `repoName: String!`
    pub repo_name: String,
    /// `repoOwner: String!`
    pub repo_owner: String,
    /// `url: String!`
    pub url: String,
    /// `status: InstanceStatus!`
    pub status: InstanceStatus,
    /// `createdAt: String!` (RFC 3339).
    pub created_at: String,
    /// `lastAccessedAt: String`
    pub last_accessed_at: Option<String>,
    /// `storageUsed: String`
    pub storage_used: Option<String>,
}

/// `type ProvisionResult`.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct ProvisionResult {
    /// `instance: CodeServerInstance!`
    pub instance: CodeServerInstance,
    /// `message: String!`
    pub message: String,
    /// `isNew: Boolean!`
    pub is_new: bool,
}

/// `type InstanceStats`.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct InstanceStats {
    /// `totalInstances: Int!`
    pub total_instances: i32,
    /// `runningInstances: Int!`
    pub running_instances: i32,
    /// `stoppedInstances: Int!`
    pub stopped_instances: i32,
    /// `totalStorageUsed: String!`
    pub total_storage_used: String,
}

/// `type Repository`: a Gitea repository the caller can read (`myRepositories`).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// Owner login.
    pub owner: String,
    /// Name.
    pub name: String,
    /// HTTP(S) clone URL.
    pub clone_url: String,
    /// Whether the repository is private.
    pub private: bool,
}

impl From<gitea::Repository> for Repository {
    fn from(repo: gitea::Repository) -> Self {
        Self {
            owner: repo.owner,
            name: repo.name,
            clone_url: repo.clone_url,
            private: repo.private,
        }
    }
}

/// `type RenderResult`: the manifests a dry run renders (`renderCodeServer`).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct RenderResult {
    /// Every object as multi-document YAML, each headed by its template file.
    pub manifests: String,
    /// `Kind/name` of each object, in render order.
    pub objects: Vec<String>,
}

/// `enum PlanAction`: what applying would do to one object.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanAction {
    /// Not live; would be created.
    Create,
    /// Live but different; would be patched (see `patch`).
    Update,
    /// Live and equal; no request.
    Unchanged,
    /// A pod whose spec changed; recreated when the instance is next started.
    Recreate,
    /// Ours but no longer rendered; would be deleted.
    Prune,
}

/// `type PlanStep`: one object of a plan.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct PlanStep {
    /// `Kind/name`.
    pub object: String,
    /// The kind.
    pub kind: String,
    /// The name.
    pub name: String,
    /// What would happen.
    pub action: PlanAction,
    /// For updates, the RFC 6902 JSON patch from live to desired, as JSON text.
    pub patch: Option<String>,
    /// What the plan held back, for people.
    pub notes: Vec<String>,
}

/// `type PlanResult`: a dry-run plan (`planCodeServer`).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct PlanResult {
    /// True when nothing would change.
    pub unchanged: bool,
    /// One step per object.
    pub steps: Vec<PlanStep>,
    /// The plan as `plan` prints it.
    pub text: String,
}
