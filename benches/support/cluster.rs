//! The simulated cluster in a child process, for benches whose measured process must be
//! the service alone (its memory and CPU are then the service's, not the cluster's).
//!
//! [`Cluster::start`] builds `codeserver-demo` with the bench's own profile (the demo is
//! another package of the workspace, so a bench of the service cannot name it with
//! `CARGO_BIN_EXE_...`), starts `codeserver-demo sim --fast --port 0 --kubeconfig-out F`
//! and waits for the kubeconfig. Dropping the [`Cluster`] stops the child.
//!
//! Include it with `#[path = "support/cluster.rs"] mod cluster;`.

// NB: each bench compiles this module and uses only part of it.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

/// How long the simulated cluster may take to write its kubeconfig.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the simulated cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The bench's own path does not say which target directory and profile it was built in.
    #[error("cannot tell the target directory and profile from the bench's path {0}")]
    Layout(String),
    /// A process could not be run or a file read.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `cargo build -p codeserver-demo` failed (its output is on stderr).
    #[error("building codeserver-demo failed: {0}")]
    Build(std::process::ExitStatus),
    /// The child exited before writing its kubeconfig.
    #[error("codeserver-demo sim exited before writing its kubeconfig: {0}")]
    Exited(std::process::ExitStatus),
    /// The child did not write its kubeconfig in time.
    #[error("codeserver-demo sim wrote no kubeconfig within {0:?}")]
    Timeout(Duration),
    /// The kubeconfig it wrote is unusable.
    #[error("the simulated cluster's kubeconfig is unusable")]
    Kubeconfig(#[source] codeserver_service::serve::ServeError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// The target directory and the profile directory (`debug`, `release`, ...) this bench
/// runs from: its path is `<target>/<profile>/deps/<bench>-<hash>`.
fn layout() -> Result<(PathBuf, String), ClusterError> {
    let exe = std::env::current_exe().map_err(io("finding the bench's own path"))?;
    let shown = exe.display().to_string();
    let deps = exe
        .parent()
        .ok_or_else(|| ClusterError::Layout(shown.clone()))?;
    let profile_dir = deps
        .parent()
        .ok_or_else(|| ClusterError::Layout(shown.clone()))?;
    let target = profile_dir
        .parent()
        .ok_or_else(|| ClusterError::Layout(shown.clone()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or(ClusterError::Layout(shown))?;
    Ok((target.to_path_buf(), profile.to_owned()))
}

/// Builds `codeserver-demo` in `target` with the profile whose directory is
/// `profile_dir`; returns the binary's path.
async fn build_demo(target: &Path, profile_dir: &str) -> Result<PathBuf, ClusterError> {
    // NB: `cargo bench` sets CARGO for what it runs; the compile-time value covers a bench
    // binary started by hand.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let profile = match profile_dir {
        "debug" => "dev",
        other => other,
    };
    let status = tokio::process::Command::new(&cargo)
        .args(["build", "--locked", "--quiet", "-p", "codeserver-demo"])
        .args(["--profile", profile, "--target-dir"])
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TERM_PROGRESS_WHEN", "never")
        .stdout(Stdio::null())
        .status()
        .await
        .map_err(io(format!("running {cargo} build -p codeserver-demo")))?;
    if !status.success() {
        return Err(ClusterError::Build(status));
    }
    Ok(target.join(profile_dir).join("codeserver-demo"))
}

/// The simulated cluster (`codeserver-demo sim --fast`) running in a child process.
pub struct Cluster {
    child: tokio::process::Child,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Builds the demo binary and starts the simulated cluster; answers once its
    /// kubeconfig is written.
    pub async fn start() -> Result<Self, ClusterError> {
        let (target, profile) = layout()?;
        let demo = build_demo(&target, &profile).await?;
        let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = tokio::process::Command::new(&demo)
            .args(["sim", "--fast", "--port", "0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {}", demo.display())))?;
        let started = Instant::now();
        loop {
            let written = tokio::fs::metadata(&kubeconfig)
                .await
                .is_ok_and(|m| m.len() > 0);
            if written {
                break;
            }
            if let Some(status) = child.try_wait().map_err(io("watching codeserver-demo"))? {
                return Err(ClusterError::Exited(status));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(ClusterError::Timeout(START_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // NB: the file may be written in more than one call; a complete one parses.
        while kube::config::Kubeconfig::read_from(&kubeconfig).is_err() {
            if started.elapsed() > START_TIMEOUT {
                return Err(ClusterError::Timeout(START_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            child,
            kubeconfig,
            _dir: dir,
        })
    }

    /// The kubeconfig the simulated cluster wrote.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client configuration for the simulated cluster (retries left to the reconciler,
    /// as the service's).
    pub async fn config(&self) -> Result<kube::Config, ClusterError> {
        codeserver_service::serve::kube_config(Some(&self.kubeconfig))
            .await
            .map_err(ClusterError::Kubeconfig)
    }

    /// Stops the simulated cluster.
    pub async fn stop(mut self) -> Result<(), ClusterError> {
        self.child
            .kill()
            .await
            .map_err(io("stopping codeserver-demo sim"))
    }
}
