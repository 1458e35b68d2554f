//! Why a Gitea call failed.

use crate::naming::NamingError;

/// Why a Gitea call failed.
#[derive(Debug, thiserror::Error)]
pub enum GiteaError {
    /// The owner or name breaks Gitea's naming rules; no call was made.
    #[error(transparent)]
    InvalidName(#[from] NamingError),
    /// The caller may not read the repository, or it does not exist (indistinguishable).
    #[error("repository access denied")]
    AccessDenied,
    /// The Gitea account the caller names is not provably theirs, so the service does not
    /// act as it (sudo mode).
    #[error(transparent)]
    NotLinked(#[from] super::NotLinked),
    /// Gitea could not be reached or kept failing.
    #[error("gitea is unavailable after {attempts} attempt(s)")]
    Unavailable {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        cause: Unavailable,
    },
    /// Gitea answered with a status this client does not expect.
    #[error("gitea answered HTTP {status} to {path}")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The API path.
        path: String,
    },
    /// Gitea's answer could not be read.
    #[error("gitea's answer to {path} could not be read")]
    Decode {
        /// The API path.
        path: String,
        /// The decoding error.
        #[source]
        source: reqwest::Error,
    },
    /// The base URL cannot carry API paths.
    #[error("invalid gitea URL {0:?}")]
    BaseUrl(String),
    /// The HTTP client could not be built.
    #[error("failed to build the gitea HTTP client")]
    Client(#[source] reqwest::Error),
    /// `Sudo` mode without a service token.
    #[error("GITEA_AUTH_MODE=sudo needs GITEA_TOKEN")]
    NoServiceToken,
    /// Gitea refused the service token itself (401 or 403 on a deploy key call).
    #[error(
        "gitea refused GITEA_TOKEN with HTTP {status} on {path} (it must be a site admin's, with repository scopes)"
    )]
    ServiceRefused {
        /// The HTTP status.
        status: u16,
        /// The API path.
        path: String,
    },
    /// Gitea refused the service token's `Sudo` (the token's user is no site admin).
    #[error(
        "gitea refused GITEA_TOKEN with Sudo (its user must be a site admin with repository scopes)"
    )]
    SudoRefused,
}

/// The last failure behind [`GiteaError::Unavailable`].
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// No HTTP answer (connection refused, timeout, reset).
    #[error("request failed")]
    Transport(#[source] reqwest::Error),
    /// Gitea answered with a server error.
    #[error("gitea answered HTTP {0}")]
    Status(u16),
}

impl GiteaError {
    /// The label value for `codeserver_gitea_requests_total{result}`.
    pub(super) fn metric_result(&self) -> &'static str {
        match self {
            Self::AccessDenied | Self::NotLinked(_) => "denied",
            Self::Unavailable { .. } => "unavailable",
            _ => "error",
        }
    }
}
