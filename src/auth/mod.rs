//! Who is calling: a Bearer JWT verified against the Keycloak JWKS (or HS256 with
//! JWT_SECRET), or, behind Istio and only when configured, the forwarded identity headers.
//!
//! The raw token is kept in the [`Identity`] because the same token is forwarded to Gitea;
//! it never reaches a log (`Debug` redacts it). Every failure is a typed [`AuthError`] for
//! the log; callers only ever see `UNAUTHORIZED`.

mod error;
mod headers;
mod identity;
mod jwks;
mod settings;
mod verified;
mod verify;

pub use self::{
    error::AuthError, identity::Identity, settings::AuthSettings, verify::Authenticator,
};
pub(crate) use self::{
    error::{UNAUTHORIZED, truncate_for_log},
    settings::{DEFAULT_JWKS_URL, MIN_JWT_SECRET_BYTES},
};
