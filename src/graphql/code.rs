//! `extensions.code`: the machine-readable half of every error answer.

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
    /// The instance is in the wrong state for the operation (stopped, not ready yet).
    FailedPrecondition,
    /// The instance is being deleted; nothing can be done with it until it is gone.
    InstanceBeingDeleted,
    /// Provisioning while the caller's instance is deleted (kept for DELETE_RETENTION):
    /// restore it or purge it first; nothing was written.
    InstanceDeleted,
    /// The service or a system behind it failed.
    Internal,
    // Request cost limits: the request was refused before any work was done.
    /// The query expands to more than the size limit (fragments counted expanded).
    QueryTooComplex,
    /// An operation has more root fields (aliases included) than allowed.
    TooManyRootFields,
    /// The request holds more mutations than allowed.
    TooManyMutations,
    /// The caller already has as many requests in flight as allowed.
    TooManyRequests,
    /// The request did not finish within the request timeout.
    Timeout,
    /// Introspection is turned off (production, unless GRAPHQL_INTROSPECTION is set).
    IntrospectionDisabled,
    /// The instance's names are held by another owner's objects; nothing was changed.
    InstanceNameTaken,
    /// Another sync of the instance is running; nothing was started.
    SyncInProgress,
    /// The instance holds as many repositories as it may; nothing was changed.
    RepositoryLimitExceeded,
    /// Recorded repositories the owner may no longer read were not pulled.
    RepositoryAccessLost,
    /// MAX_RUNNING_INSTANCES instances already run; nothing was created.
    CapacityReached,
    /// The caller made more than MUTATIONS_PER_MINUTE mutations in the last minute, or
    /// used up their budget of reads that call Kubernetes or Gitea.
    RateLimited,
    /// The answer would be larger than the service sends; nothing of it was sent.
    ResponseTooLarge,
}

impl Code {
    /// The code as it appears in the answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::InstanceBeingDeleted => "INSTANCE_BEING_DELETED",
            Self::InstanceDeleted => "INSTANCE_DELETED",
            Self::Internal => "INTERNAL",
            Self::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Self::TooManyRootFields => "TOO_MANY_ROOT_FIELDS",
            Self::TooManyMutations => "TOO_MANY_MUTATIONS",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::Timeout => "TIMEOUT",
            Self::IntrospectionDisabled => "INTROSPECTION_DISABLED",
            Self::InstanceNameTaken => "INSTANCE_NAME_TAKEN",
            Self::SyncInProgress => "SYNC_IN_PROGRESS",
            Self::RepositoryLimitExceeded => "REPOSITORY_LIMIT_EXCEEDED",
            Self::RepositoryAccessLost => "REPOSITORY_ACCESS_LOST",
            Self::CapacityReached => "CAPACITY_REACHED",
            Self::RateLimited => "RATE_LIMITED",
            Self::ResponseTooLarge => "RESPONSE_TOO_LARGE",
        }
    }
}
