//! Mutations.

use std::time::Instant;

use async_graphql::{Context, Object};

use super::{
    ApiError, CodeServerInstance, ProvisionResult, args,
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

    /// Stops the caller's instance; the workspace volume is kept.
    async fn stop_code_server(&self, ctx: &Context<'_>, id: String) -> Result<bool, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        services(ctx)?
            .reconciler
            .stop(&owner(identity), &id)
            .await?;
        Ok(true)
    }

    /// Starts the caller's stopped instance; with `wait: false` it answers as soon as the
    /// pod is created (PENDING) instead of waiting for readiness.
    async fn start_code_server(
        &self,
        ctx: &Context<'_>,
        id: String,
        #[graphql(default_with = "Some(true)")] wait: Option<bool>,
    ) -> Result<CodeServerInstance, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let instance = services(ctx)?
            .reconciler
            .start_with(&owner(identity), &id, wait.unwrap_or(true))
            .await?;
        Ok(instance.into())
    }

    /// Deletes the caller's instance completely, workspace volume included.
    async fn delete_code_server(&self, ctx: &Context<'_>, id: String) -> Result<bool, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let services = services(ctx)?;
        services.reconciler.delete(&owner(identity), &id).await?;
        Ok(true)
    }

    /// Pulls the latest changes of the caller's instance's repositories.
    async fn sync_repository(&self, ctx: &Context<'_>, id: String) -> Result<bool, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        services(ctx)?
            .reconciler
            .sync(&owner(identity), &id)
            .await?;
        Ok(true)
    }
}
