//! The client-side rate limit's flags, turned into a [`Rate`].

use clap::Args;

use crate::rate_limit::{DEFAULT_BURST, DEFAULT_QPS, Rate, RateError};

/// Client-side rate limit of Kubernetes API calls, like client-go's QPS and Burst.
#[derive(Args, Debug, Clone)]
pub struct KubeRateArgs {
    /// Sustained Kubernetes API requests per second; more wait their turn.
    #[arg(long = "kube-qps", env = "KUBE_QPS", value_name = "KUBE_QPS",
          default_value_t = DEFAULT_QPS, value_parser = kube_qps)]
    pub qps: f64,
    /// Kubernetes API requests that may go at once before KUBE_QPS applies.
    #[arg(long = "kube-burst", env = "KUBE_BURST", value_name = "KUBE_BURST",
          default_value_t = DEFAULT_BURST,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub burst: u32,
}

impl KubeRateArgs {
    /// The token bucket's rate.
    pub fn rate(&self) -> Result<Rate, RateError> {
        Rate::new(self.qps, self.burst)
    }
}

/// KUBE_QPS: a number of requests per second above 0 (fractions allowed), at most 100000.
fn kube_qps(s: &str) -> Result<f64, String> {
    let qps: f64 = s.trim().parse().map_err(|_| {
        format!("expected requests per second, a number above 0 such as 50, not {s:?}")
    })?;
    if qps.is_finite() && qps > 0.0 && qps <= 100_000.0 {
        Ok(qps)
    } else {
        Err(format!(
            "expected requests per second above 0 and at most 100000, not {s:?}"
        ))
    }
}
