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
//! repository (its owner, or a site admin) and are kept per repository. Faults
//! ([`GiteaFault`]) make it answer 503 or 500 so tests can see retries and outages, and every
//! request is counted so tests can assert that no call was made.

mod repos;
mod routes;
mod state;

pub use state::{
    GiteaFault, SERVICE_TOKEN, SERVICE_USER, SimDeployKey, SimGitea, SimGiteaError, SimRepo, USERS,
    default_repos, personal_token,
};
