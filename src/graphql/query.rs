//! Queries.

use async_graphql::{Context, Object};

use super::{
    ApiError, CodeServerConnection, CodeServerInstance, InstanceStats, InstanceStatus, PlanResult,
    RenderResult, Repository, Services, TemplateRefusal, TemplateSet, args,
    convert::{owner, record_stats},
};
use crate::{
    auth::Identity,
    values::{Owner, Repo},
};

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

/// The caller as Gitea is asked about them: the username for `Sudo`, the token (callers
/// identified by forwarded headers have none) for forwarding.
pub(super) fn gitea_caller(identity: &Identity) -> crate::gitea::Caller<'_> {
    crate::gitea::Caller {
        username: &identity.user_id,
        token: identity.token.as_deref(),
    }
}

/// Checks the arguments, then asks Gitea, as the caller, whether the caller may
/// read the repository; the answer gives the clone URL.
pub(super) async fn readable_repo(
    services: &Services,
    identity: &Identity,
    repo_owner: &str,
    repo_name: &str,
) -> Result<Repo, ApiError> {
    args::repository(repo_owner, repo_name)?;
    let found = services
        .gitea
        .repository(&gitea_caller(identity), repo_owner, repo_name)
        .await?;
    found.to_repo().map_err(|error| {
        tracing::warn!(%error, "gitea answered an unusable repository");
        ApiError::Internal
    })
}

/// The owner a dry run is for: the caller, or (admins only) the user named by `user_id`,
/// as the durable owner of that user's instance if there is one.
async fn dry_run_owner(
    services: &Services,
    identity: &Identity,
    user_id: Option<String>,
) -> Result<Owner, ApiError> {
    match user_id {
        Some(user) if user != identity.user_id => {
            args::admin(identity, &services.admin_role)?;
            if user.is_empty() || user.len() > crate::naming::MAX_USER_ID_LEN {
                return Err(ApiError::bad_input(
                    "userId",
                    "must be 1 to 1024 characters",
                ));
            }
            Ok(services.reconciler.named_owner(&user).await?)
        }
        _ => Ok(owner(identity)),
    }
}

/// Gitea's search pages 1, 2, ... until one comes back short, each charged to the request
/// and the caller; at most [`MAX_REPOSITORY_PAGES`](super::MAX_REPOSITORY_PAGES), after
/// which the caller is told to ask by page rather than handed part of the list.
async fn every_repository_page(
    ctx: &Context<'_>,
    services: &Services,
    caller: &crate::gitea::Caller<'_>,
) -> Result<Vec<crate::gitea::Repository>, ApiError> {
    use super::calls::{MAX_REPOSITORY_PAGES, REPOSITORY_PAGE_SIZE};
    let mut all = Vec::new();
    for page in 1..=MAX_REPOSITORY_PAGES {
        super::calls::charge(ctx, 1)?;
        let batch = services
            .gitea
            .provisionable_page(caller, page, REPOSITORY_PAGE_SIZE)
            .await?;
        let last = batch.len() < REPOSITORY_PAGE_SIZE;
        all.extend(batch);
        if last {
            return Ok(all);
        }
    }
    Err(ApiError::QueryTooComplex.with_reason(&format!(
        "more than {} repositories: list them by page (page, limit)",
        MAX_REPOSITORY_PAGES * REPOSITORY_PAGE_SIZE
    )))
}

