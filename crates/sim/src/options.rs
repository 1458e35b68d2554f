//! The simulated cluster's options and errors.

use std::path::PathBuf;
use std::time::Duration;

use crate::status::ApiError;

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
