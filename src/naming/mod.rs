//! Names: user ids to DNS-safe names, the object names derived from them, label keys,
//! and Gitea's rules for repository owners and names.
//!
//! Usernames come from tokens and can be anything (`John.Doe@corp`, unicode, 200
//! characters). Object names and label values must be DNS-1123 labels of at most 63
//! characters. The safe name is lowercased, runs of anything but `[a-z0-9]` become `-`,
//! it is trimmed and truncated, and it gets a short hash of the original id whenever it
//! differs from the original, so that `john.doe` and `john-doe` never share an instance.
//!
//! No two ids map to one name: a kept name never ends in `-` and sixteen (or, the shape
//! earlier versions hashed to, eight) hex digits, and a hashed name always ends in `-`
//! and sixteen, so an id that is already a valid name but looks hashed
//! (`john-doe-30f69670`) is hashed too. Two hashed names are equal only when the 64-bit
//! hash prefixes are, which is out of reach of a targeted search; the reconciler's
//! safety net (it never applies over a live object another owner holds) covers the rest.
//! Instances named by the earlier 32-bit scheme keep their names
//! ([`legacy_safe_name`]): the reconciler finds them under the old name and takes them
//! for the caller's only when the record names the caller's user id.
//!
//! - `keys`, `limits`: label keys and the lengths names keep to;
//! - `user`: user ids to safe names ([`safe_name`]);
//! - `objects`: the object names derived from a safe name;
//! - `principal`: the owner key and the Istio request principal;
//! - `repo`: Gitea's rules for repositories and clone URLs;
//! - `dns`: Kubernetes' rules for names, label values and keys.

mod dns;
mod error;
mod keys;
mod limits;
mod objects;
mod principal;
mod repo;
mod user;

pub use self::{
    dns::*, error::NamingError, keys::*, limits::*, objects::*, principal::*, repo::*, user::*,
};
