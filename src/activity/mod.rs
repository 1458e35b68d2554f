//! Activity and idle stop. code-server reports on `/healthz` when it last saw its user
//! (`lastHeartbeat`); every IDLE_CHECK_INTERVAL one replica (the holder of a Lease) asks
//! every running instance, keeps `lastAccessedAt` on the instance record (a PVC
//! annotation, written at most every `RECORD_EVERY`, not on every check), and stops an
//! instance idle for IDLE_TIMEOUT by deleting its pod: the PVC and the work in it stay.
//! For the last IDLE_WARNING seconds before that, the instance shows `idleStopAt`.
//!
//! The decisions are pure functions of the record, the heartbeat and the time
//! ([`last_access`], [`idle_stop_at`], `should_record`); [`Culler`] only reads and writes.

mod culler;
mod healthz;
mod policy;

pub(crate) use self::healthz::{DEFAULT_HEALTHZ_URL, healthz_url};
pub use self::{
    culler::{CullError, Culler, IdleSettings, Report},
    healthz::Heartbeat,
    policy::{
        ANNOTATION_LAST_ACCESSED, IdlePolicy, idle_stop_at, kept_alive, last_access, recorded,
        started,
    },
};
