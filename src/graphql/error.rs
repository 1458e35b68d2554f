//! What a GraphQL caller is told when something fails: the spec's message and an
//! `extensions.code`, nothing more. The details go to the log where the failure is mapped.
//!
//! NB: [`ApiError`] deliberately does not implement `Display`. async-graphql turns any
//! `Display` error into an answer carrying its full text, which would leak internal details
//! (URLs, Kubernetes messages) to callers; without `Display` the only way out is the
//! explicit conversion below.

use async_graphql::ErrorExtensions;

use crate::{auth::UNAUTHORIZED, gitea::GiteaError, naming::NamingError};

/// `extensions.code` of an error answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// No valid credentials.
    Unauthenticated,
    /// Authenticated, but not allowed.
    Forbidden,
    /// No such instance (or not the caller's).
    NotFound,
    /// An argument is invalid; nothing was called.
    BadUserInput,
    /// The service or a system behind it failed.
    Internal,
    /// The instance's names are held by another owner's objects; nothing was changed.
    InstanceNameTaken,
    /// Another sync of the instance is running; nothing was started.
    SyncInProgress,
    /// The instance holds as many repositories as it may; nothing was changed.
    RepositoryLimitExceeded,
    /// Recorded repositories the owner may no longer read were not pulled.
    RepositoryAccessLost,
}

impl Code {
    /// The code as it appears in the answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Internal => "INTERNAL",
            Self::InstanceNameTaken => "INSTANCE_NAME_TAKEN",
            Self::SyncInProgress => "SYNC_IN_PROGRESS",
            Self::RepositoryLimitExceeded => "REPOSITORY_LIMIT_EXCEEDED",
            Self::RepositoryAccessLost => "REPOSITORY_ACCESS_LOST",
        }
    }
}

/// A failed GraphQL operation as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// `unauthorized`: missing or invalid credentials.
    Unauthorized,
    /// `forbidden`: an admin-only operation by a non-admin.
    Forbidden,
    /// `repository access denied`: Gitea refused the caller's token for the repository.
    RepositoryAccessDenied,
    /// `repository service unavailable`: Gitea could not be reached; nothing was created.
    RepositoryServiceUnavailable,
    /// `instance not found`: no such instance, or another user's.
    InstanceNotFound,
    /// `instance name taken`: the instance's object names are held by another owner's
    /// objects; nothing was changed.
    InstanceNameTaken,
    /// `failed to create storage`: the workspace PVC could not be created.
    StorageFailed,
    /// `failed to create instance`: the pod (or its companions) could not be created.
    InstanceFailed,
    /// `pod not ready`: the instance did not become ready in time, or has no pod.
    PodNotReady,
    /// `sync failed`: pulling the repositories failed.
    SyncFailed,
    /// `sync in progress`: another sync of the instance runs; nothing was started.
    SyncInProgress,
    /// `repository limit reached: ...`: the instance holds as many repositories as it
    /// may (the message names the limit); nothing was changed.
    RepositoryLimit(String),
    /// `repository access lost, not pulled: <owner/name>, ...`: a notice next to a
    /// successful start or sync (the named repositories were left out, their keys revoked).
    AccessLost(String),
    /// An invalid argument, with a message safe to show (it names the argument and rule).
    BadInput(String),
    /// `internal error`: anything else.
    Internal,
}

impl ApiError {
    /// The message shown to the caller.
    pub fn message(&self) -> &str {
        match self {
            Self::Unauthorized => UNAUTHORIZED,
            Self::Forbidden => "forbidden",
            Self::RepositoryAccessDenied => "repository access denied",
            Self::RepositoryServiceUnavailable => "repository service unavailable",
            Self::InstanceNotFound => "instance not found",
            Self::InstanceNameTaken => "instance name taken",
            Self::StorageFailed => "failed to create storage",
            Self::InstanceFailed => "failed to create instance",
            Self::PodNotReady => "pod not ready",
            Self::SyncFailed => "sync failed",
            Self::SyncInProgress => "sync in progress",
            Self::RepositoryLimit(message) | Self::AccessLost(message) => message,
            Self::BadInput(message) => message,
            Self::Internal => "internal error",
        }
    }

    /// The `extensions.code` of the answer.
    pub fn code(&self) -> Code {
        match self {
            Self::Unauthorized => Code::Unauthenticated,
            Self::Forbidden | Self::RepositoryAccessDenied => Code::Forbidden,
            Self::InstanceNotFound => Code::NotFound,
            Self::InstanceNameTaken => Code::InstanceNameTaken,
            Self::SyncInProgress => Code::SyncInProgress,
            Self::RepositoryLimit(_) => Code::RepositoryLimitExceeded,
            Self::AccessLost(_) => Code::RepositoryAccessLost,
            Self::BadInput(_) => Code::BadUserInput,
            Self::RepositoryServiceUnavailable
            | Self::StorageFailed
            | Self::InstanceFailed
            | Self::PodNotReady
            | Self::SyncFailed
            | Self::Internal => Code::Internal,
        }
    }

