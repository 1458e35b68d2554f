//! Names: user ids to DNS-safe names, the object names derived from them, label keys,
//! and Gitea's rules for repository owners and names.
//!
//! Usernames come from tokens and can be anything (`John.Doe@corp`, unicode, 200
//! characters). Object names and label values must be DNS-1123 labels of at most 63
//! characters. The safe name is lowercased, runs of anything but `[a-z0-9]` become `-`,
//! it is trimmed and truncated, and it gets a short hash of the original id whenever it
//! differs from the original, so that `john.doe` and `john-doe` never share an instance.
//!
//! No two ids map to one name: a kept name never ends in `-` and eight hex digits, and a
//! hashed name always does, so an id that is already a valid name but looks hashed
//! (`john-doe-30f69670`) is hashed too. Two hashed names are equal only when the 32-bit
//! hash prefixes are, which a determined attacker can search for; the reconciler's safety
//! net (it never applies over a live object another owner holds) covers that case.
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
