//! The `serve` command: configuration in, a running service out. [`start`] builds a
//! service from its [`Service`] settings (the `serve` command and the demo both go through
//! it): the Kubernetes client, the validated templates with live reload, the reconciler and
//! the routes ([`assemble`]); [`Started::run`] serves both listeners until SIGTERM.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::Client;
use warp::{Filter, filters::BoxedFilter, reply::Response};

use crate::{
    activity::{Culler, IdleArgs, IdlePolicy},
    auth::{AuthError, AuthSettings, Authenticator},
    capacity::{Capacity, CapacityArgs, CapacityGauges},
    config::{InstanceSettings, ServeArgs},
    gitea::{GiteaClient, GiteaError, GiteaSettings},
    graphql::{self, Services, error_chain, record_stats},
    http::{self, ApiSettings, App, HttpError, ReadyCheck, ServerLimits},
    metrics::{KubeCounter, Metrics, MetricsError},
    reconcile::{self, Kinds, Reconciler, Timeouts},
    reload::{self, ReloadError},
    render,
};

/// How often the instance and storage gauges are refreshed from the cluster.
pub const STATS_INTERVAL: Duration = Duration::from_secs(30);
/// How long a readiness answer is reused (probes and `health` stay cheap under load).
const READY_CACHE: Duration = Duration::from_secs(2);
/// How long the readiness probe waits for the Kubernetes API.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The kubeconfig could not be read or used.
    #[error("failed to load the kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig was given and the in-cluster configuration is unusable.
    #[error(
        "failed to load the in-cluster Kubernetes configuration (set KUBECONFIG outside a cluster)"
    )]
    InCluster(#[source] kube::config::InClusterError),
    /// The Kubernetes client could not be built.
    #[error("failed to build the Kubernetes client")]
    Client(#[source] kube::Error),
    /// KUBE_QPS or KUBE_BURST is not a rate.
    #[error(transparent)]
    KubeRate(#[from] crate::rate_limit::RateError),
    /// The cluster's API groups could not be discovered.
    #[error("failed to discover the cluster's API")]
    Discovery(#[source] reconcile::Error),
    /// The configured templates are unreadable or have problems (each one is logged).
    #[error("the templates are unusable")]
    InvalidTemplates(#[source] ReloadError),
    /// The authenticator could not be built.
    #[error("invalid authentication settings")]
    Auth(#[source] AuthError),
    /// The Gitea client could not be built.
    #[error("invalid Gitea settings")]
    Gitea(#[source] GiteaError),
    /// The metrics could not be registered.
    #[error("failed to register the metrics")]
    Metrics(#[source] MetricsError),
    /// A listener or signal handler failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Settings that parse but cannot work together.
    #[error(transparent)]
    Settings(#[from] crate::config::SettingsError),
    /// The idle culler could not be built.
    #[error("failed to set up idle culling")]
    Culler(#[source] crate::activity::CullError),
}

/// What `/ready` lists under `degraded`, computed when asked.
pub type Degraded = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The `degraded` list: what the cluster lacks (`cluster`, fixed at start) and, for the
/// active template set, workspaces published without a per-instance access policy
/// (allowed only by `security.allowUnauthenticatedWorkspaces`). Checked once per
/// template revision.
fn degraded(cluster: Vec<String>, reconciler: &Arc<Reconciler>) -> Degraded {
    let active = reconciler.templates().clone();
    let settings = reconciler.settings().clone();
    let seen: Mutex<Option<(String, bool)>> = Mutex::new(None);
    Arc::new(move || {
        let templates = active.get();
        let mut seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let unprotected = match seen.as_ref() {
            Some((revision, unprotected)) if revision == templates.revision() => *unprotected,
            _ => {
                let unprotected = render::access_report(&templates, &settings).unprotected();
                *seen = Some((templates.revision().to_owned(), unprotected));
                unprotected
            }
        };
        let mut list = cluster.clone();
        if unprotected {
            list.push(UNPROTECTED.to_owned());
        }
        list
    })
}

/// The `degraded` entry (and start-up warning) of a set that publishes workspaces
/// without a per-instance access policy.
pub const UNPROTECTED: &str = "security.allowUnauthenticatedWorkspaces: workspaces are published without a per-instance access policy; anyone who reaches the gateway can open any workspace";

/// What the routes are built from.
pub struct Parts {
    /// The lifecycle operations.
    pub reconciler: Arc<Reconciler>,
    /// Authentication.
    pub auth: AuthSettings,
    /// Gitea.
    pub gitea: GiteaSettings,
    /// The service's metrics.
    pub metrics: Metrics,
    /// Refusals of the template reloader, when templates are reloaded live.
    pub refusals: Option<Arc<reload::Refusals>>,
    /// The API's limits and switches.
    pub api: ApiSettings,
}

/// The service's two route sets.
pub struct Routes {
    /// `/graphql`, `/health`, `/ready` (PORT).
    pub api: BoxedFilter<(Response,)>,
    /// `/metrics` (METRICS_PORT).
    pub metrics: BoxedFilter<(Response,)>,
    /// The timeouts both listeners serve with.
    pub server: ServerLimits,
}

/// Builds the routes: authenticator, Gitea client, schema, readiness.
pub fn assemble(parts: Parts) -> Result<Routes, ServeError> {
    let admin_role = parts.auth.admin_role.clone();
    let auth = Authenticator::new(parts.auth).map_err(ServeError::Auth)?;
    let gitea = GiteaClient::new(parts.gitea)
        .map_err(ServeError::Gitea)?
        .with_metrics(parts.metrics.clone());
    let ready = ready_check(parts.reconciler.clone());
    let templates = reload::reporter(parts.reconciler.templates().clone(), parts.refusals);
    let cluster = match parts.reconciler.kinds().istio_version() {
        Some(_) => Vec::new(),
        None => vec![format!(
            "the cluster serves no {} VirtualService: instances whose templates render one cannot be provisioned",
            reconcile::kinds::ISTIO_GROUP
        )],
    };
    let degraded = degraded(cluster, &parts.reconciler);
    let schema = graphql::schema(Services {
        templates: templates.clone(),
        reconciler: parts.reconciler,
        gitea,
        admin_role,
        metrics: parts.metrics.clone(),
        ready: ready.clone(),
        subscriptions: graphql::SubscriptionLimits::new(
            parts.api.max_subscriptions_per_caller,
            parts.api.subscription_timeout,
        ),
    });
    Ok(Routes {
        api: http::routes(App {
            schema,
            auth,
            ready,
            templates,
            degraded,
            settings: parts.api,
        })
        .boxed(),
        metrics: http::metrics_routes(parts.metrics).boxed(),
        server: parts.api.server,
    })
}

/// A readiness answer and when it was given.
type ReadyAnswer = (Instant, Result<(), String>);

/// Ready when the Kubernetes API answers, a template set is loaded and the reconciler's
/// caches have synced; answers are reused for a moment so that probes and `health` never
/// pile up on the API server.
pub fn ready_check(reconciler: Arc<Reconciler>) -> ReadyCheck {
    let last: Arc<Mutex<Option<ReadyAnswer>>> = Arc::default();
    Arc::new(move || {
        let client = reconciler.client().clone();
        let templates = reconciler.templates().clone();
        let synced = reconciler.caches_synced();
        let last = last.clone();
        Box::pin(async move {
            let cached = last
                .lock()
                .ok()
                .and_then(|slot| slot.clone())
                .filter(|(at, _)| at.elapsed() < READY_CACHE);
            if let Some((_, answer)) = cached {
                return answer;
            }
            let answer = if templates.get().object_templates().is_empty() {
                Err("no templates are loaded".to_owned())
            } else if !synced {
                Err("the caches of the managed objects have not synced yet".to_owned())
            } else {
                match tokio::time::timeout(READY_TIMEOUT, client.apiserver_version()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(format!("the Kubernetes API failed: {error}")),
                    Err(_) => Err("the Kubernetes API did not answer in time".to_owned()),
                }
            };
            if let Ok(mut slot) = last.lock() {
                *slot = Some((Instant::now(), answer.clone()));
            }
            answer
        })
    })
}

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

/// The Kubernetes configuration from `kubeconfig`, else from the in-cluster service account.
pub async fn kube_config(kubeconfig: Option<&Path>) -> Result<kube::Config, ServeError> {
    crate::install_crypto();
    let mut config = match kubeconfig {
        Some(path) => {
            let shown = path.display().to_string();
            let file = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                ServeError::Kubeconfig {
                    path: shown.clone(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| ServeError::Kubeconfig {
                    path: shown,
                    source,
                })?
        }
        None => kube::Config::incluster().map_err(ServeError::InCluster)?,
    };
    // NB: the reconciler retries transient errors itself, per call and with a small
    // budget (reconcile::with_retry); kube's own layer would retry for up to minutes.
    config.default_retry = false;
    Ok(config)
}

/// A Kubernetes client from `kubeconfig`, else from the in-cluster service account.
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<Client, ServeError> {
    Client::try_from(kube_config(kubeconfig).await?).map_err(ServeError::Client)
}

/// A Kubernetes client for `config` whose calls are counted in
/// `codeserver_kube_requests_total`; like [`kube_config`]'s, it leaves retries to the
/// reconciler.
pub fn counted_client(mut config: kube::Config, metrics: &Metrics) -> Result<Client, ServeError> {
    crate::install_crypto();
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(ServeError::Client)?;
    Ok(builder
        .with_layer(&KubeCounter::new(metrics.clone()))
        .build())
}

/// Serves `routes` on `api_addr` and `metrics_addr` until SIGTERM, then gives in-flight
/// requests `grace` to finish.
pub async fn run(
    routes: Routes,
    api_addr: &str,
    metrics_addr: &str,
    grace: Duration,
) -> Result<(), ServeError> {
    let api_listener = http::bind(api_addr).await?;
    let metrics_listener = http::bind(metrics_addr).await?;
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
        wait(stopped),
        grace,
        routes.server,
    );
    let signal = async move {
        let outcome = http::shutdown_signal().await;
        let _receivers_gone = stop.send(true);
        outcome
    };
    let (signal, (), ()) = tokio::join!(signal, api, metrics);
    signal.map_err(ServeError::from)
}

/// `host:port`, with an IPv6 host in brackets.
fn socket_addr(host: &std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(*host, port).to_string()
}

/// `reconciler` with the idle policy and the capacity limits of `idle` and `capacity`,
/// reporting to `metrics` (the same for `serve` and `demo`).
pub fn limited(
    reconciler: Reconciler,
    idle: &IdleArgs,
    capacity: &CapacityArgs,
    metrics: &Metrics,
) -> Reconciler {
    reconciler
        .with_idle_policy(IdlePolicy::from_args(idle))
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
    pub idle: IdleArgs,
    /// Capacity limits.
    pub capacity: CapacityArgs,
    /// `host:port` of the API.
    pub api_addr: String,
    /// `host:port` of `/metrics`.
    pub metrics_addr: String,
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
    api_addr: String,
    metrics_addr: String,
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
    if render::access_report(&templates.get(), &service.instance).unprotected() {
        tracing::warn!("{UNPROTECTED}");
    }
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
        .with_gitea(keys_client),
        &service.idle,
        &service.capacity,
        &metrics,
    ));
    let culler = Culler::new(
        reconciler.clone(),
        &service.idle,
        Some(metrics.idle_stops.clone()),
    )
    .map_err(ServeError::Culler)?;
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
    })?;
    Ok(Started {
        routes,
        reconciler,
        metrics,
        culler,
        reload: reload.map(|(task, _)| task),
        api_addr: service.api_addr,
        metrics_addr: service.metrics_addr,
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
            api_addr = %self.api_addr,
            metrics_addr = %self.metrics_addr,
            version = crate::VERSION,
            "serving"
        );
        let outcome = run(self.routes, &self.api_addr, &self.metrics_addr, self.grace).await;
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
        instance: args.instance.clone(),
        timeouts: Timeouts {
            ready: args.ready_timeout(),
            unschedulable: Duration::from_secs(args.unschedulable_timeout),
            ..Timeouts::default()
        },
        auth: AuthSettings::from_args(args),
        gitea: GiteaSettings::from_args(args).map_err(ServeError::Gitea)?,
        api: args.api_settings(),
        idle: args.idle.clone(),
        capacity: args.capacity.clone(),
        api_addr: socket_addr(&args.api.bind_address, args.port),
        metrics_addr: socket_addr(&args.api.metrics_bind_address, args.metrics_port),
        grace: Duration::from_secs(args.shutdown_timeout),
    };
    start(service).await?.run().await
}
