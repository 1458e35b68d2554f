//! One fixture for the tests and benches that drive the service: the simulated cluster,
//! Gitea and token issuer, the reconciler, and the service's routes served on 127.0.0.1.
//!
//! - [`World::start`] / [`World::builder`]: the whole service; a [`WorldBuilder`] sets the
//!   variations (API settings, templates, the cluster's options or another cluster, deploy
//!   keys, faults, and through [`WorldBuilder::reconciler`] the timeouts, capacity and idle
//!   policy). A [`World`] mints tokens and posts GraphQL.
//! - [`reconciler`] / [`ReconcilerBuilder`]: the reconciler alone, for tests and benches
//!   that call it directly.
//! - [`unreachable_cluster`], [`silent_cluster`]: clusters that fail or never answer.
//! - [`client_without_retry`]: a client that shows the service every answer of the cluster.
//! - [`ok`], [`error_of`]: reading GraphQL answers.
//!
//! Include it with `#[path = "support/world.rs"] mod world;` (from a bench,
//! `#[path = "../tests/support/world.rs"]`); it brings [`serving`] with it.

// NB: each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

#[path = "serving.rs"]
pub mod serving;

#[path = "eventually.rs"]
pub mod eventually;

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    activity::IdlePolicy,
    capacity::Capacity,
    config::InstanceSettings,
    gitea::{AuthMode, GiteaClient, GiteaSettings},
    http::ApiSettings,
    metrics::Metrics,
    reconcile::{Kinds, Reconciler, Timeouts},
    render::{ActiveTemplates, Templates},
    serve,
};
use codeserver_sim::{
    Fault, Sim, SimOptions,
    gitea::{SERVICE_TOKEN, SimGitea},
    issuer::{Issuer, TokenSpec},
};
use serde_json::{Value, json};

/// The users' instances' namespace.
pub const NS: &str = "codeserver-instances";
/// The token issuer named in the instances' access policies when no issuer runs.
pub const TEST_ISSUER: &str = "https://keycloak.test/realms/devplatform";
/// What `World::provision` asks of the new instance.
pub const PROVISION: &str = "mutation($o: String!, $n: String!) { provisionCodeServer(repoOwner: $o, repoName: $n) { instance { id userId repoOwner repoName url status createdAt storageUsed } message isNew } }";

/// How long provisioning and syncing wait in tests unless a test says otherwise: long
/// enough for the simulated cluster on a loaded machine, short enough to fail fast.
pub fn test_timeouts() -> Timeouts {
    Timeouts {
        ready: Duration::from_secs(10),
        sync: Duration::from_secs(10),
        ..Timeouts::default()
    }
}

/// A client for `sim` that leaves retrying to the service (kube's own retry of 429, 503
/// and 504 answers off), so a test sees what the service's retries do.
pub fn client_without_retry(sim: &Sim) -> kube::Client {
    let mut config = sim.config();
    config.default_retry = false;
    kube::Client::try_from(config).expect("a client for the simulated cluster")
}

/// A reconciler over `sim` with the test defaults (see [`ReconcilerBuilder::on`]).
pub fn reconciler(sim: &Sim) -> ReconcilerBuilder {
    ReconcilerBuilder::on(sim.client())
}

/// Builds a [`Reconciler`] with test defaults; each setter changes one of them.
pub struct ReconcilerBuilder {
    client: kube::Client,
    kinds: Kinds,
    /// The built-in set when `None`.
    templates: Option<Arc<ActiveTemplates>>,
    settings: InstanceSettings,
    timeouts: Timeouts,
    gitea: Option<GiteaClient>,
    idle: Option<IdlePolicy>,
    capacity: Option<Capacity>,
    cache_gauges: Option<prometheus::IntGaugeVec>,
    delete_retention: Duration,
}

impl ReconcilerBuilder {
    /// A reconciler over `client`: Istio `v1` kinds, the built-in templates, access policies
    /// for [`TEST_ISSUER`], [`test_timeouts`], no Gitea, no idle stop, no capacity limit.
    pub fn on(client: kube::Client) -> Self {
        Self {
            client,
            kinds: Kinds::new(Some("v1".to_owned())),
            templates: None,
            settings: InstanceSettings {
                jwt_issuer: Some(TEST_ISSUER.to_owned()),
                ..InstanceSettings::default()
            },
            timeouts: test_timeouts(),
            gitea: None,
            idle: None,
            capacity: None,
            cache_gauges: None,
            delete_retention: Duration::ZERO,
        }
    }

    /// The kinds, e.g. discovered from the cluster or another Istio version.
    pub fn kinds(mut self, kinds: Kinds) -> Self {
        self.kinds = kinds;
        self
    }

