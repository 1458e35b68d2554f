//! Recoverable delete's flag, DELETE_RETENTION.

use std::time::Duration;

use clap::Args;

/// The longest DELETE_RETENTION: a year.
pub const MAX_DELETE_RETENTION: u64 = 31_536_000;

/// Recoverable delete (`serve`).
#[derive(Args, Debug, Clone)]
pub struct RetentionArgs {
    /// Seconds a deleted instance's workspace volume is kept (status DELETED, restorable
    /// with `restoreCodeServer`) before the Lease holder purges it; the purge time is
    /// stamped on the instance when it is deleted. 0: a delete removes the volume at once.
    #[arg(long = "delete-retention", env = "DELETE_RETENTION",
          value_name = "DELETE_RETENTION", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=MAX_DELETE_RETENTION))]
    pub delete_retention: u64,
}

impl RetentionArgs {
    /// How long a deleted instance's volume is kept (zero: not at all).
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.delete_retention)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::{Cli, one_line_error};

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        let base = [
            "codeserver-service",
            "--gitea-url",
            "http://g",
            "--gitea-token",
            "t",
        ];
        Cli::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn delete_retention_defaults_to_none_and_is_range_checked() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.serve.retention.retention(), Duration::ZERO);
        let cli = parse(&["--delete-retention", "604800"]).unwrap();
        assert_eq!(
            cli.serve.retention.retention(),
            Duration::from_secs(604_800)
        );
        for bad in ["-1", "31536001", "a week", "1.5"] {
            let err = parse(&["--delete-retention", bad]).unwrap_err();
            let line = one_line_error(&err);
            assert!(
                line.contains("DELETE_RETENTION") || line.contains(bad),
                "{line}"
            );
            assert!(!line.contains('\n'), "{line}");
        }
    }
}
