//! Standing in for the scheduler, the kubelet and the controllers: pod phases and container
//! states, pod logs, graceful deletion, PVC binding and protection, jobs, garbage
//! collection and namespace termination.

mod behaviour;
mod claims;
mod containers;
mod daemonsets;
mod dispatch;
mod events;
mod evict;
mod expand;
mod gc;
mod init;
mod jobs;
mod kubelet;
mod logs;
mod states;

pub use behaviour::{BEHAVIOUR_ANNOTATION, JobBehaviour, PodBehaviour};
pub(crate) use claims::*;
pub(crate) use containers::*;
pub(crate) use daemonsets::*;
pub(crate) use dispatch::*;
pub(crate) use events::*;
pub(crate) use evict::*;
pub(crate) use expand::*;
pub(crate) use gc::*;
pub(crate) use init::*;
pub(crate) use jobs::*;
pub(crate) use kubelet::*;
pub(crate) use logs::*;
pub(crate) use states::*;
