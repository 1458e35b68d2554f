//! Gitea's REST API v1, asked as the caller.
//!
//! Stock Gitea does not accept Keycloak tokens on its API, so by default
//! ([`AuthMode::Sudo`]) the service calls with its own admin token (`GITEA_TOKEN`) and
//! Gitea's `Sudo` header naming the caller's Gitea username: Gitea then answers exactly as
//! it would answer that user. Only for an account that is provably the caller's (see
//! [`account`]): it is read once with the admin token (the verdict kept for a minute) and
//! must be linked to the token's `sub` (or, with [`LinkBy::Email`], its verified email),
//! and never a site admin, restricted or inactive; any other is `repository access denied`
//! without a `Sudo` call. [`AuthMode::Forward`] forwards the caller's bearer token
//! instead, for a Gitea that trusts the identity provider's tokens.
//!
//! Access to a repository is decided by Gitea: a lookup as the caller that answers
//! 200 with `permissions.pull` means access; 404, 403 and 401 mean `repository access denied`
//! (Gitea answers 404 for private repositories the caller may not see, so existence does not
//! leak). Repository owner and name are checked against Gitea's naming rules before any call,
//! so hostile input never reaches the network. Transport errors and 5xx answers are retried a
//! few times with capped exponential backoff; after that the call fails as
//! [`GiteaError::Unavailable`].

pub mod account;
mod client;
mod error;
mod keys;
mod link;
mod repos;
mod repository;
mod search;
mod settings;
mod user_keys;

use self::repository::ApiRepository;
pub use self::{
    account::NotLinked,
    client::GiteaClient,
    error::{GiteaError, Unavailable},
    repos::PAGE_LIMIT,
    repository::{DeployKey, Repository},
    search::MAX_PAGE,
    settings::{AuthMode, Caller, GiteaSettings, LinkBy},
    user_keys::UserKey,
};
