//! Mutations.

use std::time::Instant;

use async_graphql::{Context, ErrorExtensions, Object};

use crate::instance::StopReason;

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
    /// objects are applied (PENDING for a new pod) instead of waiting for readiness.
    async fn provision_code_server(
        &self,
        ctx: &Context<'_>,
        repo_owner: String,
        repo_name: String,
        #[graphql(default_with = "Some(true)")] wait: Option<bool>,
    ) -> Result<ProvisionResult, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        let repo = readable_repo(services, identity, &repo_owner, &repo_name).await?;
        let started = Instant::now();
        let result = services
            .reconciler
            .provision_with(&owner(identity), repo, wait.unwrap_or(true))
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
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let services = services(ctx)?;
        let target = acting_owner(services, identity, &id, "extend").await?;
        let instance = services.reconciler.extend(&target, &id, hours).await?;
        Ok(instance.into())
    }

    /// Starts the caller's stopped instance (admins: any instance); with `wait: false` it
    /// answers as soon as the pod is created (PENDING) instead of waiting for readiness.
    async fn start_code_server(
        &self,
        ctx: &Context<'_>,
        id: String,
        #[graphql(default_with = "Some(true)")] wait: Option<bool>,
    ) -> Result<CodeServerInstance, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let services = services(ctx)?;
        let target = acting_owner(services, identity, &id, "start").await?;
        let checked = services
            .reconciler
            .start_with(&target, &id, wait.unwrap_or(true))
            .await?;
        notice_lost(ctx, &checked.lost);
        Ok(checked.value.into())
    }

    /// Deletes the caller's instance (admins: any instance) completely, workspace volume
    /// included.
    async fn delete_code_server(&self, ctx: &Context<'_>, id: String) -> Result<bool, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let services = services(ctx)?;
        let target = acting_owner(services, identity, &id, "delete").await?;
        services.reconciler.delete(&target, &id).await?;
        Ok(true)
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

/// Tells the caller, next to the answer, which recorded repositories were not pulled
/// because Gitea says they may no longer read them.
fn notice_lost(ctx: &Context<'_>, lost: &[String]) {
    if let Some(notice) = ApiError::access_lost(lost) {
        ctx.add_error(notice.extend().into_server_error(ctx.item.pos));
    }
}