#[Object]
impl Query {
    /// The caller's code-server instances.
    async fn my_code_servers(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<CodeServerInstance>, ApiError> {
        let identity = caller(ctx)?;
        let instances = services(ctx)?.reconciler.list(&owner(identity)).await?;
        Ok(instances.into_iter().map(Into::into).collect())
    }

    /// One of the caller's instances; null when there is no such instance of the caller's.
    async fn code_server(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<Option<CodeServerInstance>, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        match services(ctx)?.reconciler.get(&owner(identity), &id).await {
            Ok(instance) => Ok(Some(instance.into())),
            Err(crate::reconcile::Error::NotFound) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The status of one of the caller's instances.
    async fn code_server_status(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<InstanceStatus, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let status = services(ctx)?
            .reconciler
            .status(&owner(identity), &id)
            .await?;
        Ok(status.status)
    }

    /// The last `lines` (1 to 10,000; 100 by default) log lines of one of the caller's
    /// instances.
    async fn code_server_logs(
        &self,
        ctx: &Context<'_>,
        id: String,
        lines: Option<i32>,
    ) -> Result<String, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let lines = args::log_lines(lines)?;
        super::calls::charge(ctx, super::calls::LOGS_CALLS)?;
        Ok(services(ctx)?
            .reconciler
            .logs(&owner(identity), &id, i64::from(lines))
            .await?)
    }

    /// Whether the service can do its work (the Kubernetes API answers and the templates
    /// are loaded). Needs no authentication.
    async fn health(&self, ctx: &Context<'_>) -> Result<bool, ApiError> {
        let services = services(ctx)?;
        Ok((services.ready)().await.is_ok())
    }

    /// The template set in use: its revision (stamped on every rendered object), when
    /// and where it was loaded, and, for admins, why a newer set was refused.
    async fn templates(&self, ctx: &Context<'_>) -> Result<TemplateSet, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        let status = (services.templates)();
        let is_admin = args::admin(identity, &services.admin_role).is_ok();
        Ok(TemplateSet {
            revision: status.revision,
            loaded_at: status.loaded_at.to_string(),
            source: status.source,
            last_refusal: status
                .last_refusal
                .filter(|_| is_admin)
                .map(|r| TemplateRefusal {
                    at: r.at.to_string(),
                    problems: r.problems,
                }),
        })
    }

    /// The workspace profiles the caller may choose (admins: every one), in the order
    /// the admin declared them, with what an instance of each gets. Makes no call.
    async fn profiles(&self, ctx: &Context<'_>) -> Result<Vec<super::Profile>, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        let access = super::profiles::access(services, identity);
        let profiles = services.reconciler.profiles(&access)?;
        Ok(profiles.into_iter().map(Into::into).collect())
    }

    /// Totals over every instance (admin only).
    async fn instance_stats(&self, ctx: &Context<'_>) -> Result<InstanceStats, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        args::admin(identity, &services.admin_role)?;
        let stats = services.reconciler.stats().await?;
        record_stats(&services.metrics, &stats);
        Ok((&stats).into())
    }

    /// Every instance, as a cursor connection ordered by id (admin only): optionally only
    /// `user`'s or those in `status`; `first` (1 to 100, 20 by default) after the cursor
    /// `after`.
    async fn all_code_servers(
        &self,
        ctx: &Context<'_>,
        user: Option<String>,
        status: Option<InstanceStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CodeServerConnection, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        super::admin::all_code_servers(services, identity, user, status, first, after).await
    }

    /// The Gitea repositories the caller can provision: their own, their organisations',
    /// those they collaborate on, and public ones. With `page` (from 1) and `limit` (1 to
    /// 50, 50 by default), one page; without `page`, every page up to 1,000 repositories
    /// (more are refused: ask by page), read once per request however many ask.
    async fn my_repositories(
        &self,
        ctx: &Context<'_>,
        page: Option<i32>,
        limit: Option<i32>,
    ) -> Result<Vec<Repository>, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        let (page, limit) = args::repository_page(page, limit)?;
        let caller = gitea_caller(identity);
        let repos = match page {
            Some(page) => {
                super::calls::charge(ctx, 1)?;
                services
                    .gitea
                    .provisionable_page(&caller, page, limit)
                    .await?
            }
            None => {
                super::calls::repositories_once(ctx, || {
                    every_repository_page(ctx, services, &caller)
                })
                .await?
            }
        };
        Ok(repos.into_iter().map(Repository::from).collect())
    }

    /// Dry run: the manifests the caller's instance with this repository would have.
    /// Admins may name another user with `userId`; `profile` renders it on that profile
    /// (one the caller may use; by default the recorded one). Creates nothing.
    async fn render_code_server(
        &self,
        ctx: &Context<'_>,
        repo_owner: String,
        repo_name: String,
        user_id: Option<String>,
        profile: Option<String>,
    ) -> Result<RenderResult, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        super::profiles::check(services, identity, profile.as_deref())?;
        let target = dry_run_owner(services, identity, user_id).await?;
        super::calls::charge(ctx, 1)?;
        let repo = readable_repo(services, identity, &repo_owner, &repo_name).await?;
        let objects = services
            .reconciler
            .render_with_profile(&target, repo, profile.as_deref())
            .await?;
        let manifests = crate::cli::to_yaml(&objects).map_err(|error| {
            tracing::error!(%error, "rendered objects do not serialise");
            ApiError::Internal
        })?;
        Ok(RenderResult {
            manifests,
            objects: objects
                .iter()
                .map(|o| crate::render::object_label(&o.object))
                .collect(),
        })
    }

    /// Dry run: what provisioning this repository would change, per object, with the JSON
    /// patch of each update. Admins may name another user with `userId`; `profile` plans
    /// the change to that profile (see `renderCodeServer`). Changes nothing.
    async fn plan_code_server(
        &self,
        ctx: &Context<'_>,
        repo_owner: String,
        repo_name: String,
        user_id: Option<String>,
        profile: Option<String>,
    ) -> Result<PlanResult, ApiError> {
        let identity = caller(ctx)?;
        let services = services(ctx)?;
        super::profiles::check(services, identity, profile.as_deref())?;
        let target = dry_run_owner(services, identity, user_id).await?;
        super::calls::charge(ctx, 1)?;
        let repo = readable_repo(services, identity, &repo_owner, &repo_name).await?;
        let plan = services
            .reconciler
            .plan_with_profile(&target, repo, profile.as_deref())
            .await?;
        Ok((&plan).into())
    }
}
