//! Typed access to the objects of `k8s/` that several tests look at.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Container, PodSpec},
};
use serde_json::Value;

use super::{Document, find, known_fields::strict, manifests};

/// The service's own namespace.
pub const SERVICE_NAMESPACE: &str = "dev-platform";
/// The namespace of the users' instances.
pub const INSTANCES_NAMESPACE: &str = "codeserver-instances";
/// The ingress gateway's namespace (GATEWAY_NAMESPACE), where access policies live.
pub const GATEWAY_NAMESPACE: &str = "istio-system";

/// `document` as `T`, with no unknown field; panics naming the document otherwise.
pub fn typed<T: serde::de::DeserializeOwned>(document: &Document) -> T {
    strict::<T>(&document.value).unwrap_or_else(|err| panic!("{}: {err}", document.describe()))
}

pub fn config() -> BTreeMap<String, String> {
    let documents = manifests();
    let config: ConfigMap = typed(find(&documents, "ConfigMap", "codeserver-service-config"));
    config.data.unwrap_or_default()
}

pub fn deployment() -> Deployment {
    typed(find(&manifests(), "Deployment", "codeserver-service"))
}

pub fn pod_spec(deployment: &Deployment) -> PodSpec {
    deployment
        .spec
        .template
        .spec
        .clone()
        .expect("the Deployment has a pod template spec")
}

pub fn pod_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|meta| meta.labels.clone())
        .expect("the pod template has labels")
}

pub fn main_container(spec: &PodSpec) -> &Container {
    spec.containers
        .iter()
        .find(|c| c.name == "codeserver-service")
        .expect("a container named codeserver-service")
}

/// `matchLabels` selects `labels` when every pair is present.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn string_map(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}
