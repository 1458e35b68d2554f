//! Mutations.

use std::time::Instant;

use async_graphql::{Context, ErrorExtensions, Object};

use crate::{instance::StopReason, reconcile::StartOptions};

use super::{
    ApiError, CodeServerInstance, ProvisionResult,
    admin::{acting, acting_owner},
    args,
    convert::owner,
    query::{caller, readable_repo, services},
};

/// `type Mutation`.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Provisions (or reuses) the caller's instance with this repository cloned in its
    /// workspace. Gitea decides access with the caller's own token; nothing is created
    /// when it refuses or cannot be reached. With `wait: false` it answers as soon as the
    /// objects are applied (PENDING for a new pod) instead of waiting for readiness. With
    /// `profile` the instance uses that workspace profile from now on (see `profiles`;
    /// on a running instance it is recorded and applies at the next start); without, it
    /// keeps its own (the default for a new one).
    async fn provision_code_server(
        &self,
        ctx: &Context<'_>,
        repo_owner: String,
        repo_name: String,
        #[graphql(default_with = "Some(true)")] wait: Option<bool>,
        profile: Option<String>,
    ) -> Result<ProvisionResult, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        // NB: before Gitea is asked: a refused profile costs nothing.
        let access = super::profiles::check(services, identity, profile.as_deref())?;
        let repo = readable_repo(services, identity, &repo_owner, &repo_name).await?;
        let started = Instant::now();
        let opts = StartOptions {
            wait: wait.unwrap_or(true),
            profile,
            access,
        };
        let result = services
            .reconciler
            .provision_as(&owner(identity), repo, &opts)
            .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        services
            .metrics
            .observe_provision(outcome, started.elapsed().as_secs_f64());
        Ok(result?.into())
    }

    /// Stops the caller's instance (admins: any instance); the workspace volume is kept.
    async fn stop_code_server(&self, ctx: &Context<'_>, id: String) -> Result<bool, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let services = services(ctx)?;
        let (target, by_admin) = acting(services, identity, &id, "stop").await?;
        let reason = if by_admin {
            StopReason::Admin
        } else {
            StopReason::User
        };
        services.reconciler.stop_as(&target, &id, reason).await?;
        Ok(true)
    }

    /// Keeps the caller's running instance (admins: any instance) alive for `hours` from
    /// now: no idle stop before `keepAliveUntil`, whatever the activity. At most
    /// IDLE_MAX_EXTENSION (8 hours by default); a later call replaces the earlier one, and
    /// a stop or a start ends it.
    async fn extend_code_server(
        &self,
        ctx: &Context<'_>,
        id: String,
        hours: i32,
    ) -> Result<CodeServerInstance, ApiError> {
        let (services, target) = on_instance(ctx, &id, "extend").await?;
        let instance = services.reconciler.extend(&target, &id, hours).await?;
        Ok(instance.into())
    }

    /// Grows the workspace volume of the caller's instance (admins: any instance) to
    /// `size`, a Kubernetes quantity such as `20Gi`: only larger than it is, at most the
    /// instance's maximum (`storage.maxSize`, or the namespace's LimitRange for volumes,
    /// whichever is smaller), and only where the volume's StorageClass allows expansion.
    /// `storage.requested` shows the new size at once; `storage.capacity` follows once the
    /// volume has grown (`storage.resizePending` while its file system waits for the next
    /// start). A refusal changes nothing.
    async fn resize_storage(
        &self,
        ctx: &Context<'_>,
        id: String,
        size: String,
    ) -> Result<CodeServerInstance, ApiError> {
        let (services, target) = on_instance(ctx, &id, "resize storage").await?;
        let instance = services
            .reconciler
            .resize_storage(&target, &id, &size)
            .await?;
        Ok(instance.into())
    }

    /// Starts the caller's stopped instance (admins: any instance); with `wait: false` it
    /// answers as soon as the pod is created (PENDING) instead of waiting for readiness.
    /// With `profile` the instance uses that workspace profile from this start on (see
    /// `profiles`); without, it keeps its own.
    async fn start_code_server(
        &self,
        ctx: &Context<'_>,
        id: String,
        #[graphql(default_with = "Some(true)")] wait: Option<bool>,
        profile: Option<String>,
    ) -> Result<CodeServerInstance, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let services = services(ctx)?;
        let access = super::profiles::check(services, identity, profile.as_deref())?;
        let target = acting_owner(services, identity, &id, "start").await?;
        let opts = StartOptions {
            wait: wait.unwrap_or(true),
            profile,
            access,
        };
        let checked = services.reconciler.start_as(&target, &id, &opts).await?;
        notice_lost(ctx, &checked.lost);
        Ok(checked.value.into())
    }

    /// Deletes the caller's instance (admins: any instance): the pod, its routes, policies
    /// and keys. Without DELETE_RETENTION, or with `purge: true`, the workspace volume
    /// goes too, at once; otherwise it is kept (status DELETED) until `purgeAt`, and
    /// `restoreCodeServer` brings it back. Deleting a DELETED instance purges it with
    /// `purge: true`, and changes nothing without.
    async fn delete_code_server(
        &self,
        ctx: &Context<'_>,
        id: String,
        #[graphql(default_with = "Some(false)")] purge: Option<bool>,
    ) -> Result<bool, ApiError> {
        let (services, target) = on_instance(ctx, &id, "delete").await?;
        services
            .reconciler
            .delete_with(&target, &id, purge.unwrap_or(false))
            .await?;
        Ok(true)
    }

    /// Brings the caller's DELETED instance (admins: any instance) back before its
    /// `purgeAt`: the same workspace volume, STOPPED; `startCodeServer` starts it. An
    /// instance that is not deleted is answered as it is; a purged one is `NOT_FOUND`.
    async fn restore_code_server(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<CodeServerInstance, ApiError> {
        let (services, target) = on_instance(ctx, &id, "restore").await?;
        let instance = services.reconciler.restore(&target, &id).await?;
        Ok(instance.into())
    }

    /// Replaces the git identity of the caller's instance: a new SSH key is registered to
    /// their Gitea account before the old one is removed. The answer shows the new
    /// fingerprint at once; a running workspace sees the new key within about a minute
    /// (the kubelet refreshes mounted Secrets on its sync period), and its next git command
    /// after that uses it. Only the owner can rotate (the key goes to their account).
    async fn rotate_git_identity(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<CodeServerInstance, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let services = services(ctx)?;
        let instance = services
            .reconciler
            .rotate_git_identity(&owner(identity), &id)
            .await?;
        Ok(instance.into())
    }

    /// Pulls the latest changes of the caller's instance's repositories.
    async fn sync_repository(&self, ctx: &Context<'_>, id: String) -> Result<bool, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let checked = services(ctx)?
            .reconciler
            .sync_checked(&owner(identity), &id)
            .await?;
        notice_lost(ctx, &checked.lost);
        Ok(true)
    }
}

/// The services and the owner an operation on instance `id` acts for: the caller, or, for
/// an admin, the instance's owner (see [`acting_owner`]).
async fn on_instance<'c>(
    ctx: &Context<'c>,
    id: &str,
    action: &str,
) -> Result<(&'c super::Services, crate::values::Owner), ApiError> {
    let identity = caller(ctx)?;
    args::instance_id(id)?;
    let services = services(ctx)?;
    let target = acting_owner(services, identity, id, action).await?;
    Ok((services, target))
}

/// Tells the caller, next to the answer, which recorded repositories were not pulled
/// because Gitea says they may no longer read them.
fn notice_lost(ctx: &Context<'_>, lost: &[String]) {
    if let Some(notice) = ApiError::access_lost(lost) {
        ctx.add_error(notice.extend().into_server_error(ctx.item.pos));
    }
}
