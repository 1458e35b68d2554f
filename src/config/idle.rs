//! Idle culling's flags, turned into [`IdleSettings`].

use std::time::Duration;

use clap::Args;

use crate::activity::{DEFAULT_HEALTHZ_URL, IdlePolicy, IdleSettings, healthz_url};

/// Idle culling settings (`serve`).
#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    /// Seconds between two activity checks of the running instances.
    #[arg(long = "idle-check-interval", env = "IDLE_CHECK_INTERVAL",
          value_name = "IDLE_CHECK_INTERVAL", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_check_interval: u64,
    /// Seconds without activity after which a running instance is stopped (its
    /// workspace volume is kept); 0 turns idle stop off.
    #[arg(long = "idle-timeout", env = "IDLE_TIMEOUT", value_name = "IDLE_TIMEOUT",
          default_value_t = 7200, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub idle_timeout: u64,
    /// Seconds before an idle stop during which the instance shows `idleStopAt`.
    #[arg(long = "idle-warning", env = "IDLE_WARNING", value_name = "IDLE_WARNING",
          default_value_t = 900, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub idle_warning: u64,
    /// Seconds an owner may keep a running instance alive ahead with `extendCodeServer`
    /// (no idle stop before then); 0 turns extensions off.
    #[arg(long = "idle-max-extension", env = "IDLE_MAX_EXTENSION",
          value_name = "IDLE_MAX_EXTENSION", default_value_t = 28_800,
          value_parser = clap::value_parser!(u64).range(0..=2_592_000))]
    pub idle_max_extension: u64,
    /// How many instances' /healthz are asked at once during a check.
    #[arg(long = "idle-check-concurrency", env = "IDLE_CHECK_CONCURRENCY",
          value_name = "IDLE_CHECK_CONCURRENCY", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=200))]
    pub idle_check_concurrency: u64,
    /// Where code-server's /healthz answers for an instance; `{service}` and
    /// `{namespace}` are replaced by the instance's Service and namespace.
    #[arg(long = "healthz-url", env = "HEALTHZ_URL", value_name = "HEALTHZ_URL",
          default_value = DEFAULT_HEALTHZ_URL, value_parser = healthz_url)]
    pub healthz_url: String,
    /// Name of the Lease (in CODESERVER_NAMESPACE) that elects the one replica that checks
    /// and stops idle instances.
    #[arg(
        long = "idle-lease-name",
        env = "IDLE_LEASE_NAME",
        value_name = "IDLE_LEASE_NAME",
        default_value = "codeserver-service-idle-culler"
    )]
    pub idle_lease_name: String,
    /// This replica's identity in the Lease (the pod name, from the downward API); a
    /// random one when unset.
    #[arg(long = "pod-name", env = "POD_NAME", value_name = "POD_NAME")]
    pub pod_name: Option<String>,
}

impl IdleArgs {
    /// The culler's settings.
    pub fn settings(&self) -> IdleSettings {
        IdleSettings {
            check_interval: Duration::from_secs(self.idle_check_interval),
            policy: IdlePolicy {
                timeout: Duration::from_secs(self.idle_timeout),
                warning: Duration::from_secs(self.idle_warning),
                max_extension: Duration::from_secs(self.idle_max_extension),
            },
            check_concurrency: usize::try_from(self.idle_check_concurrency).unwrap_or(1),
            healthz_url: self.healthz_url.clone(),
            lease_name: self.idle_lease_name.clone(),
            pod_name: self.pod_name.clone(),
        }
    }
}
