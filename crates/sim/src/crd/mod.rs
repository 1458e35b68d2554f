//! Custom resources checked against their CRD's `openAPIV3Schema`, as the real API server
//! does for structural schemas: unknown fields are pruned (or refused under strict field
//! validation), `null`s of non-nullable fields dropped, then types, formats, `required` and
//! `enum` validated with the real server's field paths and messages.
//!
//! The CRDs are Istio's own (`crds/istio.yaml`, vendored unchanged). Not evaluated, as a
//! difference from a real server: `x-kubernetes-validations` (CEL), `oneOf`/`anyOf`/`not`,
//! `pattern`, minimum/maximum and length or item-count limits.

mod registry;
mod schema;
mod validate;

pub(crate) use registry::{load, schema_for};
pub(crate) use schema::{Node, drop_non_nullable_nulls, unknown_fields};
pub(crate) use validate::validate;
