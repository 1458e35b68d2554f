//! The verbs: get, list, create, update, patch (apply, merge, strategic, JSON) and delete,
//! with preconditions, defaulting, validation, `managedFields` and resourceVersions.

mod admit;
mod claim_admission;
mod create;
mod delete;
mod params;
mod patch;
mod read;
mod write;

pub(crate) use crate::meta::{now, now_plus, uid_of};
pub(crate) use admit::*;
pub(crate) use create::*;
pub(crate) use delete::*;
pub(crate) use params::*;
pub(crate) use patch::*;
pub(crate) use read::*;
pub(crate) use write::*;
