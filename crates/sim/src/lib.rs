//! A simulated Kubernetes API server on loopback, for tests and the `sim`/`demo` commands.
//!
//! It speaks the part of the Kubernetes REST API this service uses closely enough that the
//! real `kube` client and `kubectl` work against it unchanged: CRUD, server-side apply with
//! `managedFields`, merge and JSON patches, selectors, watches, Status bodies, validation
//! and defaulting, and a pod/job/PVC lifecycle standing in for the scheduler, kubelet and
//! controllers. Tests get a handle to seed and read objects, count requests and inject
//! faults.
//!
//! Beside it, [`gitea`] simulates Gitea's REST API and [`issuer`] the token side of
//! Keycloak (a JWKS and minted tokens), so that the whole service runs on 127.0.0.1.
//!
//! ```text
//! let sim = Sim::start().await?;                       // 127.0.0.1, a free port
//! let pods: Api<Pod> = Api::namespaced(sim.client(), "codeserver-instances");
//! sim.inject(Fault::status(500).verb("patch").times(1));
//! sim.set_pod_behaviour("code-server-alice", PodBehaviour::CrashLoop);
//! ... run the code under test ...
//! assert!(sim.writes().is_empty());                     // e.g. "made no writes"
//! assert_eq!(sim.count("patch", "pods"), 1);
//! ```
//!
//! Failure modes can also be asked for in the manifest itself: an image containing
//! `errimagepull`, `crashloop`, `createconfigerror` or `unschedulable`, an init container
//! image containing `initfail`, a job container image containing `jobfail`, or the
//! annotation `sim.devplatform.io/behaviour` with one of those words (or `neverready`).
//!
//! Known differences from a real API server: no authentication or RBAC enforcement, no
//! protobuf, no events, services have no endpoints, `follow` logs carry no new lines, the
//! Istio CRD schema is not validated, and a watch can only resume from the last 2048 changes
//! (older resourceVersions get 410 Expired, as after etcd compaction).

// NB: ApiError mirrors a Status body; errors are the rare path, so boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod admission;
mod apply;
mod crd;
mod defaults;
mod discovery;
mod faults;
mod fields;
pub mod gitea;
mod handle;
pub mod heartbeat;
mod hooks;
mod http;
pub mod issuer;
mod lifecycle;
mod meta;
mod ops;
mod prune;
mod quantity;
mod reply;
mod resources;
mod selector;
mod status;
mod store;
mod validate;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use faults::{Fault, RecordedRequest};
pub use handle::Sim;
pub use lifecycle::{BEHAVIOUR_ANNOTATION, JobBehaviour, PodBehaviour};
pub use status::{ApiError, Cause};

