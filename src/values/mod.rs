//! Values: everything a template may use, as plain serializable data. Computing them needs
//! no cluster: configuration, the user, the repositories, and `extra` (the admin's
//! `values.yaml`, extra values files and `--set` overrides merged in, as Helm does).
//!
//! - `inputs`: the owner and repositories, as identity and Gitea give them;
//! - `model`: the values templates see;
//! - `build`: computing them ([`build_values`], [`Values::build`]);
//! - `overrides`: the typed settings values.yaml may override;
//! - `merge`: values files and `--set`, merged as Helm does;
//! - `profiles`: the workspace profiles values.yaml offers, checked.

mod build;
mod error;
mod inputs;
mod merge;
mod model;
mod overrides;
mod profiles;
mod settings;

pub use self::{
    build::build_values,
    error::ValuesError,
    inputs::{Owner, Repo},
    merge::{apply_set, apply_sets, merge, merge_files, parse_values, read_values_file},
    model::{
        AccessValues, InstanceValues, RepoValues, ResourceValues, Resources, StorageValues,
        UserValues, Values,
    },
    overrides::{DEFAULT_REPOSITORY_LIMIT, MAX_REPOSITORY_LIMIT},
    profiles::{
        IMPLICIT_PROFILE, MAX_PROFILES, Profile, ProfileAccess, ProfileError, ProfileQuantities,
        ProfileSizing, ProfileValues, Profiles,
    },
    settings::InstanceSettings,
};
