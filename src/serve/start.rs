//! Building the service from its settings and running it until SIGTERM.

use std::{sync::Arc, time::Duration};

use super::{Parts, Routes, ServeError, assemble, kube_config};
use crate::{
    activity::{Culler, IdleSettings},
    auth::AuthSettings,
    capacity::{Capacity, CapacityGauges, CapacitySettings},
    config::ServeArgs,
    errors::error_chain,
    gate::GateSettings,
    gitea::{GiteaClient, GiteaSettings},
    graphql::record_stats,
    http::{self, ApiSettings},
    metrics::Metrics,
    reconcile::{Kinds, Reconciler, Timeouts},
    reload,
    values::InstanceSettings,
};

/// How often the instance and storage gauges are refreshed from the cluster.
pub const STATS_INTERVAL: Duration = Duration::from_secs(30);

/// Refreshes `codeserver_instances_total` and `codeserver_storage_used_bytes` every
/// `interval`, until the task is dropped.
pub async fn refresh_stats(reconciler: Arc<Reconciler>, metrics: Metrics, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match reconciler.stats().await {
            Ok(stats) => record_stats(&metrics, &stats),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "failed to refresh instance metrics")
            }
        }
    }
}

/// Where the service listens.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// `host:port` of the API.
    pub api: String,
    /// `host:port` of `/metrics`.
    pub metrics: String,
    /// `host:port` of the ext_authz check listener.
    pub ext_authz: String,
}

/// Serves `routes` on `addrs` until SIGTERM, then gives in-flight requests `grace` to
/// finish.
pub async fn run(routes: Routes, addrs: &Addresses, grace: Duration) -> Result<(), ServeError> {
    let api_listener = http::bind(&addrs.api).await?;
    let metrics_listener = http::bind(&addrs.metrics).await?;
    let check_listener = http::bind(&addrs.ext_authz).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _closed = stopped.wait_for(|stop| *stop).await;
    };
    let api = http::serve_with(
        api_listener,
        routes.api,
        wait(stopped.clone()),
        grace,
        routes.server,
    );
    let metrics = http::serve_with(
        metrics_listener,
        routes.metrics,
        wait(stopped.clone()),
        grace,
        routes.server,
    );
    let checks = http::serve_with(
        check_listener,
        routes.ext_authz,
        wait(stopped),
        grace,
        routes.server,
    );
    let signal = async move {
        let outcome = http::shutdown_signal().await;
        let _receivers_gone = stop.send(true);
        outcome
    };
    let (signal, (), (), ()) = tokio::join!(signal, api, metrics, checks);
    signal.map_err(ServeError::from)
}

/// `reconciler` with the idle policy and the capacity limits of `idle` and `capacity`,
/// reporting to `metrics`.
fn limited(
    reconciler: Reconciler,
    idle: &IdleSettings,
    capacity: &CapacitySettings,
    metrics: &Metrics,
) -> Reconciler {
    reconciler
        .with_idle_policy(idle.policy)
        .with_capacity(Capacity::new(
            capacity,
            Some(CapacityGauges {
                limit: metrics.running_limit.clone(),
                queue: metrics.start_queue.clone(),
            }),
        ))
}

/// Everything a running service is built from, whichever command gathered it (`serve`
/// from its flags, the demo from the simulated cluster, Gitea and issuer it starts).
pub struct Service {
    /// Where the Kubernetes API is.
    pub kube: kube::Config,
    /// How fast the service may call it (KUBE_QPS, KUBE_BURST).
    pub kube_rate: crate::rate_limit::Rate,
    /// What shapes every instance (templates, values, sizes).
    pub instance: InstanceSettings,
    /// How long an instance may take to come up.
    pub timeouts: Timeouts,
    /// Authentication.
    pub auth: AuthSettings,
    /// Gitea (repositories, deploy keys).
    pub gitea: GiteaSettings,
    /// The API's limits and switches.
    pub api: ApiSettings,
    /// Idle culling.
    pub idle: IdleSettings,
    /// Capacity limits.
    pub capacity: CapacitySettings,
    /// How long a deleted instance's volume is kept (DELETE_RETENTION; zero: not at all).
    pub delete_retention: Duration,
    /// The workspace gatekeeper.
    pub gate: GateSettings,
    /// Where the service listens.
    pub addrs: Addresses,
    /// How long in-flight requests get to finish after SIGTERM.
    pub grace: Duration,
}

