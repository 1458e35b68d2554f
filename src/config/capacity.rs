//! Capacity limits' flags, turned into [`CapacitySettings`].

use clap::Args;

use crate::capacity::CapacitySettings;

/// Capacity settings (`serve`).
#[derive(Args, Debug, Clone)]
pub struct CapacityArgs {
    /// Most instances running at once; provisioning or starting one more answers
    /// `capacity reached` (CAPACITY_REACHED). 0: no limit.
    #[arg(long = "max-running-instances", env = "MAX_RUNNING_INSTANCES",
          value_name = "MAX_RUNNING_INSTANCES", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_running_instances: u64,
    /// Most starts (provision or start until ready) in progress at once; more wait in
    /// arrival order.
    #[arg(long = "max-concurrent-starts", env = "MAX_CONCURRENT_STARTS",
          value_name = "MAX_CONCURRENT_STARTS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_concurrent_starts: u64,
    /// Mutations one user may make per minute (a burst of that many, refilled evenly);
    /// more are answered `RATE_LIMITED`. 0: no limit.
    #[arg(long = "mutations-per-minute", env = "MUTATIONS_PER_MINUTE",
          value_name = "MUTATIONS_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub mutations_per_minute: u64,
}

impl CapacityArgs {
    /// The limits' settings.
    pub fn settings(&self) -> CapacitySettings {
        CapacitySettings {
            max_running_instances: self.max_running_instances,
            max_concurrent_starts: self.max_concurrent_starts,
            mutations_per_minute: self.mutations_per_minute,
        }
    }
}
