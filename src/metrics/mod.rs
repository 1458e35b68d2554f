//! Prometheus metrics, owned by one [`Metrics`] value and served as text on METRICS_PORT.
//!
//! The first three metrics carry the spec's names, labels and buckets exactly; the others add
//! request latency per GraphQL operation and call counts for Kubernetes, Gitea and template
//! reloads. Label values must come from small, fixed sets (status names, verbs, results):
//! never a client-supplied string and never a user's name. The spec's storage gauge keeps its
//! `user` label, with the one value `ALL_USERS`: the total over every workspace.

mod kube_calls;
mod registry;

pub(crate) use self::kube_calls::KubeCounter;
pub use self::registry::{Metrics, MetricsError};