/// A service whose parts are built and checked, ready to [`Started::run`].
pub struct Started {
    routes: Routes,
    reconciler: Arc<Reconciler>,
    metrics: Metrics,
    culler: Culler,
    reload: Option<tokio::task::JoinHandle<()>>,
    addrs: Addresses,
    grace: Duration,
}

/// Builds the service: the Kubernetes client and API discovery, the validated templates
/// (with live reload when they come from a directory), the reconciler with its idle and
/// capacity policies, the culler and the routes. Nothing is served yet.
pub async fn start(service: Service) -> Result<Started, ServeError> {
    let metrics = Metrics::new().map_err(ServeError::Metrics)?;
    let client = crate::rate_limit::limited_client(service.kube, &metrics, service.kube_rate)
        .map_err(ServeError::Client)?;
    let kinds = Kinds::discover(&client)
        .await
        .map_err(ServeError::Discovery)?;
    let templates = match reload::load_active(&service.instance) {
        Ok(active) => Arc::new(active),
        Err(error) => {
            for problem in error.messages() {
                tracing::error!(%problem, "template problem");
            }
            return Err(ServeError::InvalidTemplates(error));
        }
    };
    let keys_client = GiteaClient::new(service.gitea.clone())
        .map_err(ServeError::Gitea)?
        .with_metrics(metrics.clone());
    let reconciler = Arc::new(limited(
        Reconciler::new(
            client,
            kinds,
            templates.clone(),
            service.instance.clone(),
            service.timeouts,
        )
        .with_cache_gauges(metrics.cache_objects.clone())
        .with_gitea(keys_client)
        .with_delete_retention(service.delete_retention),
        &service.idle,
        &service.capacity,
        &metrics,
    ));
    let culler = Culler::new(
        reconciler.clone(),
        &service.idle,
        Some(metrics.idle_stops.clone()),
    )
    .map_err(ServeError::Culler)?
    .with_prepull_gauges(metrics.prepull_nodes.clone());
    let reload = reload::watch(
        templates,
        &service.instance,
        metrics.templates_reload.clone(),
        std::future::pending(),
    );
    let routes = assemble(Parts {
        reconciler: reconciler.clone(),
        auth: service.auth,
        gitea: service.gitea,
        metrics: metrics.clone(),
        refusals: reload.as_ref().map(|(_, refusals)| refusals.clone()),
        api: service.api,
        gate: service.gate,
    })?;
    Ok(Started {
        routes,
        reconciler,
        metrics,
        culler,
        reload: reload.map(|(task, _)| task),
        addrs: service.addrs,
        grace: service.grace,
    })
}

impl Started {
    /// Serves until SIGTERM (or Ctrl-C), refreshing the instance gauges and culling idle
    /// instances meanwhile.
    pub async fn run(self) -> Result<(), ServeError> {
        let stats = tokio::spawn(refresh_stats(self.reconciler, self.metrics, STATS_INTERVAL));
        let culling = tokio::spawn(self.culler.run());
        tracing::info!(
            api_addr = %self.addrs.api,
            metrics_addr = %self.addrs.metrics,
            ext_authz_addr = %self.addrs.ext_authz,
            version = crate::VERSION,
            "serving"
        );
        let outcome = run(self.routes, &self.addrs, self.grace).await;
        stats.abort();
        culling.abort();
        if let Some(task) = self.reload {
            task.abort();
        }
        outcome
    }
}

/// The `serve` command.
pub async fn serve(args: &ServeArgs) -> Result<(), ServeError> {
    args.check()?;
    let service = Service {
        kube: kube_config(args.kubeconfig.as_deref()).await?,
        kube_rate: args.kube_rate.rate()?,
        instance: args.instance.settings(),
        timeouts: args.timeouts(),
        auth: args.auth_settings(),
        gitea: args.gitea_settings().map_err(ServeError::Gitea)?,
        api: args.api_settings(),
        idle: args.idle.settings(),
        capacity: args.capacity.settings(),
        delete_retention: args.retention.retention(),
        gate: args.gate_settings(),
        addrs: Addresses {
            api: args.api_addr(),
            metrics: args.metrics_addr(),
            ext_authz: args.ext_authz_addr(),
        },
        grace: Duration::from_secs(args.shutdown_timeout),
    };
    start(service).await?.run().await
}
