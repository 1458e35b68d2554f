//! Plan: desired objects against live ones, per object one of create, update (with the
//! RFC 6902 patch people read), unchanged, recreate or prune. Pure: no I/O.
//!
//! No false diffs. We compare only what we own: the live object is projected onto the
//! shape of the desired one (keys the desired object has; list elements matched by
//! `name`), so fields the API server defaults (`terminationMessagePath`, `clusterIP`,
//! `status`, `managedFields`, an injected sidecar) never show. Values the server
//! reformats are normalised: quantities (`10Gi` and `10240Mi`) and int-or-string
//! (`8080` and `"8080"`). This was chosen over a server-side-apply dry run per object
//! (as Flux and Argo CD do) because it costs no API calls: an unchanged instance plans
//! from one list per kind, and provisioning it again makes no writes at all.

mod compare;
mod project;
mod steps;

pub use self::{
    compare::{op_path, plan},
    project::project,
    steps::{Action, Plan, Step},
};