    /// The notice for recorded repositories that were not pulled, if any.
    pub fn access_lost(lost: &[String]) -> Option<Self> {
        (!lost.is_empty()).then(|| {
            Self::AccessLost(format!(
                "repository access lost, not pulled: {}",
                lost.join(", ")
            ))
        })
    }

    /// An invalid argument: `argument` names it, `problem` says what is wrong.
    pub fn bad_input(argument: &str, problem: impl std::fmt::Display) -> Self {
        Self::BadInput(format!("invalid argument {argument}: {problem}"))
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        let code = self.code().as_str();
        async_graphql::Error::new(self.message()).extend_with(|_, e| e.set("code", code))
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        error.extend()
    }
}

impl From<GiteaError> for ApiError {
    fn from(error: GiteaError) -> Self {
        match error {
            GiteaError::AccessDenied => Self::RepositoryAccessDenied,
            GiteaError::InvalidName(naming) => Self::from(naming),
            error @ GiteaError::Unavailable { .. } => {
                tracing::warn!(error = %error_chain(&error), "gitea unavailable");
                Self::RepositoryServiceUnavailable
            }
            error => {
                tracing::error!(error = %error_chain(&error), "gitea call failed");
                Self::Internal
            }
        }
    }
}

impl From<NamingError> for ApiError {
    fn from(error: NamingError) -> Self {
        match &error {
            NamingError::InvalidRepo { what, reason, .. } => {
                let argument = if *what == "owner" {
                    "repoOwner"
                } else {
                    "repoName"
                };
                Self::bad_input(argument, reason)
            }
            NamingError::InvalidInstanceId(_) => Self::bad_input("id", "not an instance id"),
            NamingError::EmptyUserId | NamingError::UserIdTooLong { .. } => {
                tracing::warn!(%error, "caller's user id is unusable");
                Self::Unauthorized
            }
        }
    }
}

/// An error and its sources, `: `-separated, for one log field.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(error: ApiError) -> (String, String) {
        let error: async_graphql::Error = error.into();
        let server = error.into_server_error(async_graphql::Pos::default());
        let json = serde_json::to_value(&server).unwrap();
        (
            json["message"].as_str().unwrap().to_owned(),
            json["extensions"]["code"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn answers_carry_the_spec_messages_and_codes() {
        let cases = [
            (ApiError::Unauthorized, "unauthorized", "UNAUTHENTICATED"),
            (
                ApiError::RepositoryAccessDenied,
                "repository access denied",
                "FORBIDDEN",
            ),
            (
                ApiError::InstanceNotFound,
                "instance not found",
                "NOT_FOUND",
            ),
            (
                ApiError::StorageFailed,
                "failed to create storage",
                "INTERNAL",
            ),
            (
                ApiError::InstanceFailed,
                "failed to create instance",
                "INTERNAL",
            ),
            (ApiError::PodNotReady, "pod not ready", "INTERNAL"),
            (ApiError::Forbidden, "forbidden", "FORBIDDEN"),
            (
                ApiError::InstanceNameTaken,
                "instance name taken",
                "INSTANCE_NAME_TAKEN",
            ),
            (
                ApiError::SyncInProgress,
                "sync in progress",
                "SYNC_IN_PROGRESS",
            ),
        ];
        for (error, message, code) in cases {
            assert_eq!(answer(error), (message.to_owned(), code.to_owned()));
        }
    }

    #[test]
    fn gitea_and_naming_failures_map_without_leaking_details() {
        assert_eq!(
            ApiError::from(GiteaError::AccessDenied),
            ApiError::RepositoryAccessDenied
        );
        assert_eq!(
            ApiError::from(GiteaError::UnexpectedStatus {
                status: 418,
                path: "/api/v1/secret/path".into()
            }),
            ApiError::Internal
        );
        let naming = crate::naming::validate_repo_part("name", "a;rm -rf /").unwrap_err();
        let (message, code) = answer(ApiError::from(GiteaError::InvalidName(naming)));
        assert_eq!(code, "BAD_USER_INPUT");
        assert!(
            message.starts_with("invalid argument repoName:"),
            "{message}"
        );
        assert!(!message.contains("rm -rf"), "{message}");
    }
}
