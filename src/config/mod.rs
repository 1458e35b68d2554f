//! Configuration: one clap-derive tree. Every setting is a flag and the environment
//! variable the specification names, with its defaults; a malformed value stops start-up
//! with one line naming the variable, the value and what is expected.
//!
//! This is the only module that knows clap: the arguments are turned here into the plain
//! settings each part of the service takes ([`ServeArgs::auth_settings`],
//! [`ServeArgs::gitea_settings`], [`ServeArgs::api_settings`], [`IdleArgs::settings`],
//! [`CapacityArgs::settings`], [`KubeRateArgs::rate`]).

mod api;
mod capacity;
mod commands;
mod gate;
mod idle;
mod instance;
mod kube_rate;
mod parse;
mod retention;
mod serve;
#[cfg(test)]
mod tests;

pub use self::{
    api::ApiArgs,
    capacity::CapacityArgs,
    commands::{
        Cli, Command, HealthcheckArgs, OutputFormat, PlanArgs, RenderArgs, TargetArgs, ValidateArgs,
    },
    gate::GateArgs,
    idle::IdleArgs,
    instance::InstanceArgs,
    kube_rate::KubeRateArgs,
    parse::one_line_error,
    retention::{MAX_DELETE_RETENTION, RetentionArgs},
    serve::{GiteaAuthArgs, ServeArgs, SettingsError},
};
pub use crate::{secret::Secret, values::InstanceSettings};
