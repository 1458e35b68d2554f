//! Reasons people can act on: what the live objects say, completed with the lines of
//! the clone container's log that name the repository that failed.

use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;

use super::{Reconciler, with_retry};
use crate::instance::{self, Instance, InstanceStatus};

/// Log lines of the clone container read to explain a failed clone.
const CLONE_LOG_LINES: i64 = 20;
/// The most explaining lines kept.
const MAX_EXPLAINING_LINES: usize = 3;

impl Reconciler {
    /// `instance` with its ERROR reason completed from the clone container's log when
    /// the clone failed (the lines saying which repository and why). Reading the log is
    /// best effort: a failure leaves the reason as it was.
    pub(super) async fn explain(&self, mut instance: Instance, pod: Option<&Pod>) -> Instance {
        if instance.status.status != InstanceStatus::Error {
            return instance;
        }
        let Some(container) = pod.and_then(instance::init_failed) else {
            return instance;
        };
        let params = LogParams {
            container: Some(container.clone()),
            tail_lines: Some(CLONE_LOG_LINES),
            ..LogParams::default()
        };
        let api = self.pods();
        let text = match with_retry("read the clone log", || {
            api.logs(&instance.pod_name, &params)
        })
        .await
        {
            Ok(text) => text,
            Err(e) => {
                tracing::debug!(instance = %instance.id, error = %e, "no clone log to explain the failure");
                return instance;
            }
        };
        let lines = explaining_lines(&text);
        if !lines.is_empty() {
            let reason = instance.status.reason.take().unwrap_or_default();
            instance.status.reason = Some(format!("{reason}; {}", lines.join(" | ")));
        }
        instance
    }
}

/// The last lines of a clone log that say what failed (`error:` and `fatal:` lines).
pub fn explaining_lines(log: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("error:") || l.starts_with("fatal:"))
        .collect();
    let skip = lines.len().saturating_sub(MAX_EXPLAINING_LINES);
    lines.drain(..skip);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_repository_is_picked_from_the_clone_log() {
        let log = "cloning backend-api\nCloning into 'backend-api'...\nremote: Repository not found.\nfatal: repository not found\nerror: cloning backend-api failed\n";
        assert_eq!(
            explaining_lines(log),
            [
                "fatal: repository not found",
                "error: cloning backend-api failed"
            ]
        );
        assert!(explaining_lines("all fine\n").is_empty());
        let many = "error: a\n".repeat(10);
        assert_eq!(explaining_lines(&many).len(), MAX_EXPLAINING_LINES);
    }
}