/// Errors of the simulated cluster's handle and command.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listener could not be bound.
    #[error("cannot bind the simulated API server on 127.0.0.1:{port}")]
    Bind {
        /// Requested port.
        port: u16,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The kube client could not be built.
    #[error("cannot build a kube client for the simulated cluster")]
    Client(#[source] kube::Error),
    /// The cluster URL did not parse.
    #[error("invalid simulated cluster URL {0}")]
    Url(String),
    /// A seeded object was refused.
    #[error("seeding an object failed: {0}")]
    Seed(#[source] ApiError),
    /// Writing the kubeconfig failed.
    #[error("cannot write the kubeconfig to {path}")]
    Kubeconfig {
        /// Target file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Serialising the kubeconfig failed.
    #[error("cannot serialise the kubeconfig")]
    KubeconfigYaml(#[source] serde_yaml_ng::Error),
    /// Waiting for ctrl-c failed.
    #[error("cannot wait for the interrupt signal")]
    Signal(#[source] std::io::Error),
}

/// How graceful pod deletion waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GracePeriod {
    /// Every graceful deletion completes after this delay (gracePeriodSeconds=0 is immediate).
    Fixed(Duration),
    /// Honour `gracePeriodSeconds` in real seconds.
    Real,
}

/// Options of a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Namespaces that exist at start.
    pub namespaces: Vec<String>,
    /// Time from pod creation to being scheduled.
    pub schedule_delay: Duration,
    /// Run time of each init container.
    pub init_delay: Duration,
    /// Time from scheduling (or init completion) to containers running.
    pub start_delay: Duration,
    /// Time from running to Ready.
    pub ready_delay: Duration,
    /// Delay between failure states (ErrImagePull → ImagePullBackOff, crash restarts).
    pub backoff_delay: Duration,
    /// Run time of a job's pod.
    pub job_duration: Duration,
    /// Time until a PVC binds.
    pub pvc_bind_delay: Duration,
    /// Graceful deletion.
    pub grace: GracePeriod,
    /// Run the scheduler/kubelet/controller stand-ins (pod phases, job pods, PVC binding).
    /// When off, objects keep the status they were created or seeded with; deletion,
    /// finalizers and garbage collection still work.
    pub lifecycle: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            namespaces: [
                "default",
                "kube-system",
                "codeserver-instances",
                "dev-platform",
                "istio-system",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            schedule_delay: Duration::from_millis(10),
            init_delay: Duration::from_millis(30),
            start_delay: Duration::from_millis(20),
            ready_delay: Duration::from_millis(20),
            backoff_delay: Duration::from_millis(40),
            job_duration: Duration::from_millis(60),
            pvc_bind_delay: Duration::from_millis(10),
            grace: GracePeriod::Fixed(Duration::from_millis(50)),
            lifecycle: true,
        }
    }
}

impl SimOptions {
    /// Delays closer to a real cluster (seconds), for the demo.
    pub fn realistic() -> Self {
        SimOptions {
            schedule_delay: Duration::from_millis(300),
            init_delay: Duration::from_secs(2),
            start_delay: Duration::from_secs(1),
            ready_delay: Duration::from_secs(2),
            backoff_delay: Duration::from_secs(3),
            job_duration: Duration::from_secs(3),
            pvc_bind_delay: Duration::from_millis(500),
            grace: GracePeriod::Fixed(Duration::from_secs(2)),
            ..SimOptions::default()
        }
    }
}

/// State shared by the server, the handle and the lifecycle tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub opts: SimOptions,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub faults: Mutex<Vec<Fault>>,
    pub pod_behaviours: Mutex<HashMap<String, PodBehaviour>>,
    pub job_behaviours: Mutex<HashMap<String, JobBehaviour>>,
    /// (namespace, pod, container) → log lines.
    pub logs: Mutex<HashMap<(String, String, String), Vec<String>>>,
    /// Pod uid → token of the lifecycle driver currently in charge.
    pub drivers: Mutex<HashMap<String, u64>>,
    pub counters: Mutex<Counters>,
    /// Pods (by uid) whose grace period has run out.
    pub grace_expired: Mutex<std::collections::HashSet<String>>,
    pub addr: Mutex<Option<std::net::SocketAddr>>,
    /// Starts the controllers' work after committed writes (the lifecycle).
    pub run_hooks: hooks::HookRunner,
}

/// Allocation counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub cluster_ip: u32,
    pub pod_ip: u32,
    pub driver: u64,
}

/// Lock a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(opts: SimOptions) -> Arc<Self> {
        Arc::new(Shared {
            store: Mutex::new(store::Store::new()),
            opts,
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            pod_behaviours: Mutex::new(HashMap::new()),
            job_behaviours: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            drivers: Mutex::new(HashMap::new()),
            counters: Mutex::new(Counters::default()),
            grace_expired: Mutex::new(std::collections::HashSet::new()),
            addr: Mutex::new(None),
            run_hooks: lifecycle::run,
        })
    }
}

/// Start the simulated cluster on 127.0.0.1:`port` (0 picks a free port) and write a
/// kubeconfig for it to `kubeconfig_out` if given (done when this returns). Pods and jobs
/// move at realistic speed (seconds), or at test speed (milliseconds) when `fast`.
pub async fn start_command(
    port: u16,
    kubeconfig_out: Option<PathBuf>,
    fast: bool,
) -> Result<Sim, SimError> {
    let opts = if fast {
        SimOptions::default()
    } else {
        SimOptions::realistic()
    };
    let sim = Sim::start_on(port, opts).await?;
    if let Some(path) = &kubeconfig_out {
        let yaml = serde_yaml_ng::to_string(&sim.kubeconfig()).map_err(SimError::KubeconfigYaml)?;
        std::fs::write(path, yaml).map_err(|source| SimError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
    }
    Ok(sim)
}

/// Serve the simulated cluster as [`start_command`] does and run until ctrl-c.
pub async fn serve_command(
    port: u16,
    kubeconfig_out: Option<PathBuf>,
    fast: bool,
) -> Result<(), SimError> {
    let sim = start_command(port, kubeconfig_out.clone(), fast).await?;
    println!("simulated Kubernetes API server listening on {}", sim.url());
    if let Some(path) = &kubeconfig_out {
        println!("kubeconfig written to {}", path.display());
    }
    tokio::signal::ctrl_c().await.map_err(SimError::Signal)?;
    Ok(())
}
