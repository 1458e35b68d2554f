//! Field paths and field sets in the API server's `FieldsV1` format, and the schema facts
//! (list types, merge keys, atomic maps) that decide how objects merge.

mod access;
mod path;
mod schema;
mod sets;

pub(crate) use access::*;
pub(crate) use path::*;
pub(crate) use schema::*;
pub(crate) use sets::*;
