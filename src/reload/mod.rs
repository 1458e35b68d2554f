//! Live template reload: the active template set, replaced without a restart when the
//! templates directory changes and the new set passes `validate-templates`.
//!
//! In the cluster the directory is a mounted ConfigMap. The kubelet updates it by
//! writing the new files into a fresh hidden directory and swapping the `..data` symlink
//! atomically, so a reader sees either the old set or the new one. The [`Reloader`]
//! polls a content hash of the visible files every few seconds (a few small reads, and
//! no dependence on filesystem events, which symlink swaps make unreliable), loads and
//! validates a changed set exactly as `validate-templates` does, and swaps it into the
//! service's [`ActiveTemplates`], the set the reconciler renders with. A set with
//! problems is refused, every problem is logged and the last good set stays active;
//! `codeserver_templates_reload_total{result="ok"|"error"}` counts both. Requests hold
//! an `Arc` of the set they started with, so a swap never changes a render half-way.

//!
//! - `active`: the set in use ([`ActiveTemplates`]);
//! - `load`: loading and validating a set, and the directory's content hash;
//! - `watch`: the [`Reloader`] that polls the directory and swaps sets in;
//! - `status`: what is active and why the last set was refused;
//! - `error`, `metric`: what can go wrong, and the counter that counts reloads.

mod active;
mod error;
mod load;
mod metric;
mod status;
mod watch;

pub use self::{
    active::ActiveTemplates,
    error::ReloadError,
    load::{fingerprint, load_active, load_validated},
    metric::{RELOAD_METRIC, RESULT_ERROR, RESULT_OK},
    status::{Refusal, Refusals, TemplatesReport, TemplatesStatus, reporter, status},
    watch::{DEFAULT_INTERVAL, ReloadOutcome, Reloader, reload_counter, watch},
};
