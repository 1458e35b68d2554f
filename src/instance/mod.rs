//! The instance: its record on the PVC (owner, repositories, kinds, activity), its model
//! and its status, derived from live objects only. The PVC is the durable record; the pod
//! gives the phase. The service keeps no state of its own.

pub mod git_identity;
pub mod lifecycle;
mod model;
pub mod record;
pub mod retention;
mod status;
pub mod storage;

pub use self::{
    lifecycle::StopReason,
    model::Instance,
    status::{
        InstanceStatus, Status, StatusSummary, derive_status, init_failed, started, volume_pending,
    },
};
