//! What templates see: the serializable values of one instance.

use std::{collections::BTreeMap, sync::Arc};

use serde::Serialize;
use serde_json::Value;

use super::InstanceSettings;

/// The user, as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct UserValues {
    /// The original id, any characters (emit it only through the YAML-safe formatter).
    pub id: String,
    /// The DNS-safe name.
    pub name: String,
    /// Email, or empty.
    pub email: String,
    /// The durable owner key (label-safe).
    pub owner: String,
}

/// Names of the instance's objects.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceValues {
    /// Instance id, also the pod and Service name.
    pub id: String,
    /// Pod name.
    pub pod: String,
    /// Service name.
    pub service: String,
    /// Workspace PVC name.
    pub pvc: String,
    /// Host name.
    pub host: String,
    /// Browser URL.
    pub url: String,
    /// The instance's own Secret of read-only deploy keys (written by the service, never
    /// rendered): mounted only where git runs.
    pub credentials: String,
    /// The instance's own Secret with its owner's git identity (an SSH key registered to
    /// their Gitea account, known_hosts and a gitconfig; written by the service, never
    /// rendered): mounted only into the code-server container.
    pub git_identity: String,
}

/// The namespace older template sets put their per-instance access policy in.
const RETIRED_GATEWAY_NAMESPACE: &str = "istio-system";

/// Who may reach the instance, as the retired per-instance access policy named it.
///
/// NB: kept so that older template sets that still render that policy (an Istio
/// AuthorizationPolicy reading `access.*`) keep rendering: strict undefined values would
/// refuse the whole set otherwise. The render leaves such a policy out of what is applied
/// (the service itself decides who reaches a workspace), so nothing here grants access.
#[derive(Debug, Clone, Serialize)]
pub struct AccessValues {
    /// JWT_ISSUER, or empty when it is not configured.
    pub issuer: String,
    /// The owner's token `sub` as given (any characters), or empty when unknown.
    pub sub: String,
    /// `<issuer>/<sub>` as Istio named the owner; empty when the `sub` is unknown.
    /// NB: never checked or applied (without JWT_ISSUER it is `/<sub>`): it only keeps
    /// an older template's `required(access.principal, ...)` rendering.
    pub principal: String,
    /// The host forms a request for the instance may carry: the host, and the host
    /// with any port (`<host>:*`, Istio's prefix match).
    pub hosts: Vec<String>,
    /// Namespace of the ingress gateway, where that policy lived (Istio's default; the
    /// GATEWAY_NAMESPACE setting is gone with the policy).
    pub gateway_namespace: String,
}

impl AccessValues {
    pub(super) fn build(settings: &InstanceSettings, sub: Option<&str>, host: &str) -> Self {
        let issuer = settings.jwt_issuer.clone().unwrap_or_default();
        let sub = sub.unwrap_or_default().to_owned();
        // NB: no `sub` stops a render any more (a wildcard or a control character made
        // the old policy unsafe): the policy that names it is never applied.
        let principal = if sub.is_empty() {
            String::new()
        } else {
            format!("{issuer}/{sub}")
        };
        Self {
            issuer,
            sub,
            principal,
            hosts: vec![host.to_owned(), format!("{host}:*")],
            gateway_namespace: RETIRED_GATEWAY_NAMESPACE.to_owned(),
        }
    }
}

/// A repository, as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct RepoValues {
    /// Gitea owner.
    pub owner: String,
    /// Repository name.
    pub name: String,
    /// Clone URL.
    pub clone_url: String,
    /// Directory under the workspace (the name; `owner-name` when two repos share a name).
    pub path: String,
    /// The URL git fetches: Gitea's SSH URL when known, else the clone URL.
    pub fetch_url: String,
    /// The file of the repository's deploy key in the credentials Secret.
    pub key: String,
}

/// CPU and memory.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceValues {
    /// CPU quantity.
    pub cpu: String,
    /// Memory quantity.
    pub memory: String,
}

/// Requests and limits of the code-server container.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    /// Requests.
    pub requests: ResourceValues,
    /// Limits.
    pub limits: ResourceValues,
}

/// The workspace volume.
#[derive(Debug, Clone, Serialize)]
pub struct StorageValues {
    /// Requested size.
    pub size: String,
    /// Storage class; empty means the cluster default.
    pub class: String,
    /// The most `resizeStorage` may grow the volume to (`storage.maxSize`), if set.
    #[serde(skip)]
    pub max_size: Option<String>,
}

/// Everything a template may use.
#[derive(Debug, Clone, Serialize)]
pub struct Values {
    /// The owner.
    pub user: UserValues,
    /// Object names, host and URL.
    pub instance: InstanceValues,
    /// Namespace of every object.
    pub namespace: String,
    /// What the retired per-instance access policy named (for older template sets).
    pub access: AccessValues,
    /// Repositories, in the order they were added.
    pub repos: Vec<RepoValues>,
    /// The repository list as JSON, for the PVC's instance record annotation.
    pub repos_json: String,
    /// One `path key url` line per repository: the clone script's REPOS environment
    /// variable.
    pub clone_list: String,
    /// code-server image.
    pub image: String,
    /// Requests and limits.
    pub resources: Resources,
    /// Workspace volume.
    pub storage: StorageValues,
    /// The instance's workspace profile (`profile.name`, `profile.displayName`, ...);
    /// `image`, `resources` and `storage` above already hold what it sets.
    pub profile: super::ProfileValues,
    /// The standard labels every object carries.
    pub labels: BTreeMap<String, String>,
    /// The labels that select the instance's pod.
    pub selector_labels: BTreeMap<String, String>,
    /// The standard annotations every object carries.
    pub annotations: BTreeMap<String, String>,
    /// Most repositories one instance may hold (`limits.repositoriesPerInstance`).
    #[serde(skip)]
    pub repository_limit: usize,
    /// Whether the owner gets a git identity of their own (`gitIdentity.enabled`).
    #[serde(skip)]
    pub git_identity: bool,
    /// The admin's values (values.yaml, values files, --set), free-form. Shared: every
    /// instance rendered without `--set` uses the template set's own copy.
    #[serde(skip)]
    pub extra: Arc<Value>,
}
