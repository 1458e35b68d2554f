//! The service's metrics: created and registered together, updated through one cloneable
//! [`Metrics`] value, encoded as Prometheus text.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets of `codeserver_provision_duration_seconds`, from the spec.
pub const PROVISION_BUCKETS: [f64; 6] = [5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Buckets of `codeserver_graphql_request_duration_seconds`.
pub const REQUEST_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The `user` label value of `codeserver_storage_used_bytes`: storage is reported in
/// aggregate, so that `/metrics` names no user.
pub const ALL_USERS: &str = "all";

/// Errors raised while registering or encoding metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric could not be created or registered (bad name, duplicate registration).
    #[error("failed to register metric {name}")]
    Register {
        /// The metric's name.
        name: &'static str,
        /// What prometheus reported.
        #[source]
        source: prometheus::Error,
    },
}

/// The service's metrics and the registry that exports them. Cloning is cheap and every clone
/// updates the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// `codeserver_instances_total{status}`: instances by status (PENDING, RUNNING, ...).
    pub instances: GaugeVec,
    /// `codeserver_provision_duration_seconds{result}`: time to provision an instance.
    pub provision_duration: HistogramVec,
    /// `codeserver_storage_used_bytes{user}`: storage used by all workspaces
    /// (`user="all"`).
    pub storage_used: GaugeVec,
    /// `codeserver_graphql_request_duration_seconds{operation}`: GraphQL latency.
    pub graphql_duration: HistogramVec,
    /// `codeserver_kube_requests_total{verb,resource,result}`: Kubernetes API calls.
    pub kube_requests: IntCounterVec,
    /// `codeserver_gitea_requests_total{result}`: Gitea API calls.
    pub gitea_requests: IntCounterVec,
    /// `codeserver_templates_reload_total{result}`: template directory reloads.
    pub templates_reload: IntCounterVec,
    /// `codeserver_idle_stops_total`: instances stopped for being idle.
    pub idle_stops: IntCounter,
    /// `codeserver_workspace_checks_total{decision}`: the gateway's checks of workspace
    /// requests, by decision (`allowed`, `login`, `unauthenticated`, `forbidden`,
    /// `unavailable`, `handoff`).
    pub workspace_checks: IntCounterVec,
    /// `codeserver_workspace_logins_total{result}`: browser logins that came back from the
    /// issuer, by result (`ok`, `refused`, `failed`).
    pub workspace_logins: IntCounterVec,
    /// `codeserver_running_instances_limit`: MAX_RUNNING_INSTANCES (0: no limit).
    pub running_limit: IntGauge,
    /// `codeserver_start_queue_length`: starts waiting for their turn.
    pub start_queue: IntGauge,
    /// `codeserver_cache_objects{kind}`: objects held by the watch-backed cache of each
    /// managed kind (`Pod`, `Job.batch`, ...).
    pub cache_objects: IntGaugeVec,
    /// `codeserver_prepull_nodes{state}`: nodes that should have the workspace images
    /// (`total`) and nodes that have them all (`ready`), as the Lease holder last saw.
    pub prepull_nodes: IntGaugeVec,
}

