//! Kubernetes kinds against their `k8s-openapi` types.
//!
//! NB: `k8s-openapi`'s deserializers skip unknown fields silently, so a typo such as
//! `contianers:` or a field indented one level too deep would pass a plain
//! deserialization (and the API server would drop it, or refuse it with strict field
//! validation). `serde_ignored` reports every field that was skipped.

use codeserver_service::render::unknown_fields;
use k8s_openapi::{
    Resource,
    api::{
        apps::v1::Deployment,
        core::v1::{
            ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
        },
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a document turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// A Kubernetes kind that deserialized into its type with no unknown field.
    Kubernetes,
    /// Not a kind `k8s-openapi` knows (e.g. an Istio custom resource).
    NotKubernetes,
}

/// Deserializes `value` into `T`; the error lists the parse failure or every ignored
/// field by path. The detection is the service's own render check
/// ([`codeserver_service::render::unknown_fields`]), so manifests and rendered objects
/// are held to the same rule.
pub fn strict<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    let problems = unknown_fields::<T>(value);
    if !problems.is_empty() {
        return Err(problems.join(", "));
    }
    serde_json::from_value(value.clone()).map_err(|err| format!("does not deserialize: {err}"))
}

fn strict_kind<T: DeserializeOwned>(value: &Value) -> Result<Checked, String> {
    strict::<T>(value).map(|_| Checked::Kubernetes)
}

/// Checks one document by its apiVersion and kind.
pub fn check(value: &Value) -> Result<Checked, String> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    macro_rules! dispatch {
        ($($ty:ty),* $(,)?) => {
            $(if api_version == <$ty as Resource>::API_VERSION && kind == <$ty as Resource>::KIND {
                return strict_kind::<$ty>(value);
            })*
        };
    }
    dispatch!(
        Namespace,
        ConfigMap,
        Secret,
        ServiceAccount,
        Service,
        Deployment,
        Role,
        RoleBinding,
        ClusterRole,
        ClusterRoleBinding,
        PodDisruptionBudget,
        NetworkPolicy,
        ResourceQuota,
        LimitRange,
    );
    Ok(Checked::NotKubernetes)
}
