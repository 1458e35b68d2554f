//! Watch-backed caches of the objects this service manages: one `kube::runtime` watcher
//! per kind, scoped by the managed-by label, keeping each object as compact JSON trimmed
//! of `managedFields` and the last-applied annotation (pods also of what no read uses),
//! with the facts totals read, indexed by instance id and owner key as the events
//! arrive, with a readiness signal and a read-your-writes wait.

mod caches;
mod error;
mod index;
mod key;
mod kind;
mod stored;

pub use self::{
    caches::{CACHED_KINDS, Caches, managed_selector},
    error::CacheError,
    key::{KindKey, LAST_APPLIED, trim},
    kind::{FactsView, KindCache},
    stored::{Facts, Keep, PodFacts, RecordFacts},
};
