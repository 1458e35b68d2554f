//! From the reconciler's answers to the GraphQL types, and from its errors to the spec's
//! error messages (details are logged here, never sent).

use super::{
    ApiError, CodeServerInstance, InstanceStats, InstanceStatus, PlanAction, PlanResult, PlanStep,
    ProvisionResult, WorkspaceRepository, redact,
};
use crate::{
    auth::Identity,
    errors::error_chain,
    instance::Instance,
    metrics::Metrics,
    reconcile::{self, Action, Plan, Provisioned, Stats},
    values::Owner,
};

/// The reconciler's owner for the caller.
pub fn owner(identity: &Identity) -> Owner {
    Owner {
        user_id: identity.user_id.clone(),
        email: identity.email.clone(),
        sub: identity.sub.clone(),
        known_name: None,
        gitea_token: identity.token.clone().map(crate::secret::Secret::new),
    }
}

/// Sets `codeserver_instances_total` (every status, zero included) and
/// `codeserver_storage_used_bytes` from totals.
pub fn record_stats(metrics: &Metrics, stats: &Stats) {
    for status in InstanceStatus::ALL {
        let count = stats.by_status.get(&status).copied().unwrap_or(0);
        metrics.set_instances(status.as_str(), count);
    }
    // NB: in aggregate only: a label per user would publish every user's name on /metrics.
    metrics.set_storage_used_total(u64::try_from(stats.storage.ceil_units()).unwrap_or(0));
}

impl From<Instance> for CodeServerInstance {
    fn from(instance: Instance) -> Self {
        let (repo_owner, repo_name) = instance
            .primary_repo()
            .map(|r| (r.owner.clone(), r.name.clone()))
            .unwrap_or_default();
        Self {
            id: instance.id,
            user_id: instance.user_id,
            repo_name,
            repo_owner,
            url: instance.url,
            status: instance.status.status,
            // NB: the API server stamps every object it stores; an empty string only
            // shows for an object that was never stored, which the reconciler never returns.
            created_at: instance.created_at.unwrap_or_default(),
            last_accessed_at: instance.last_accessed_at.map(|t| t.to_string()),
            storage_used: instance.storage.map(|q| q.to_binary_si()),
            // NB: reasons quote the clone log and pod statuses, which may name internal
            // URLs (the clone URL, a registry); callers see them redacted.
            status_message: match instance.status.status {
                InstanceStatus::Running | InstanceStatus::Stopped => None,
                _ => instance.status.reason.as_deref().map(redact),
            },
            repositories: instance
                .repos
                .into_iter()
                .map(|r| WorkspaceRepository {
                    owner: r.owner,
                    name: r.name,
                    clone_url: r.clone_url,
                })
                .collect(),
            idle_stop_at: instance.idle_stop_at.map(|t| t.to_string()),
            restart_pending: instance.restart_pending,
            stop_reason: instance.stop_reason,
            keep_alive_until: instance.keep_alive_until.map(|t| t.to_string()),
            profile: instance.profile,
            git_identity: instance.git_identity.map(|g| super::types::GitIdentity {
                fingerprint: g.fingerprint,
                created_at: g.created_at,
            }),
            storage: super::types::WorkspaceStorage {
                requested: instance
                    .volume
                    .requested
                    .map_or_else(|| "0".to_owned(), |q| q.to_binary_si()),
                capacity: instance.volume.capacity.map(|q| q.to_binary_si()),
                resize_pending: instance.volume.resize_pending,
            },
            deleted_at: instance.deleted_at.map(|t| t.to_string()),
            purge_at: instance.purge_at.map(|t| t.to_string()),
        }
    }
}

impl From<Provisioned> for ProvisionResult {
    fn from(provisioned: Provisioned) -> Self {
        Self {
            instance: provisioned.instance.into(),
            message: redact(&provisioned.message),
            is_new: provisioned.is_new,
        }
    }
}

impl From<&Stats> for InstanceStats {
    fn from(stats: &Stats) -> Self {
        let count = |status| {
            let n = stats.by_status.get(&status).copied().unwrap_or(0);
            i32::try_from(n).unwrap_or(i32::MAX)
        };
        Self {
            total_instances: i32::try_from(stats.total).unwrap_or(i32::MAX),
            running_instances: count(InstanceStatus::Running),
            stopped_instances: count(InstanceStatus::Stopped),
            deleted_instances: count(InstanceStatus::Deleted),
            total_storage_used: stats.storage.to_binary_si(),
        }
    }
}

impl From<&Plan> for PlanResult {
    fn from(plan: &Plan) -> Self {
        let steps = plan
            .steps
            .iter()
            .map(|step| PlanStep {
                object: step.object.clone(),
                kind: step.kind.clone(),
                name: step.name.clone(),
                action: match &step.action {
                    Action::Create => PlanAction::Create,
                    Action::Update { .. } => PlanAction::Update,
                    Action::Unchanged => PlanAction::Unchanged,
                    Action::Recreate { .. } => PlanAction::Recreate,
                    Action::Prune => PlanAction::Prune,
                },
                patch: match &step.action {
                    Action::Update { patch } => serde_json::to_string(patch).ok(),
                    _ => None,
                },
                notes: step.notes.clone(),
            })
            .collect();
        Self {
            unchanged: plan.is_unchanged(),
            steps,
            text: plan.to_string(),
        }
    }
}

impl From<reconcile::Error> for ApiError {
    fn from(error: reconcile::Error) -> Self {
        use reconcile::Error as E;
        // NB: only reasons the service words itself, or that come from the instance's
        // own pod and Jobs, reach the caller (redacted of URLs); API server answers
        // (which name the service account, quotas, webhooks) and render failures stay in
        // the log.
        let answer = match &error {
            E::NotFound => return Self::InstanceNotFound,
            E::BeingDeleted => return Self::BeingDeleted,
            E::Deleted => return Self::Deleted,
            E::ProvisionOverDeleted => return Self::InstanceDeleted,
            E::NameTaken(_) => Self::InstanceNameTaken,
            E::SyncInProgress => return Self::SyncInProgress,
            E::TooManyRepositories(_) => return Self::RepositoryLimit(error.to_string()),
            E::AccessLost(_) => Self::RepositoryAccessDenied,
            E::Gitea(_) => {
                let E::Gitea(gitea) = error else {
                    return Self::Internal;
                };
                return Self::from(gitea);
            }
            E::Storage(_) => Self::StorageFailed,
            E::Instance(_) | E::Routing(_) => Self::InstanceFailed,
            E::NotReady(reason) => Self::PodNotReady.with_reason(reason),
            E::Sync(reason) => Self::SyncFailed.with_reason(reason),
            E::Render(_) | E::Values(_) | E::Degraded(_) | E::Kube { .. } => Self::Internal,
            E::CapacityReached { .. } => Self::CapacityReached,
            E::BadInput { argument, reason } => return Self::bad_input(argument, reason),
            E::Forbidden(reason) => return Self::Forbidden.with_reason(reason),
            E::CannotGrow(reason) => return Self::StorageCannotGrow.with_reason(reason),
        };
        tracing::warn!(error = %error_chain(&error), "operation failed");
        answer
    }
}
