//! The Kubernetes client: from a kubeconfig or the in-cluster service account, its calls
//! counted, retries left to the reconciler.

use std::path::Path;

use kube::Client;

use super::ServeError;
use crate::metrics::{KubeCounter, Metrics};

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
/// `codeserver_kube_requests_total`; like `kube_config`'s, it leaves retries to the
/// reconciler.
pub fn counted_client(mut config: kube::Config, metrics: &Metrics) -> Result<Client, ServeError> {
    crate::install_crypto();
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(ServeError::Client)?;
    Ok(builder
        .with_layer(&KubeCounter::new(metrics.clone()))
        .build())
}
