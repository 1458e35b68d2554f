//! Discovery documents, `/version`, health endpoints and server-side table printing.

mod groups;
mod respond;
mod table;

pub(crate) use groups::*;
pub(crate) use respond::*;
pub(crate) use table::*;
