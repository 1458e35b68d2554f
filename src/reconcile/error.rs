//! Reconciler errors. Their messages start with the specification's error strings; the
//! API server's reason follows for the log.

use std::time::Duration;

use crate::{render::RenderError, values::ValuesError};

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No instance with that id belongs to the caller.
    #[error("instance not found")]
    NotFound,
    /// The workspace PVC could not be applied.
    #[error("failed to create storage: {0}")]
    Storage(String),
    /// The pod (or another object of the instance) could not be applied.
    #[error("failed to create instance: {0}")]
    Instance(String),
    /// The Service, VirtualService or NetworkPolicy could not be applied.
    #[error("failed to configure routing: {0}")]
    Routing(String),
    /// The instance is being deleted: its record is still going away.
    #[error("instance is being deleted")]
    BeingDeleted,
    /// The instance is deleted, its volume kept until its purge time (DELETE_RETENTION):
    /// nothing but a restore or a purge acts on it; nothing was changed.
    #[error("instance is deleted; restore it first")]
    Deleted,
    /// Provisioning while the caller's instance is deleted (its volume kept): refused,
    /// nothing written, so old work is never silently mixed into a new instance.
    #[error(
        "instance is deleted: restore it with restoreCodeServer or purge it with deleteCodeServer(purge: true)"
    )]
    ProvisionOverDeleted,
    /// The instance's object names are held by another owner's live objects; nothing was
    /// written.
    #[error("instance name taken: {0}")]
    NameTaken(String),
    /// The pod is not running (logs, sync).
    #[error("pod not ready: {0}")]
    NotReady(String),
    /// Another sync of the instance is running (its Job exists and has not finished).
    #[error("sync in progress")]
    SyncInProgress,
    /// Adding the repository would exceed the repositories an instance may hold.
    #[error("repository limit reached: an instance holds at most {0} repositories")]
    TooManyRepositories(usize),
    /// The owner may read none of the instance's repositories any more (Gitea says so);
    /// nothing was started or pulled.
    #[error("repository access denied: {}", .0.join(", "))]
    AccessLost(Vec<String>),
    /// Gitea failed while checking access or managing deploy keys.
    #[error(transparent)]
    Gitea(#[from] crate::gitea::GiteaError),
    /// Syncing the repositories failed.
    #[error("sync failed: {0}")]
    Sync(String),
    /// The templates could not render this instance.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The inputs are unusable.
    #[error(transparent)]
    Values(#[from] ValuesError),
    /// The cluster lacks something the templates need (e.g. Istio).
    #[error("{0}")]
    Degraded(String),
    /// A Kubernetes API call failed.
    #[error("cannot {action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The caller may not do this, for the reason given; nothing was changed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// An argument the operation cannot take; nothing was changed.
    #[error("invalid argument {argument}: {reason}")]
    BadInput {
        /// The argument.
        argument: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The workspace volume cannot grow, for the reason given (its StorageClass does not
    /// allow expansion, it is not bound, the cluster refused); nothing was changed.
    #[error("storage cannot grow: {0}")]
    CannotGrow(String),
    /// MAX_RUNNING_INSTANCES instances already run; nothing was created.
    #[error("capacity reached: {running} of {limit} instances are running")]
    CapacityReached {
        /// Instances running (pods that exist and are not being deleted).
        running: usize,
        /// MAX_RUNNING_INSTANCES.
        limit: usize,
    },
}

impl Error {
    /// Wraps a Kubernetes error with what was being done.
    pub fn kube(action: &str, source: kube::Error) -> Self {
        Self::Kube {
            action: action.to_owned(),
            source,
        }
    }
}

/// A short, human reason from a Kubernetes error: `Invalid: ...`, `Forbidden: ...`.
pub fn reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.reason.is_empty() => format!("{}: {}", s.reason, s.message),
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// How long to wait before retrying `e`, or `None` when it is permanent.
///
/// Transient: 429 (honouring the server's `retryAfterSeconds`), 500, 502, 503, 504,
/// and transport failures. Permanent: every other API answer (403, 404, 409, 422, ...).
pub fn retry_delay(e: &kube::Error, attempt: u32) -> Option<Duration> {
    let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5)))
        .min(Duration::from_secs(2));
    match e {
        kube::Error::Api(s) if s.code == 429 => {
            let server = s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0);
            Some(server.map_or(backoff, |s| {
                Duration::from_secs(u64::from(s)).min(Duration::from_secs(10))
            }))
        }
        kube::Error::Api(s) if matches!(s.code, 500 | 502 | 503 | 504) => Some(backoff),
        kube::Error::Api(_) => None,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            Some(backoff)
        }
        _ => None,
    }
}

/// Attempts per API call, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

/// Runs `call` until it succeeds, fails permanently, or [`MAX_ATTEMPTS`] are used.
pub async fn with_retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                attempt += 1;
                match retry_delay(&e, attempt) {
                    Some(delay) if attempt < MAX_ATTEMPTS => {
                        tracing::warn!(%what, attempt, delay_ms = delay.as_millis() as u64, error = %reason(&e), "transient Kubernetes error; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    _ => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::core::{Status, response::StatusDetails};

    use super::*;

    fn api(code: u16, retry_after: u32) -> kube::Error {
        let mut s = Status::failure("m", "r").with_code(code);
        if retry_after > 0 {
            s = s.with_details(StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                causes: Vec::new(),
                retry_after_seconds: retry_after,
            });
        }
        kube::Error::Api(s.boxed())
    }

    #[test]
    fn transient_errors_back_off_and_permanent_ones_do_not() {
        assert_eq!(retry_delay(&api(429, 3), 1), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_delay(&api(429, 0), 1),
            Some(Duration::from_millis(200))
        );
        assert_eq!(retry_delay(&api(503, 0), 10), Some(Duration::from_secs(2)));
        for code in [400, 403, 404, 409, 422] {
            assert_eq!(retry_delay(&api(code, 0), 1), None, "{code}");
        }
    }

    #[tokio::test]
    async fn with_retry_gives_up_after_the_attempt_budget_and_stops_on_permanent_errors() {
        let mut calls = 0;
        let r: Result<(), _> = with_retry("x", || {
            calls += 1;
            async { Err(api(500, 0)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, MAX_ATTEMPTS);
        let mut calls = 0;
        let r: Result<(), _> = with_retry("x", || {
            calls += 1;
            async { Err(api(422, 0)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