impl Metrics {
    /// Creates every metric and registers it in a fresh registry.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let instances = register(
            &registry,
            "codeserver_instances_total",
            GaugeVec::new(
                Opts::new(
                    "codeserver_instances_total",
                    "Total number of code-server instances by status",
                ),
                &["status"],
            ),
        )?;
        let provision_duration = register(
            &registry,
            "codeserver_provision_duration_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "codeserver_provision_duration_seconds",
                    "Time to provision a code-server instance",
                )
                .buckets(PROVISION_BUCKETS.to_vec()),
                &["result"],
            ),
        )?;
        let storage_used = register(
            &registry,
            "codeserver_storage_used_bytes",
            GaugeVec::new(
                Opts::new(
                    "codeserver_storage_used_bytes",
                    "Storage used by user workspaces",
                ),
                &["user"],
            ),
        )?;
        let graphql_duration = register(
            &registry,
            "codeserver_graphql_request_duration_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "codeserver_graphql_request_duration_seconds",
                    "GraphQL request latency by operation",
                )
                .buckets(REQUEST_BUCKETS.to_vec()),
                &["operation"],
            ),
        )?;
        let kube_requests = register(
            &registry,
            "codeserver_kube_requests_total",
            IntCounterVec::new(
                Opts::new(
                    "codeserver_kube_requests_total",
                    "Kubernetes API requests by verb, resource and result",
                ),
                &["verb", "resource", "result"],
            ),
        )?;
        let gitea_requests = register(
            &registry,
            "codeserver_gitea_requests_total",
            IntCounterVec::new(
                Opts::new(
                    "codeserver_gitea_requests_total",
                    "Gitea API requests by result",
                ),
                &["result"],
            ),
        )?;
        let templates_reload = register(
            &registry,
            "codeserver_templates_reload_total",
            IntCounterVec::new(
                Opts::new(
                    "codeserver_templates_reload_total",
                    "Template directory reloads by result",
                ),
                &["result"],
            ),
        )?;
        let idle_stops = register(
            &registry,
            "codeserver_idle_stops_total",
            IntCounter::new(
                "codeserver_idle_stops_total",
                "Instances stopped for being idle (their workspace volumes are kept)",
            ),
        )?;
        let workspace_checks = register(
            &registry,
            "codeserver_workspace_checks_total",
            IntCounterVec::new(
                Opts::new(
                    "codeserver_workspace_checks_total",
                    "Checks of workspace requests asked by the ingress gateway, by decision",
                ),
                &["decision"],
            ),
        )?;
        let workspace_logins = register(
            &registry,
            "codeserver_workspace_logins_total",
            IntCounterVec::new(
                Opts::new(
                    "codeserver_workspace_logins_total",
                    "Browser logins that came back from the issuer, by result",
                ),
                &["result"],
            ),
        )?;
        let running_limit = register(
            &registry,
            "codeserver_running_instances_limit",
            IntGauge::new(
                "codeserver_running_instances_limit",
                "Most instances that may run at once (MAX_RUNNING_INSTANCES; 0: no limit)",
            ),
        )?;
        let start_queue = register(
            &registry,
            "codeserver_start_queue_length",
            IntGauge::new(
                "codeserver_start_queue_length",
                "Instance starts waiting for one of MAX_CONCURRENT_STARTS",
            ),
        )?;
        let cache_objects = register(
            &registry,
            "codeserver_cache_objects",
            IntGaugeVec::new(
                Opts::new(
                    "codeserver_cache_objects",
                    "Objects held by the watch-backed cache of each managed kind",
                ),
                &["kind"],
            ),
        )?;
        let prepull_nodes = register(
            &registry,
            "codeserver_prepull_nodes",
            IntGaugeVec::new(
                Opts::new(
                    "codeserver_prepull_nodes",
                    "Nodes that should have every workspace image pulled ahead (total) and that have them (ready)",
                ),
                &["state"],
            ),
        )?;
        Ok(Self {
            registry,
            instances,
            provision_duration,
            storage_used,
            graphql_duration,
            kube_requests,
            gitea_requests,
            templates_reload,
            idle_stops,
            workspace_checks,
            workspace_logins,
            running_limit,
            start_queue,
            cache_objects,
            prepull_nodes,
        })
    }

    /// Sets the number of instances in `status`.
    pub fn set_instances(&self, status: &str, count: usize) {
        self.instances
            .with_label_values(&[status])
            .set(count as f64);
    }

    /// Records how long a provisioning took and whether it succeeded (`result`: `ok`/`error`).
    pub fn observe_provision(&self, result: &str, seconds: f64) {
        self.provision_duration
            .with_label_values(&[result])
            .observe(seconds);
    }

    /// Sets the storage used by all workspaces together.
    pub fn set_storage_used_total(&self, bytes: u64) {
        self.storage_used
            .with_label_values(&[ALL_USERS])
            .set(bytes as f64);
    }

    /// Records the latency of one GraphQL operation (a root field name, not client text).
    pub fn observe_graphql(&self, operation: &str, seconds: f64) {
        self.graphql_duration
            .with_label_values(&[operation])
            .observe(seconds);
    }

    /// Counts one Kubernetes API call.
    pub fn count_kube(&self, verb: &str, resource: &str, result: &str) {
        self.kube_requests
            .with_label_values(&[verb, resource, result])
            .inc();
    }

    /// Counts one Gitea API call (`result`: `ok`, `denied`, `error`, `unavailable`).
    pub fn count_gitea(&self, result: &str) {
        self.gitea_requests.with_label_values(&[result]).inc();
    }

    /// Counts one template reload (`result`: `ok`/`error`).
    pub fn count_templates_reload(&self, result: &str) {
        self.templates_reload.with_label_values(&[result]).inc();
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // NB: the text encoder fails only on metric families it cannot represent, which
        // registration already rules out; an encoding error leaves the output truncated,
        // which is the best a scrape endpoint can do.
        if let Err(error) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "failed to encode metrics");
        }
        out
    }

    /// The content type of [`Metrics::encode`]'s output.
    pub fn content_type(&self) -> String {
        TextEncoder::new().format_type().to_owned()
    }
}

fn register<M>(
    registry: &Registry,
    name: &'static str,
    metric: Result<M, prometheus::Error>,
) -> Result<M, MetricsError>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let metric = metric.map_err(|source| MetricsError::Register { name, source })?;
    registry
        .register(Box::new(metric.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_the_spec_names_labels_and_buckets() {
        let metrics = Metrics::new().unwrap();
        metrics.set_instances("RUNNING", 3);
        metrics.observe_provision("ok", 7.0);
        metrics.set_storage_used_total(1024);
        metrics.observe_graphql("myCodeServers", 0.02);
        metrics.count_kube("patch", "pods", "ok");
        metrics.count_gitea("denied");
        metrics.count_templates_reload("ok");
        let text = metrics.encode();
        for line in [
            "codeserver_instances_total{status=\"RUNNING\"} 3",
            "codeserver_provision_duration_seconds_bucket{result=\"ok\",le=\"5\"} 0",
            "codeserver_provision_duration_seconds_bucket{result=\"ok\",le=\"10\"} 1",
            "codeserver_provision_duration_seconds_bucket{result=\"ok\",le=\"300\"} 1",
            "codeserver_storage_used_bytes{user=\"all\"} 1024",
            "codeserver_graphql_request_duration_seconds_count{operation=\"myCodeServers\"} 1",
            "codeserver_kube_requests_total{resource=\"pods\",result=\"ok\",verb=\"patch\"} 1",
            "codeserver_gitea_requests_total{result=\"denied\"} 1",
            "codeserver_templates_reload_total{result=\"ok\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("codeserver_provision_duration_seconds_bucket"))
            .collect();
        assert_eq!(buckets.len(), 7, "six buckets and +Inf: {buckets:?}");
    }

    #[test]
    fn clones_share_series() {
        let metrics = Metrics::new().unwrap();
        let clone = metrics.clone();
        clone.set_storage_used_total(10);
        assert!(metrics.encode().contains("{user=\"all\"} 10"));
        metrics.set_storage_used_total(20);
        assert!(clone.encode().contains("{user=\"all\"} 20"));
        assert!(metrics.content_type().starts_with("text/plain"));
    }
}
