//! codeserver-service: personal, persistent code-server workspaces on Kubernetes.
//!
//! Every object the service creates is rendered from admin-owned MiniJinja templates
//! (`render`), compared with what is live (`reconcile::plan`) and applied with server-side
//! apply (`reconcile::apply`). The GraphQL layer only checks identity and arguments.
pub mod sim;
