//! codeserver-service: personal, persistent code-server workspaces on Kubernetes.
//!
//! Every object the service creates is rendered from admin-owned MiniJinja templates
//! (`render`), compared with what is live (`reconcile::plan`) and applied with server-side
//! apply (`reconcile::apply`). The GraphQL layer only checks identity and arguments.

pub mod cli;
pub mod config;
pub mod instance;
pub mod naming;
pub mod quantity;
pub mod reconcile;
pub mod reload;
pub mod render;
pub mod sim;
pub mod values;

/// The version stamped into the binary (BUILD_VERSION at build time, else the crate's).
pub const VERSION: &str = match option_env!("BUILD_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// When the binary was built (BUILD_TIME at build time, RFC 3339), if it was stamped.
pub const BUILD_TIME: Option<&str> = option_env!("BUILD_TIME");
