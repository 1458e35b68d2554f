//! Watch-backed caches of the objects this service manages: one `kube::runtime`
//! reflector per kind, scoped by the managed-by label, storing objects trimmed of
//! `managedFields` and the last-applied annotation, indexed by instance id and owner key
//! as the events arrive, with a readiness signal and a read-your-writes wait.

mod caches;
mod error;
mod index;
mod key;
mod kind;

pub use self::{
    caches::{CACHED_KINDS, Caches, managed_selector},
    error::CacheError,
    key::{KindKey, LAST_APPLIED, trim},
    kind::KindCache,
};
