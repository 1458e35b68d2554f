//! Why the service could not start.

use crate::{
    activity::CullError, auth::AuthError, config::SettingsError, gitea::GiteaError,
    http::HttpError, metrics::MetricsError, reconcile, reload::ReloadError,
};

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
    Settings(#[from] SettingsError),
    /// The workspace gatekeeper could not be built.
    #[error("invalid workspace gatekeeper settings")]
    Gate(#[source] crate::gate::GateError),
    /// The idle culler could not be built.
    #[error("failed to set up idle culling")]
    Culler(#[source] CullError),
}
