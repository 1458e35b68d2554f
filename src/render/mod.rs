//! Render: MiniJinja templates from a directory (usually a mounted ConfigMap), or the set
//! compiled into the binary, to checked Kubernetes objects. Pure and fast: no I/O after
//! loading. The render CLI, validate-templates, the reconciler and the GraphQL dry-run all
//! call [`Templates::render`].
//!
//! Along the data flow:
//! - `set`: loading a template set, its values and its revision ([`Templates`]);
//! - `functions`: the MiniJinja environment and the functions templates call;
//! - `instance`: rendering one instance with a set ([`Templates::render`]), through
//!   `shape` (the parse cache) and `yaml` (the YAML-safe formatter); an Istio
//!   AuthorizationPolicy, the retired per-instance access policy, is left out;
//! - `check`: the checks on every rendered document, over `schema` (the leaf both the
//!   checks and [`istio`] use) and [`istio`] (the Istio CRD tables);
//! - `object`: stamping a checked document and turning it into an object;
//! - `error`: problems that name file, object and cause;
//! - `validate`: validate-templates, rendering sample users; its problems and warnings.

mod check;
pub(crate) mod cidr;
mod error;
mod functions;
mod instance;
pub mod istio;
mod object;
mod schema;
mod set;
mod shape;
mod validate;
mod yaml;

pub use self::{
    error::{Problem, RenderError},
    instance::{JobValues, RenderedObject, build_profile_values, build_values},
    object::{object_label, spec_hash},
    schema::{is_retired_policy, required_labels, unknown_fields},
    set::{SYNC_JOB_TEMPLATE, Source, Templates, VALUES_FILE},
    validate::{RETIRED_POLICY_WARNING, SAMPLE_USERS, validate, validate_profile, warnings},
};
/// Compatibility path: the active set lives beside reload now.
pub use crate::reload::ActiveTemplates;
