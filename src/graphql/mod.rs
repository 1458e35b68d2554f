//! The GraphQL API: the spec's schema, with identity and arguments checked here and the
//! work done by the reconciler. The HTTP layer authenticates each request and attaches the
//! caller's [`Identity`](crate::auth::Identity) as request data; resolvers read it with
//! `ctx.data_opt`, and a request without one is answered `unauthorized`.

mod args;
mod error;
mod extension;
mod query;
mod types;

use async_graphql::{EmptyMutation, EmptySubscription, Schema};

pub use self::{
    error::{ApiError, Code, error_chain},
    extension::RequestMetrics,
    query::Query,
    types::{CodeServerInstance, InstanceStats, InstanceStatus, ProvisionResult, Repository},
};
use crate::{gitea::GiteaClient, metrics::Metrics};

/// The deepest selection accepted (GraphiQL's introspection query needs 13).
pub const MAX_DEPTH: usize = 16;
/// The largest query complexity accepted (one point per field).
pub const MAX_COMPLEXITY: usize = 2_000;

/// The schema served at `/graphql`.
pub type AppSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// What resolvers need, shared by every request.
#[derive(Clone, Debug)]
pub struct Services {
    /// Gitea, called with the caller's token.
    pub gitea: GiteaClient,
    /// The realm role of admins.
    pub admin_role: String,
    /// The service's metrics.
    pub metrics: Metrics,
}

/// Builds the schema with its limits and the request-latency metric.
pub fn schema(services: Services) -> AppSchema {
    let metrics = services.metrics.clone();
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .data(services)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(RequestMetrics::new(metrics))
        .finish()
}
