//! `codeserver_graphql_request_duration_seconds{operation}`: the latency of each root field
//! (`myCodeServers`, `provisionCodeServer`, ...). The label is the schema's field name, never
//! the client's alias or operation name, so callers cannot grow the label set.

use std::{sync::Arc, time::Instant};

use async_graphql::{
    ServerResult, Value,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
};

use crate::metrics::Metrics;

/// The extension factory to register on the schema.
pub struct RequestMetrics {
    // NB: shared, not cloned: each request creates its extension, and `Metrics` is many
    // handles.
    metrics: Arc<Metrics>,
}

impl RequestMetrics {
    /// Records into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics: Arc::new(metrics),
        }
    }
}

impl ExtensionFactory for RequestMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RootFieldTimer {
            metrics: self.metrics.clone(),
        })
    }
}

struct RootFieldTimer {
    metrics: Arc<Metrics>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for RootFieldTimer {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // NB: only root fields are timed; nested fields pass straight through.
        if info.path_node.parent.is_some() {
            return next.run(ctx, info).await;
        }
        let name = if info.is_for_introspection {
            "introspection"
        } else {
            info.name
        }
        .to_owned();
        let started = Instant::now();
        let result = next.run(ctx, info).await;
        self.metrics
            .observe_graphql(&name, started.elapsed().as_secs_f64());
        result
    }
}
