//! Server-side apply and `managedFields` bookkeeping for every write.

mod managed;
mod merge;

pub(crate) use managed::*;
pub(crate) use merge::*;
