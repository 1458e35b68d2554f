//! The `serve` command: configuration in, a running service out. [`start`](fn@start) builds a
//! service from its [`Service`] settings (the `serve` command and the demo both go through
//! it): the Kubernetes client, the validated templates with live reload, the reconciler and
//! the routes ([`assemble`]); [`Started::run`] serves both listeners until SIGTERM.

mod error;
mod kube;
mod routes;
mod start;

pub use self::kube::kube_config;
pub use self::{
    error::ServeError,
    kube::{counted_client, kube_client},
    routes::{Parts, Routes, assemble},
    start::{Addresses, Service, Started, serve, start},
};
