//! What a committed write asks of the controllers. The verbs ([`crate::ops`]) announce
//! hooks; the lifecycle ([`crate::lifecycle`]) is the runner the shared state was built
//! with, so the verbs never depend on the controllers.

use std::sync::Arc;

use crate::Shared;
use crate::resources::ResId;

/// Starts the work of committed writes (the lifecycle's `run`).
pub(crate) type HookRunner = fn(&Arc<Shared>, Vec<Hook>);

/// Hand committed writes' hooks to the runner.
pub(crate) fn run(sh: &Arc<Shared>, hooks: Vec<Hook>) {
    if !hooks.is_empty() {
        (sh.run_hooks)(sh, hooks);
    }
}

/// Work to start after a write was committed (run outside the store lock).
#[derive(Debug, Clone)]
pub enum Hook {
    /// An object was created.
    Created {
        /// Resource.
        res: ResId,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
    },
    /// An object got a deletionTimestamp.
    Deleting {
        /// Resource.
        res: ResId,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
        /// Grace period in seconds (pods).
        grace: i64,
        /// Orphan dependents.
        orphan: bool,
        /// Foreground propagation: delete dependents first, then drop `foregroundDeletion`.
        foreground: bool,
    },
    /// A pod's images changed (the kubelet restarts its containers) or a claim grew (the
    /// volume is expanded).
    SpecChanged {
        /// Resource.
        res: ResId,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
    },
    /// An object was removed from the store.
    Removed {
        /// Resource.
        res: ResId,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// uid.
        uid: String,
        /// Orphan dependents.
        orphan: bool,
    },
}
