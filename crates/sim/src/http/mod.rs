//! The HTTP front: routing REST paths to the verbs, Status error bodies, list and watch
//! encoding, pod logs, request accounting and fault injection.

mod body;
mod dispatch;
mod params;
mod read;
mod route;
mod watch;

pub(crate) use crate::reply::{Reply_, bytes_response, error_response, json_response};
pub(crate) use body::*;
pub(crate) use dispatch::*;
pub(crate) use params::*;
pub(crate) use read::*;
pub(crate) use route::*;
pub(crate) use watch::*;
