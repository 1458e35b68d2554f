//! The GraphQL API: the spec's schema, with identity and arguments checked here and the
//! work done by the reconciler. The HTTP layer authenticates each request and attaches the
//! caller's [`Identity`](crate::auth::Identity) as request data; resolvers read it with
//! `ctx.data_opt`, and a request without one is answered `unauthorized`.

mod admin;
mod args;
mod convert;
mod error;
mod extension;
pub mod limits;
mod mutation;
mod query;
mod rate;
mod subscription;
mod types;

use std::sync::Arc;

use async_graphql::Schema;

pub use self::{
    convert::{owner, record_stats},
    error::{ApiError, Code, error_chain, redact},
    extension::RequestMetrics,
    mutation::Mutation,
    query::Query,
    subscription::{
        DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER, DEFAULT_SUBSCRIPTION_TIMEOUT, ProgressEvent,
        ProgressKind, Subscription, SubscriptionLimits,
    },
    types::{
        CodeServerConnection, CodeServerEdge, CodeServerInstance, InstanceEvent, InstanceStats,
        InstanceStatus, PageInfo, PlanAction, PlanResult, PlanStep, ProvisionResult, RenderResult,
        Repository, TemplateRefusal, TemplateSet, WorkspaceRepository,
    },
};
use crate::{gitea::GiteaClient, http::ReadyCheck, metrics::Metrics, reconcile::Reconciler};

/// The deepest selection accepted (GraphiQL's introspection query needs 13).
pub const MAX_DEPTH: usize = 16;
/// The largest query complexity accepted (one point per field).
pub const MAX_COMPLEXITY: usize = 2_000;

/// The schema served at `/graphql`.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// What resolvers need, shared by every request.
#[derive(Clone)]
pub struct Services {
    /// The lifecycle operations.
    pub reconciler: Arc<Reconciler>,
    /// Gitea, called with the caller's token.
    pub gitea: GiteaClient,
    /// The realm role of admins.
    pub admin_role: String,
    /// The service's metrics.
    pub metrics: Metrics,
    /// Whether the service can work (the `health` query).
    pub ready: ReadyCheck,
    /// The active template set (the `templates` query).
    pub templates: crate::reload::TemplatesReport,
    /// Open subscriptions per caller and their lifetime.
    pub subscriptions: SubscriptionLimits,
}

/// Builds the schema with its limits and the request-latency metric.
pub fn schema(services: Services) -> AppSchema {
    let metrics = services.metrics.clone();
    let mutations = services.reconciler.capacity().mutations();
    Schema::build(Query, Mutation, Subscription)
        .data(services)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(RequestMetrics::new(metrics))
        .extension(rate::MutationRate::new(mutations))
        .finish()
}
