//! The per-user mutation rate limit (MUTATIONS_PER_MINUTE): each mutation field a caller
//! asks for takes one call from that caller's bucket; with the bucket empty the field is
//! answered `RATE_LIMITED` and its resolver does not run.

use std::sync::Arc;

use async_graphql::{
    ErrorExtensions, Pos, ServerResult, Value,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
};

use super::ApiError;
use crate::{auth::Identity, capacity::RateLimit};

/// The extension factory to register on the schema.
pub struct MutationRate {
    limit: Arc<RateLimit>,
}

impl MutationRate {
    /// Charges mutations to `limit`.
    pub fn new(limit: Arc<RateLimit>) -> Self {
        Self { limit }
    }
}

impl ExtensionFactory for MutationRate {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Charge {
            limit: self.limit.clone(),
        })
    }
}

struct Charge {
    limit: Arc<RateLimit>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for Charge {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let root_mutation = info.path_node.parent.is_none() && info.parent_type == "Mutation";
        // NB: an unauthenticated caller is refused by the resolver itself; only callers
        // with an identity have a bucket (keyed by the stable `sub` where there is one).
        if root_mutation && let Some(identity) = ctx.data_opt::<Identity>() {
            let key = identity.sub.as_deref().unwrap_or(&identity.user_id);
            if !self.limit.try_take(key) {
                tracing::info!(user = %identity.user_id, "mutation rate limit reached");
                let error = ApiError::RateLimited.extend();
                return Err(error.into_server_error(Pos::default()));
            }
        }
        next.run(ctx, info).await
    }
}
