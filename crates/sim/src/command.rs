//! The `sim` command: a simulated cluster on a port, with a kubeconfig for it.

use std::path::PathBuf;

use crate::{Sim, SimError, SimOptions};

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
