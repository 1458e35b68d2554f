//! The spec's GraphQL types, names and nullability exactly as written there, plus the
//! additions of this service (`Repository`, and the dry-run render and plan answers).

use async_graphql::{ComplexObject, Context, Enum, SimpleObject};

use crate::gitea;

/// Status of an instance: the one enum the model and the schema share.
pub use crate::instance::InstanceStatus;
/// Why an instance stopped.
pub use crate::instance::StopReason;

/// A user's code-server instance: one workspace volume and, while running, one pod.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
#[graphql(complex)]
pub struct CodeServerInstance {
    /// Instance id, `code-server-<name>`.
    pub id: String,
    /// The owner's user id, as the token gave it.
    pub user_id: String,
    /// The repository the instance was provisioned for.
    pub repo_name: String,
    /// Owner of that repository.
    pub repo_owner: String,
    /// Where code-server answers in the browser.
    pub url: String,
    /// Current status, derived from the live pod.
    pub status: InstanceStatus,
    /// When the instance was created (RFC 3339).
    pub created_at: String,
    /// When the instance was last used (RFC 3339): the last activity code-server
    /// reported, or the pod's start if later; null before either is known.
    pub last_accessed_at: Option<String>,
    /// Storage allocated to the workspace, such as `10Gi`.
    pub storage_used: Option<String>,
    /// Why the instance is not running, for people: an image that cannot be pulled, a
    /// crash loop with its exit code, a failed clone, an unschedulable pod, a pending
    /// volume. Null when the instance is RUNNING or STOPPED.
    pub status_message: Option<String>,
    /// Every repository of the workspace, in the order they were added; `repoOwner` and
    /// `repoName` are the first.
    pub repositories: Vec<WorkspaceRepository>,
    /// When a running instance will be stopped for being idle (RFC 3339); set only
    /// during the IDLE_WARNING window before that, null otherwise. Any use moves it away.
    pub idle_stop_at: Option<String>,
    /// True when a start would recreate the pod: the templates, the settings or the
    /// repositories changed since the running pod was created. Always false without a pod.
    pub restart_pending: bool,
    /// Why the instance stopped (or lost its pod): null when it was started since, or
    /// stopped before this was recorded. EVICTED while the service restarts a lost pod,
    /// until the restarted pod has run for 10 minutes.
    pub stop_reason: Option<StopReason>,
    /// No idle stop before this time (RFC 3339), when its owner asked for it with
    /// `extendCodeServer`; a stop or a start ends it.
    pub keep_alive_until: Option<String>,
    /// The owner's git identity in the workspace: an SSH key registered to their own Gitea
    /// account, so that `git push` works as them. Null until their first provision or
    /// start made it (or with `gitIdentity.enabled: false`).
    pub git_identity: Option<GitIdentity>,
    /// The workspace volume's size: what it asks for, what it has, and whether a grown
    /// volume waits for the next start to grow its file system (`resizeStorage`).
    pub storage: WorkspaceStorage,
    /// When the instance was deleted (RFC 3339), while its workspace volume is kept
    /// (status DELETED, with DELETE_RETENTION set); null otherwise.
    pub deleted_at: Option<String>,
    /// When the deleted instance's workspace volume is purged for good (RFC 3339), unless
    /// `restoreCodeServer` brings it back first; null when it is not deleted.
    pub purge_at: Option<String>,
    /// The workspace profile the instance uses (see the `profiles` query): the one
    /// recorded when it was provisioned or started, else the default one. A profile
    /// changed while the instance runs applies at its next start (`restartPending`).
    pub profile: Option<String>,
}

/// The size of a workspace volume, read from its PVC.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceStorage {
    /// What the volume asks for (the PVC's storage request), such as `20Gi`.
    pub requested: String,
    /// What the volume has (the PVC's capacity), such as `10Gi`; null until it is bound.
    pub capacity: Option<String>,
    /// True while the volume has grown and its file system waits for a pod to mount it
    /// (the PVC's `FileSystemResizePending` condition): the next start of the instance
    /// finishes the resize, and `capacity` then shows the new size.
    pub resize_pending: bool,
}

/// The SSH key a workspace pushes with, registered to its owner's Gitea account (its
/// title names the instance). The private key never leaves the workspace's Secret.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct GitIdentity {
    /// The key's fingerprint as `ssh-keygen -l` and Gitea show it (`SHA256:...`).
    pub fingerprint: String,
    /// When the key was made (RFC 3339).
    pub created_at: String,
}

/// A Kubernetes event of an instance's pod or workspace volume.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct InstanceEvent {
    /// `Normal` or `Warning`.
    #[graphql(name = "type")]
    pub type_: String,
    /// Machine-readable reason (`Scheduled`, `Pulling`, `BackOff`, `FailedScheduling`).
    pub reason: String,
    /// For people.
    pub message: String,
    /// How many times it happened.
    pub count: i32,
    /// When it last happened (RFC 3339).
    pub last_seen: Option<String>,
    /// `Kind/name` of the object it is about.
    pub object: String,
}

