//! What can be wrong with a name or id.

use super::MAX_USER_ID_LEN;

/// A name or id that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// The user id is empty.
    #[error("user id is empty")]
    EmptyUserId,
    /// The user id is unreasonably long.
    #[error("user id is {len} characters long; at most {MAX_USER_ID_LEN} are accepted")]
    UserIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A repository owner or name breaks Gitea's naming rules.
    #[error("invalid repository {what} {value:?}: {reason}")]
    InvalidRepo {
        /// `owner` or `name`.
        what: &'static str,
        /// The refused value (debug-quoted when shown).
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A token `sub` that an access policy cannot name as exactly one principal.
    #[error("the token subject (sub) {value:?} cannot be named in an access policy: {reason}")]
    UnsafeSub {
        /// The refused `sub` (debug-quoted, cut to 120 characters).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// An instance id that this service could not have issued.
    #[error("invalid instance id {0:?}: expected code-server-<name> with a DNS-1123 label name")]
    InvalidInstanceId(String),
}

/// Keeps error messages short when the input is hostile (10 kB names).
pub(super) fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 120;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}
