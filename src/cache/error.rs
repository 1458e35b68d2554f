//! What can go wrong when reading from the caches.

/// Errors of cache lookups and waits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The kind has no cache; list it from the API server, or start one with
    /// `Caches::watch_kind`.
    #[error("no cache holds {0} objects")]
    NotCached(String),
    /// The kind's watch task ended, so the cache will not change again.
    #[error("the cache of {0} objects stopped")]
    Stopped(String),
}
