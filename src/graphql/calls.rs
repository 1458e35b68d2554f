//! What a read may spend on Kubernetes and Gitea: each request carries a tally of the calls
//! its fields made ([`RequestCalls`], at most [`MAX_CALLS_PER_REQUEST`]), and each caller a
//! token bucket of such calls ([`ReadBudget`], [`DEFAULT_READ_CALLS_PER_SECOND`] with bursts
//! of [`DEFAULT_READ_CALLS_BURST`]), so one caller's reads spend their own budget and
//! never the replica's shared Kubernetes rate, which the service's writes, cache re-lists
//! and Lease renewals need.
//!
//! The static caps on the document ([`super::limits`]) refuse a request that asks for too
//! many such fields before anything runs; what is charged here is what the fields really
//! call (an `events` field over many instances, Gitea's search pages). The events of an
//! instance, and the caller's whole repository list, are read once per request, however
//! many fields ask for them.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU32, Ordering},
    },
};

use async_graphql::{
    Context, Request, ServerResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest},
};
use tokio::sync::OnceCell;

use super::{ApiError, InstanceEvent};
use crate::{
    auth::Identity,
    rate_limit::{KeyedRateLimit, Rate},
};

/// Sustained calls to Kubernetes or Gitea per second that one caller's reads may make.
pub const DEFAULT_READ_CALLS_PER_SECOND: f64 = 5.0;
/// Calls to Kubernetes or Gitea one caller's reads may make at once.
pub const DEFAULT_READ_CALLS_BURST: u32 = 40;
/// The most calls to Kubernetes or Gitea the fields of one request may make.
pub const MAX_CALLS_PER_REQUEST: u32 = 40;
/// The most Gitea search pages `myRepositories` reads in one request (without `page`).
pub const MAX_REPOSITORY_PAGES: usize = 20;
/// The repositories of one Gitea search page.
pub const REPOSITORY_PAGE_SIZE: usize = 50;

/// Calls to Kubernetes an instance's events take (its pod's and its volume's).
pub(super) const EVENTS_CALLS: u32 = 2;
/// Calls to Kubernetes a log read may take (the log, and the previous one).
pub(super) const LOGS_CALLS: u32 = 2;

/// Each caller's bucket of calls, shared by every request (schema data).
pub(crate) struct ReadBudget {
    limit: KeyedRateLimit,
}

impl ReadBudget {
    /// The default budget ([`DEFAULT_READ_CALLS_PER_SECOND`], [`DEFAULT_READ_CALLS_BURST`]).
    pub(crate) fn new() -> Self {
        let rate =
            Rate::new(DEFAULT_READ_CALLS_PER_SECOND, DEFAULT_READ_CALLS_BURST).unwrap_or_default();
        Self {
            limit: KeyedRateLimit::new(rate),
        }
    }
}

/// The events of one instance, read at most once per request.
type EventsOnce = Arc<OnceCell<Result<Vec<InstanceEvent>, ApiError>>>;

/// What one request's fields have called so far (request data).
#[derive(Default)]
pub(super) struct RequestCalls {
    spent: AtomicU32,
    events: Mutex<HashMap<String, EventsOnce>>,
    repositories: OnceCell<Result<Vec<crate::gitea::Repository>, ApiError>>,
}

/// Charges `calls` to the request and to the caller's budget, or says why not.
pub(super) fn charge(ctx: &Context<'_>, calls: u32) -> Result<(), ApiError> {
    let identity = ctx.data_opt::<Identity>().ok_or(ApiError::Unauthorized)?;
    if let Some(request) = ctx.data_opt::<RequestCalls>() {
        let before = request.spent.fetch_add(calls, Ordering::SeqCst);
        if before.saturating_add(calls) > MAX_CALLS_PER_REQUEST {
            tracing::info!(user = %identity.user_id, "request call limit reached");
            return Err(ApiError::QueryTooComplex.with_reason(&format!(
                "the request needs more than {MAX_CALLS_PER_REQUEST} calls to the cluster or Gitea"
            )));
        }
    }
    if let Some(budget) = ctx.data_opt::<ReadBudget>() {
        let key = identity.sub.as_deref().unwrap_or(&identity.user_id);
        if !budget.limit.try_take(key, calls) {
            tracing::info!(user = %identity.user_id, "read call rate limit reached");
            let rate = budget.limit.rate();
            return Err(ApiError::RateLimited.with_reason(&format!(
                "reads that call the cluster or Gitea are limited to {} per second per caller (bursts of {})",
                rate.qps(),
                rate.burst()
            )));
        }
    }
    Ok(())
}

/// The events of instance `id`, read with `read` (and charged) at most once per request.
pub(super) async fn events_once<F, Fut>(
    ctx: &Context<'_>,
    id: &str,
    read: F,
) -> Result<Vec<InstanceEvent>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<InstanceEvent>, ApiError>>,
{
    let Some(request) = ctx.data_opt::<RequestCalls>() else {
        charge(ctx, EVENTS_CALLS)?;
        return read().await;
    };
    let once = {
        // NB: never held across an await; a poisoned map is still whole.
        let mut events = request
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        events.entry(id.to_owned()).or_default().clone()
    };
    once.get_or_init(|| async {
        charge(ctx, EVENTS_CALLS)?;
        read().await
    })
    .await
    .clone()
}

/// Every repository of the caller, read with `read` at most once per request.
pub(super) async fn repositories_once<F, Fut>(
    ctx: &Context<'_>,
    read: F,
) -> Result<Vec<crate::gitea::Repository>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<crate::gitea::Repository>, ApiError>>,
{
    match ctx.data_opt::<RequestCalls>() {
        Some(request) => request.repositories.get_or_init(read).await.clone(),
        None => read().await,
    }
}

/// The extension factory that gives each request its [`RequestCalls`].
pub(super) struct CallTally;

impl ExtensionFactory for CallTally {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CallTally)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for CallTally {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        next.run(ctx, request.data(RequestCalls::default())).await
    }
}
