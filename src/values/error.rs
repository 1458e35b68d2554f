//! What can be wrong with the inputs of values.

use crate::naming::NamingError;

/// Something wrong with the inputs of `Values`.
#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    /// The user id or a repository name is unusable.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// A values file could not be read.
    #[error("cannot read values file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A values file is not a YAML mapping.
    #[error("values file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A `--set` override is malformed.
    #[error("invalid --set {0:?}: expected key.path=value with a non-empty key")]
    Set(String),
    /// A typed value overridden in values.yaml is malformed.
    #[error("invalid value for {key} in values: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No repository was given.
    #[error("an instance needs at least one repository")]
    NoRepos,
    /// The profile asked for cannot be used.
    #[error(transparent)]
    Profile(#[from] super::ProfileError),
}