    /// The active template set (shared, so a test can swap it).
    pub fn templates(mut self, templates: Arc<ActiveTemplates>) -> Self {
        self.templates = Some(templates);
        self
    }

    /// All instance settings.
    pub fn settings(mut self, settings: InstanceSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The issuer of the owners' tokens, named in the access policies.
    pub fn jwt_issuer(mut self, issuer: &str) -> Self {
        self.settings.jwt_issuer = Some(issuer.to_owned());
        self
    }

    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// How long provision and start wait for readiness.
    pub fn ready_timeout(mut self, ready: Duration) -> Self {
        self.timeouts.ready = ready;
        self
    }

    /// How long a pod may be unschedulable before the instance reports ERROR.
    pub fn unschedulable_timeout(mut self, unschedulable: Duration) -> Self {
        self.timeouts.unschedulable = unschedulable;
        self
    }

    /// Repository access checks and deploy keys through `gitea`.
    pub fn gitea(mut self, gitea: GiteaClient) -> Self {
        self.gitea = Some(gitea);
        self
    }

    pub fn idle_policy(mut self, idle: IdlePolicy) -> Self {
        self.idle = Some(idle);
        self
    }

    pub fn capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Keeps a deleted instance's volume for `retention` (DELETE_RETENTION).
    pub fn delete_retention(mut self, retention: Duration) -> Self {
        self.delete_retention = retention;
        self
    }

    /// Counts the objects the caches hold in `gauges` (`codeserver_cache_objects`).
    pub fn cache_gauges(mut self, gauges: prometheus::IntGaugeVec) -> Self {
        self.cache_gauges = Some(gauges);
        self
    }

    pub fn build(self) -> Arc<Reconciler> {
        let templates = self.templates.unwrap_or_else(|| {
            Arc::new(ActiveTemplates::new(
                Templates::builtin().expect("the built-in templates load"),
            ))
        });
        let mut reconciler = Reconciler::new(
            self.client,
            self.kinds,
            templates,
            self.settings,
            self.timeouts,
        );
        if let Some(gauges) = self.cache_gauges {
            reconciler = reconciler.with_cache_gauges(gauges);
        }
        if let Some(gitea) = self.gitea {
            reconciler = reconciler.with_gitea(gitea);
        }
        if let Some(idle) = self.idle {
            reconciler = reconciler.with_idle_policy(idle);
        }
        if let Some(capacity) = self.capacity {
            reconciler = reconciler.with_capacity(capacity);
        }
        Arc::new(reconciler.with_delete_retention(self.delete_retention))
    }
}

/// Waits until `reconciler`'s caches have synced and `sim` has seen every cache's watch
/// open, so that the requests a test records afterwards are the service's own.
pub async fn caches_settled(sim: &Sim, reconciler: &Reconciler) {
    tokio::time::timeout(Duration::from_secs(10), reconciler.caches().wait_synced())
        .await
        .expect("the caches sync in time")
        .expect("the caches keep running");
    let kinds = reconciler.caches().counts().len();
    eventually::eventually("every cache watches", Duration::from_secs(10), || async {
        let watched: std::collections::BTreeSet<(String, String)> = sim
            .requests()
            .into_iter()
            .filter(|r| r.verb == "watch")
            .map(|r| (r.api_group, r.resource))
            .collect();
        (watched.len() >= kinds).then_some(())
    })
    .await;
}

/// Waits (at most 5 s) until `reconciler` has seen pod `name` go: its caches learn it
/// from their watch, after the cluster. False when it did not.
pub async fn pod_gone(reconciler: &Reconciler, name: &str) -> bool {
    let caches = reconciler.caches();
    let gone = async {
        caches.wait_synced().await?;
        caches.pods().wait_object(name, |p| p.is_none()).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), gone).await,
        Ok(Ok(_))
    )
}

/// Waits (at most 5 s) until `reconciler`'s caches hold the PVC `name`, e.g. a record a
/// test seeded in the cluster behind the service's back. False when they did not.
pub async fn record_cached(reconciler: &Reconciler, name: &str) -> bool {
    let caches = reconciler.caches();
    let held = async {
        caches.wait_synced().await?;
        caches.pvcs().wait_object(name, |p| p.is_some()).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), held).await,
        Ok(Ok(_))
    )
}

/// A cluster address where nothing listens: any cluster call fails, so an answer other
/// than `internal error` proves the cluster was never called.
pub async fn unreachable_cluster() -> kube::Config {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    kube::Config::new(url.parse().unwrap())
}

/// A cluster that accepts connections and never answers; each accepted connection is
/// reported on the channel, so a test knows when a request is in flight.
pub async fn silent_cluster() -> (kube::Config, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (accepted, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            let _ = accepted.send(());
        }
    });
    (kube::Config::new(url.parse().unwrap()), rx)
}

