//! The schema and what its resolvers share.

use std::sync::Arc;

use async_graphql::Schema;

use super::{
    Mutation, Query, RequestMetrics, Subscription, SubscriptionLimits,
    calls::{CallTally, ReadBudget},
    rate::MutationRate,
};
use crate::{
    gitea::GiteaClient, metrics::Metrics, ready::ReadyCheck, reconcile::Reconciler,
    reload::TemplatesReport,
};

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
    pub templates: TemplatesReport,
    /// Open subscriptions per caller and their lifetime.
    pub subscriptions: SubscriptionLimits,
}

/// Builds the schema with its limits (each caller's budget of reads that call out among
/// them) and the request-latency metric.
pub fn schema(services: Services) -> AppSchema {
    let metrics = services.metrics.clone();
    let mutations = services.reconciler.capacity().mutations();
    Schema::build(Query, Mutation, Subscription)
        .data(services)
        .data(ReadBudget::new())
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(RequestMetrics::new(metrics))
        .extension(MutationRate::new(mutations))
        .extension(CallTally)
        .finish()
}
