//! Validation of built-in kinds with the real API server's field paths and messages
//! (upstream `pkg/apis/core/validation` and friends, the parts this service meets).

mod claim;
mod names;
mod network;
mod object;
mod pod;
mod service;

pub use object::validate;