/// Where the service's reconciler sends its cluster calls.
enum Cluster {
    /// A simulated cluster started with these options.
    Sim(SimOptions),
    /// Somewhere else (see [`unreachable_cluster`], [`silent_cluster`]).
    Elsewhere(Box<kube::Config>),
}

/// The variations of a [`World`]; [`World::builder`] starts from the defaults.
pub struct WorldBuilder {
    cluster: Cluster,
    api: ApiSettings,
    templates: Option<Templates>,
    reconciler: Box<dyn FnOnce(ReconcilerBuilder) -> ReconcilerBuilder>,
    deploy_keys: bool,
    gitea_auth: AuthMode,
    faults: Vec<Fault>,
}

impl Default for WorldBuilder {
    fn default() -> Self {
        Self {
            cluster: Cluster::Sim(SimOptions::default()),
            api: ApiSettings::default(),
            templates: None,
            reconciler: Box::new(|reconciler| reconciler),
            deploy_keys: false,
            gitea_auth: AuthMode::Sudo,
            faults: Vec::new(),
        }
    }
}

impl WorldBuilder {
    /// The simulated cluster's options (its speed, whether its kubelet runs).
    pub fn sim_options(mut self, options: SimOptions) -> Self {
        self.cluster = Cluster::Sim(options);
        self
    }

    /// The simulated cluster with its lifecycle off: objects keep the status they are
    /// written with, so a test plays the scheduler and the kubelet.
    pub fn without_lifecycle(self) -> Self {
        self.sim_options(SimOptions {
            lifecycle: false,
            ..SimOptions::default()
        })
    }

    /// No simulated cluster: the service calls the cluster at `config`.
    pub fn cluster(mut self, config: kube::Config) -> Self {
        self.cluster = Cluster::Elsewhere(Box::new(config));
        self
    }

    /// The API's limits and switches.
    pub fn api(mut self, api: ApiSettings) -> Self {
        self.api = api;
        self
    }

    /// Changes the reconciler's defaults (timeouts, capacity, idle policy, ...); the
    /// cluster, the kinds, the template set and the issuer are the world's.
    pub fn reconciler(
        mut self,
        change: impl FnOnce(ReconcilerBuilder) -> ReconcilerBuilder + 'static,
    ) -> Self {
        self.reconciler = Box::new(change);
        self
    }

    /// The template set the service starts with (the built-in one by default).
    pub fn templates(mut self, templates: Templates) -> Self {
        self.templates = Some(templates);
        self
    }

    /// Repository access checks as the owner and per-instance deploy keys, asking Gitea in
    /// `mode` (the service's GITEA_AUTH_MODE).
    pub fn deploy_keys(mut self, mode: AuthMode) -> Self {
        self.deploy_keys = true;
        self.gitea_auth = mode;
        self
    }

    /// A fault the simulated cluster injects from the start (after discovery) until the
    /// test clears it.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Starts the servers and the service; panics on anything that does not start.
    pub async fn start(self) -> World {
        codeserver_service::install_crypto();
        let issuer = Arc::new(Issuer::start().await.unwrap());
        let gitea = SimGitea::start(issuer.clone()).await.unwrap();
        let metrics = Metrics::new().unwrap();
        let (sim, config) = match self.cluster {
            Cluster::Sim(options) => {
                let sim = Sim::start_with(options).await.unwrap();
                let config = sim.config();
                (Some(sim), config)
            }
            Cluster::Elsewhere(config) => (None, *config),
        };
        let client = serve::counted_client(config, &metrics).unwrap();
        let kinds = if sim.is_some() {
            Kinds::discover(&client).await.unwrap()
        } else {
            Kinds::new(Some("v1".to_owned()))
        };
        let templates = Arc::new(ActiveTemplates::new(match self.templates {
            Some(templates) => templates,
            None => Templates::builtin().unwrap(),
        }));
        let gitea_settings = GiteaSettings {
            auth_mode: self.gitea_auth,
            backoff: Duration::from_millis(5),
            ..GiteaSettings::sudo(&gitea.url(), SERVICE_TOKEN)
        };
        let mut reconciler = (self.reconciler)(
            ReconcilerBuilder::on(client)
                .cache_gauges(metrics.cache_objects.clone())
                .kinds(kinds)
                .templates(templates.clone())
                .jwt_issuer(&issuer.issuer_url()),
        );
        if self.deploy_keys {
            reconciler = reconciler.gitea(GiteaClient::new(gitea_settings.clone()).unwrap());
        }
        let reconciler = reconciler.build();
        let routes = serve::assemble({
            let mut parts = serving::simulated_parts(
                reconciler.clone(),
                &issuer,
                &gitea.url(),
                metrics.clone(),
            );
            parts.gitea = gitea_settings;
            parts.api = self.api;
            parts
        })
        .unwrap();
        let (base, stop) = serving::serve_routes(routes).await;
        if let Some(sim) = &sim {
            caches_settled(sim, &reconciler).await;
        }
        for fault in self.faults {
            sim.as_ref()
                .expect("faults are injected by the simulated cluster")
                .inject(fault);
        }
        World {
            sim,
            issuer,
            gitea,
            metrics,
            templates,
            reconciler,
            base,
            client: reqwest::Client::new(),
            _stop: stop,
        }
    }
}

