//! codeserver-service: personal, persistent code-server workspaces on Kubernetes.
//!
//! Every object the service creates is rendered from admin-owned MiniJinja templates
//! (`render`), compared with what is live (`reconcile::plan`) and applied with server-side
//! apply (`reconcile::apply`). The GraphQL layer only checks identity and arguments.

pub mod activity;
pub mod auth;
pub mod cache;
pub mod capacity;
pub mod cli;
pub mod config;
mod errors;
pub mod gate;
pub mod gitea;
pub mod graphql;
pub mod http;
pub mod instance;
mod lease;
pub mod metrics;
pub mod naming;
pub mod rate_limit;
mod ready;
pub mod reconcile;
pub mod reload;
pub mod render;
mod secret;
pub mod serve;
pub mod telemetry;
pub mod values;

/// Kubernetes resource quantities, parsed exactly.
pub use codeserver_quantity as quantity;

/// The version stamped into the binary (BUILD_VERSION at build time, else the crate's).
pub const VERSION: &str = match option_env!("BUILD_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// Installs rustls' ring crypto provider for the whole process, once.
///
/// reqwest and kube are built without a default provider (`rustls-no-provider`), so every
/// entry point that builds an HTTPS-capable client calls this first. Calling it again, or
/// after another part of the process installed a provider, is harmless.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // NB: `install_default` fails only when a provider is already installed, which is
        // exactly the state we want; the error carries nothing else.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// When the binary was built (BUILD_TIME at build time, RFC 3339), if it was stamped.
pub const BUILD_TIME: Option<&str> = option_env!("BUILD_TIME");
