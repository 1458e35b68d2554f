//! What a GraphQL caller is told when something fails: the spec's message, an
//! `extensions.code` and, where it helps the caller act, `extensions.reason` (redacted of
//! URLs). The full details go to the log where the failure is mapped.
//!
//! NB: [`ApiError`] deliberately does not implement `Display`. async-graphql turns any
//! `Display` error into an answer carrying its full text, which would leak internal details
//! (URLs, Kubernetes messages) to callers; without `Display` the only way out is the
//! explicit conversion below.

use async_graphql::ErrorExtensions;

use super::{code::Code, redact::redact};
use crate::{auth::UNAUTHORIZED, errors::error_chain, gitea::GiteaError, naming::NamingError};

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
    /// `pod not ready`: the instance is not running (stopped, starting or failed).
    PodNotReady,
    /// `instance is being deleted`: its objects are still going away.
    BeingDeleted,
    /// `instance is deleted; restore it first`: an operation on a deleted instance (kept
    /// for DELETE_RETENTION); nothing was changed.
    Deleted,
    /// `instance is deleted: restore it with restoreCodeServer or purge it with
    /// deleteCodeServer(purge: true)`: provisioning while the caller's instance is
    /// deleted; nothing was written.
    InstanceDeleted,
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
    // Request cost limits.
    /// `query too complex`: the expanded query is over the size limit.
    QueryTooComplex,
    /// `too many root fields`: an operation asks for too many root fields.
    TooManyRootFields,
    /// `too many mutations`: the request holds too many mutations.
    TooManyMutations,
    /// `too many concurrent requests`: the caller's concurrency limit is reached.
    TooManyRequests,
    /// `too many subscriptions`: the caller has MAX_SUBSCRIPTIONS_PER_CALLER open.
    TooManySubscriptions,
    /// `introspection is disabled`: introspection is turned off.
    IntrospectionDisabled,
    /// One of the others with a reason the caller may see (`extensions.reason`).
    WithReason(Box<ApiError>, String),
    /// `capacity reached`: MAX_RUNNING_INSTANCES instances already run.
    CapacityReached,
    /// `storage cannot grow`: the workspace volume cannot grow (its StorageClass does not
    /// allow expansion, it is not bound yet); the reason says why. Nothing was changed.
    StorageCannotGrow,
    /// `rate limited`: the caller's mutations per minute (or reads that call out) are
    /// used up.
    RateLimited,
    /// `response too large`: the answer is over the size the service sends.
    ResponseTooLarge,
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
            Self::BeingDeleted => "instance is being deleted",
            Self::Deleted => "instance is deleted; restore it first",
            Self::InstanceDeleted => {
                "instance is deleted: restore it with restoreCodeServer or purge it with deleteCodeServer(purge: true)"
            }
            Self::SyncFailed => "sync failed",
            Self::SyncInProgress => "sync in progress",
            Self::RepositoryLimit(message) | Self::AccessLost(message) => message,
            Self::BadInput(message) => message,
            Self::Internal => "internal error",
            Self::QueryTooComplex => "query too complex",
            Self::TooManyRootFields => "too many root fields",
            Self::TooManyMutations => "too many mutations",
            Self::TooManyRequests => "too many concurrent requests",
            Self::TooManySubscriptions => "too many subscriptions",
            Self::IntrospectionDisabled => "introspection is disabled",
            Self::WithReason(error, _) => error.message(),
            Self::CapacityReached => "capacity reached",
            Self::StorageCannotGrow => "storage cannot grow",
            Self::RateLimited => "rate limited",
            Self::ResponseTooLarge => "response too large",
        }
    }

    /// `extensions.reason`, when there is one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::WithReason(_, reason) => Some(reason),
            _ => None,
        }
    }

    /// This error with `reason` for the caller; URLs in it are redacted and it is cut to
    /// `MAX_REASON_LEN` bytes.
    pub fn with_reason(self, reason: &str) -> Self {
        let error = match self {
            Self::WithReason(error, _) => *error,
            error => error,
        };
        Self::WithReason(Box::new(error), redact(reason))
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
            Self::PodNotReady | Self::StorageCannotGrow | Self::Deleted => Code::FailedPrecondition,
            Self::InstanceDeleted => Code::InstanceDeleted,
            Self::BeingDeleted => Code::InstanceBeingDeleted,
            Self::RepositoryServiceUnavailable
            | Self::StorageFailed
            | Self::InstanceFailed
            | Self::SyncFailed
            | Self::Internal => Code::Internal,
            Self::QueryTooComplex => Code::QueryTooComplex,
            Self::TooManyRootFields => Code::TooManyRootFields,
            Self::TooManyMutations => Code::TooManyMutations,
            Self::TooManyRequests | Self::TooManySubscriptions => Code::TooManyRequests,
            Self::IntrospectionDisabled => Code::IntrospectionDisabled,
            Self::WithReason(error, _) => error.code(),
            Self::CapacityReached => Code::CapacityReached,
            Self::RateLimited => Code::RateLimited,
            Self::ResponseTooLarge => Code::ResponseTooLarge,
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
        let reason = self.reason().map(str::to_owned);
        async_graphql::Error::new(self.message()).extend_with(|_, e| {
            e.set("code", code);
            if let Some(reason) = &reason {
                e.set("reason", reason.as_str());
            }
        })
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
            GiteaError::NotLinked(why) => {
                Self::RepositoryAccessDenied.with_reason(&why.to_string())
            }
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
            NamingError::EmptyUserId
            | NamingError::UserIdTooLong { .. }
            | NamingError::UnsafeSub { .. } => {
                tracing::warn!(%error, "caller's user id is unusable");
                Self::Unauthorized
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::redact::MAX_REASON_LEN;

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
            (
                ApiError::PodNotReady,
                "pod not ready",
                "FAILED_PRECONDITION",
            ),
            (
                ApiError::BeingDeleted,
                "instance is being deleted",
                "INSTANCE_BEING_DELETED",
            ),
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
            (
                ApiError::Deleted,
                "instance is deleted; restore it first",
                "FAILED_PRECONDITION",
            ),
            (
                ApiError::InstanceDeleted,
                "instance is deleted: restore it with restoreCodeServer or purge it with deleteCodeServer(purge: true)",
                "INSTANCE_DELETED",
            ),
        ];
        for (error, message, code) in cases {
            assert_eq!(answer(error), (message.to_owned(), code.to_owned()));
        }
    }

    #[test]
    fn reasons_are_redacted_and_bounded() {
        let error = ApiError::SyncFailed.with_reason(
            "BackoffLimitExceeded: fatal: could not read from 'http://tok:secret@gitea.internal:3000/devteam/api.git' (git+ssh://git@gitea/x)",
        );
        let error: async_graphql::Error = error.into();
        let json =
            serde_json::to_value(error.into_server_error(async_graphql::Pos::default())).unwrap();
        assert_eq!(json["message"], "sync failed");
        assert_eq!(json["extensions"]["code"], "INTERNAL");
        let reason = json["extensions"]["reason"].as_str().unwrap();
        assert_eq!(
            reason,
            "BackoffLimitExceeded: fatal: could not read from '<url>' (<url>)"
        );
        let long = "é".repeat(MAX_REASON_LEN);
        let cut = redact(&long);
        assert!(cut.len() <= MAX_REASON_LEN && cut.starts_with('é'));
        assert_eq!(answer(ApiError::Internal).1, "INTERNAL");
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