/// The service on 127.0.0.1 with the simulated issuer and Gitea and (unless built
/// otherwise) the simulated cluster. Dropping it stops the server.
pub struct World {
    sim: Option<Sim>,
    pub issuer: Arc<Issuer>,
    pub gitea: SimGitea,
    pub metrics: Metrics,
    /// The active template set; swapping it changes what the service renders.
    pub templates: Arc<ActiveTemplates>,
    /// The service's reconciler, for calls beside the API (seeding, benches).
    pub reconciler: Arc<Reconciler>,
    /// `http://127.0.0.1:<port>`: the API and `/metrics`.
    pub base: String,
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl World {
    /// The default world: the simulated cluster, the built-in templates, default settings.
    pub async fn start() -> World {
        Self::builder().start().await
    }

    pub fn builder() -> WorldBuilder {
        WorldBuilder::default()
    }

    /// The simulated cluster; panics for a world built on another cluster.
    pub fn sim(&self) -> &Sim {
        self.sim
            .as_ref()
            .expect("this world runs on another cluster than the simulated one")
    }

    /// A token for `user`, with no role.
    pub fn token(&self, user: &str) -> String {
        self.issuer.mint(&TokenSpec::new(user)).unwrap()
    }

    /// A token for `user` with the admin role.
    pub fn admin_token(&self, user: &str) -> String {
        self.issuer
            .mint(&TokenSpec::new(user).roles(&["admin"]))
            .unwrap()
    }

    /// A request to `path` of the service.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// Posts the GraphQL request `body`; the HTTP status and the JSON answer.
    pub async fn post(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        serving::post_graphql(&self.client, &self.base, token, body).await
    }

    /// Runs `query` (no variables); the answer, which must come with HTTP 200.
    pub async fn query(&self, token: Option<&str>, query: &str) -> Value {
        let (status, body) = self.post(token, &json!({ "query": query })).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Runs `query` with `variables` as `token`'s user; the answer, which must come with
    /// HTTP 200.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = json!({"query": query, "variables": variables});
        let (status, answer) = self.post(Some(token), &body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Provisions `owner/name` for `token`'s user ([`PROVISION`]).
    pub async fn provision(&self, token: &str, owner: &str, name: &str) -> Value {
        self.gql(token, PROVISION, json!({"o": owner, "n": name}))
            .await
    }

    /// Runs `operation`, which takes the instance `$id`.
    pub async fn on_id(&self, token: &str, operation: &str, id: &str) -> Value {
        self.gql(token, operation, json!({"id": id})).await
    }

    /// `myCodeServers { id userId }` of `token`'s user.
    pub async fn mine(&self, token: &str) -> Value {
        let body = self
            .gql(token, "{ myCodeServers { id userId } }", json!({}))
            .await;
        ok(&body, "myCodeServers").clone()
    }

    /// The workspace volume `name` in the simulated cluster.
    pub fn pvc(&self, name: &str) -> Option<Value> {
        self.sim().object("persistentvolumeclaims", NS, name)
    }

    /// Waits until `plural/name` is gone from the simulated cluster (on its changes, for at
    /// most 5 s); asserts that it went.
    pub async fn until_gone(&self, plural: &str, name: &str) {
        let gone = self
            .sim()
            .wait_for(plural, NS, name, Duration::from_secs(5), |o| o.is_none())
            .await;
        assert!(gone, "{plural}/{name} is still there");
    }

    /// The pod `name` in the simulated cluster.
    pub fn pod(&self, name: &str) -> Option<Value> {
        self.sim().object("pods", NS, name)
    }
}

/// The answer's `data.<field>`, after asserting there is no error.
pub fn ok<'a>(body: &'a Value, field: &str) -> &'a Value {
    assert!(body["errors"].is_null(), "{field}: {}", body["errors"]);
    &body["data"][field]
}

/// The first error's message and code (empty when absent).
pub fn error_of(body: &Value) -> (&str, &str) {
    let error = &body["errors"][0];
    (
        error["message"].as_str().unwrap_or_default(),
        error["extensions"]["code"].as_str().unwrap_or_default(),
    )
}
