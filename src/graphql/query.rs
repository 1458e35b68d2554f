//! Queries.

use async_graphql::{Context, Object};

use super::{ApiError, Repository, Services};
use crate::auth::Identity;

/// `type Query`.
pub struct Query;

/// The authenticated caller, or `unauthorized`.
pub(super) fn caller<'c>(ctx: &Context<'c>) -> Result<&'c Identity, ApiError> {
    ctx.data_opt::<Identity>().ok_or(ApiError::Unauthorized)
}

/// The shared services.
pub(super) fn services<'c>(ctx: &Context<'c>) -> Result<&'c Services, ApiError> {
    ctx.data::<Services>().map_err(|_| {
        tracing::error!("schema built without its services");
        ApiError::Internal
    })
}

/// The caller's token, which Gitea needs; callers identified by forwarded headers only
/// have none, and Gitea would refuse them.
pub(super) fn token(identity: &Identity) -> Result<&str, ApiError> {
    identity
        .token
        .as_deref()
        .ok_or(ApiError::RepositoryAccessDenied)
}

#[Object]
impl Query {
    /// The Gitea repositories the caller can read.
    async fn my_repositories(&self, ctx: &Context<'_>) -> Result<Vec<Repository>, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        let repos = services.gitea.repositories(token(identity)?).await?;
        Ok(repos.into_iter().map(Repository::from).collect())
    }
}