/// A repository recorded in an instance's workspace.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceRepository {
    /// Owner login.
    pub owner: String,
    /// Name.
    pub name: String,
    /// The URL the workspace clones and fetches from.
    pub clone_url: String,
}

/// A page of `allCodeServers`.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct CodeServerConnection {
    /// The instances of this page, ordered by id.
    pub edges: Vec<CodeServerEdge>,
    /// Where the page ends.
    pub page_info: PageInfo,
    /// Instances matching the filter, over every page.
    pub total_count: i32,
}

/// One instance of a page, with its cursor.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct CodeServerEdge {
    /// Opaque; pass as `after` to continue after this instance.
    pub cursor: String,
    /// The instance.
    pub node: CodeServerInstance,
}

/// Where a page ends.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// True when more instances follow.
    pub has_next_page: bool,
    /// The cursor of the last instance of the page; null for an empty page.
    pub end_cursor: Option<String>,
}

#[ComplexObject]
impl CodeServerInstance {
    /// The recent Kubernetes events of the instance's pod and workspace volume, newest
    /// first, at most 20. Read from the cluster only when asked for, once per request;
    /// at most 3 `events` fields per request.
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<InstanceEvent>, super::ApiError> {
        // NB: an instance only reaches an answer after its owner (or an admin) was
        // checked, so its id needs no second check here.
        // NB: read once per instance per request, however many aliases ask, and charged
        // to the request's and the caller's budget of calls (see `calls`).
        let services = super::query::services(ctx)?;
        super::calls::events_once(ctx, &self.id, || async {
            let events = services.reconciler.events(&self.id).await?;
            Ok(events
                .into_iter()
                .map(|e| InstanceEvent {
                    type_: e.type_,
                    reason: e.reason,
                    message: super::redact(&e.message),
                    count: e.count,
                    last_seen: e.last_seen,
                    object: e.object,
                })
                .collect())
        })
        .await
    }
}

/// What `provisionCodeServer` did.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct ProvisionResult {
    /// The instance, with its status after waiting for readiness.
    pub instance: CodeServerInstance,
    /// What happened, for people.
    pub message: String,
    /// True when the instance did not exist before.
    pub is_new: bool,
}

/// Totals over every instance (admins only).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct InstanceStats {
    /// Instances (workspace volumes).
    pub total_instances: i32,
    /// Instances whose pod is ready.
    pub running_instances: i32,
    /// Instances without a pod.
    pub stopped_instances: i32,
    /// Deleted instances whose workspace volumes are kept until their purge time (also
    /// counted in `totalInstances` and `totalStorageUsed`).
    pub deleted_instances: i32,
    /// Storage allocated to all workspaces, such as `120Gi`.
    pub total_storage_used: String,
}

/// A Gitea repository the caller can read.
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

/// The manifests a dry run renders.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct RenderResult {
    /// Every object as multi-document YAML, each headed by its template file.
    pub manifests: String,
    /// `Kind/name` of each object, in render order.
    pub objects: Vec<String>,
}

/// What applying would do to one object.
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

/// One object of a plan.
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

/// A dry-run plan: what provisioning would change.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct PlanResult {
    /// True when nothing would change.
    pub unchanged: bool,
    /// One step per object.
    pub steps: Vec<PlanStep>,
    /// The plan as `plan` prints it.
    pub text: String,
}

/// The template set in use (the `templates` query).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
#[graphql(complex)]
pub struct TemplateSet {
    /// Content hash of the set, stamped on every rendered object.
    pub revision: String,
    /// When the set was loaded (RFC 3339).
    pub loaded_at: String,
    /// A directory, or `built-in`.
    pub source: String,
    /// Why the set now in the directory was refused (admins only; null otherwise).
    pub last_refusal: Option<TemplateRefusal>,
}

/// The images workspaces use, pulled ahead on every node (the `codeserver-prepull`
/// DaemonSet).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct PrepullStatus {
    /// The images, sorted.
    pub images: Vec<String>,
    /// Nodes that have every image.
    pub ready_nodes: i32,
    /// Nodes that should have them (where workspaces may run).
    pub total_nodes: i32,
}

#[ComplexObject]
impl TemplateSet {
    /// The images of the active templates and profiles, pulled ahead on every node where
    /// workspaces may run, and how many nodes have them (admins only; null for others, or
    /// when `prepull.enabled` is false or the Lease holder has not applied it yet). One
    /// read of the DaemonSet when asked for.
    async fn prepull(&self, ctx: &Context<'_>) -> Result<Option<PrepullStatus>, super::ApiError> {
        let identity = super::query::caller(ctx)?;
        let services = super::query::services(ctx)?;
        if super::args::admin(identity, &services.admin_role).is_err() {
            return Ok(None);
        }
        super::calls::charge(ctx, 1)?;
        let status = services.reconciler.prepull_status().await?;
        Ok(status.map(|s| PrepullStatus {
            images: s.images,
            ready_nodes: s.ready_nodes,
            total_nodes: s.total_nodes,
        }))
    }
}

/// A refused template set.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct TemplateRefusal {
    /// When it was refused (RFC 3339).
    pub at: String,
    /// Every problem, one line each.
    pub problems: Vec<String>,
}
