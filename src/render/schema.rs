//! The schema rendered objects are checked against, shared by the general checks
//! (`check`) and the Istio tables (`istio`), and depending on neither: the ownership
//! labels, the retired per-instance access policy's kind (left out of every render), and
//! the typed schemas of the kinds `k8s-openapi` knows.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        rbac::v1::{Role, RoleBinding},
    },
    serde::de::DeserializeOwned,
};
use serde_json::Value;

use crate::naming;

/// The labels every rendered object must carry, with the value each must have.
pub fn required_labels(
    instance_id: &str,
    safe_name: &str,
    owner: &str,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (
            naming::LABEL_MANAGED_BY,
            naming::MANAGED_BY_VALUE.to_owned(),
        ),
        (naming::LABEL_NAME, naming::APP_NAME_VALUE.to_owned()),
        (naming::LABEL_INSTANCE, instance_id.to_owned()),
        (naming::LABEL_USER, safe_name.to_owned()),
        (naming::LABEL_OWNER, owner.to_owned()),
    ])
}

/// Group of the per-instance access policy earlier versions rendered: an Istio
/// AuthorizationPolicy in the ingress gateway's namespace, one per workspace.
///
/// NB: the service is the workspace gatekeeper now (one static CUSTOM policy,
/// `k8s/10-workspace-access.yaml`, asks it about every request for a workspace host), and
/// it has no rights in the gateway's namespace any more. A template set that still renders
/// such a policy keeps working: the render leaves the policy out of the objects it
/// returns, so it is never checked, applied or recorded, and `validate-templates` warns
/// that it is no longer needed.
pub const RETIRED_POLICY_GROUP: &str = "security.istio.io";
/// Kind of the retired per-instance access policy.
pub const RETIRED_POLICY_KIND: &str = "AuthorizationPolicy";

/// True for the retired per-instance access policy's kind, at any served version: an
/// Istio AuthorizationPolicy, which the render leaves out wherever a template puts it.
pub fn is_retired_policy(api_version: &str, kind: &str) -> bool {
    kind == RETIRED_POLICY_KIND
        && api_version
            .split_once('/')
            .is_some_and(|(group, _)| group == RETIRED_POLICY_GROUP)
}

/// For kinds `k8s-openapi` knows: fields the type does not have, and type errors (none
/// for other kinds).
pub fn builtin_kind_problems(api_version: &str, kind: &str, obj: &Value) -> Vec<String> {
    match (api_version, kind) {
        ("v1", "Pod") => unknown_fields::<Pod>(obj),
        ("v1", "PersistentVolumeClaim") => unknown_fields::<PersistentVolumeClaim>(obj),
        ("v1", "Service") => unknown_fields::<Service>(obj),
        ("v1", "ConfigMap") => unknown_fields::<ConfigMap>(obj),
        ("v1", "Secret") => unknown_fields::<Secret>(obj),
        ("v1", "ServiceAccount") => unknown_fields::<ServiceAccount>(obj),
        ("networking.k8s.io/v1", "NetworkPolicy") => unknown_fields::<NetworkPolicy>(obj),
        ("batch/v1", "Job") => unknown_fields::<Job>(obj),
        ("rbac.authorization.k8s.io/v1", "Role") => unknown_fields::<Role>(obj),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => unknown_fields::<RoleBinding>(obj),
        _ => Vec::new(),
    }
}

/// Deserializes `obj` as `T`, reporting every field `T` does not have (so `contianers:`
/// is caught instead of silently dropped) and any type mismatch.
pub fn unknown_fields<T: DeserializeOwned>(obj: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let result: Result<T, _> = serde_ignored::deserialize(obj, |path| {
        // NB: serde_ignored writes `?` for each Option on the way; people want the field path.
        let path = path.to_string();
        let clean: Vec<&str> = path.split('.').filter(|seg| *seg != "?").collect();
        unknown.push(format!("unknown field {}", clean.join(".")));
    });
    if let Err(e) = result {
        unknown.push(format!("does not match the Kubernetes schema: {e}"));
    }
    unknown
}
