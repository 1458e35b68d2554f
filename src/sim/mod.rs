//! Simulated neighbours for tests and `demo`: a token issuer with a JWKS, and Gitea.

pub mod gitea;
pub mod issuer;
