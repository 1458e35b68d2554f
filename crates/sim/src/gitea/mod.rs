//! A small simulated Gitea on 127.0.0.1: a few users and repositories, private and public,
//! answering the REST API v1 calls this service makes, in Gitea's JSON shape.
//!
//! The caller is identified as Gitea does: an access token (`Authorization: token <t>` or
//! `Bearer <t>`), [`SERVICE_TOKEN`] being a site admin's; a site admin may act as another
//! user with the `Sudo` header or `sudo` query parameter (an unknown user is 404, anyone
//! else's Sudo 403 "Only administrators allowed to sudo."). For the forwarding mode a
//! bearer JWT checked against the simulated issuer's keys is accepted too. Private
//! repositories answer 404 to anyone but their owner and collaborators, like Gitea. Deploy
//! keys (`/repos/{owner}/{repo}/keys`: add, list, delete) need admin rights on the
//! repository (its owner, or a site admin) and are kept per repository. Users' own SSH
//! keys (`/user/keys`, and `/admin/users/{username}/keys` for site admins) are kept per
//! user with their OpenSSH fingerprint; a key is registered once, as a user or deploy key.
//!
//! Users are accounts ([`SimUser`]) as Gitea keeps them: the service's [`SERVICE_USER`] is
//! a local site admin; everyone else is linked to the identity provider (login source
//! [`OIDC_SOURCE_ID`], `login_name` the token's `sub`, `sub-<login>` for the simulated
//! issuer's tokens) unless a test adds another kind. `GET /users/{username}` shows the
//! admin-only fields (`login_name`, `source_id`, `is_admin`, `active`, ...) only to a site
//! admin or the user themself, like Gitea. Faults
//! ([`GiteaFault`]) make it answer 503 or 500 so tests can see retries and outages, and every
//! request is counted so tests can assert that no call was made.

mod repos;
mod routes;
mod state;
mod user_keys;
mod users;

pub use state::{
    GiteaFault, SERVICE_TOKEN, SERVICE_USER, SimDeployKey, SimGitea, SimGiteaError, SimRepo, USERS,
    default_repos, personal_token,
};
pub use user_keys::SimUserKey;
pub use users::{OIDC_SOURCE_ID, SimUser};
