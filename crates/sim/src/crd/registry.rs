//! The CRDs this server knows, read once from the vendored YAML.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::schema::Node;
use crate::resources::ResourceDef;

/// The vendored Istio CRDs.
const ISTIO_CRDS: &str = include_str!("../../crds/istio.yaml");

/// (group, plural, version) → the version's `openAPIV3Schema`.
type Schemas = HashMap<(String, String, String), Node>;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| parse(ISTIO_CRDS))
}

/// Every (group, plural, version) schema of a multi-document CRD YAML; documents that are
/// not CRDs, or do not parse, add nothing (the unit tests check the vendored file).
fn parse(yaml: &str) -> Schemas {
    use serde::Deserialize;
    let mut out = Schemas::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let Ok(crd) = Value::deserialize(doc) else {
            continue;
        };
        if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            continue;
        }
        let text = |p: &str| {
            crd.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (group, plural) = (text("/spec/group"), text("/spec/names/plural"));
        let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
        for version in versions.into_iter().flatten() {
            let (Some(name), Some(schema)) = (
                version.get("name").and_then(Value::as_str),
                version.pointer("/schema/openAPIV3Schema"),
            ) else {
                continue;
            };
            out.insert(
                (group.clone(), plural.clone(), name.to_string()),
                Node::from_json(schema),
            );
        }
    }
    out
}

/// Read the vendored CRDs now (they are otherwise read on first use).
pub(crate) fn load() {
    schemas();
}

/// The schema of a resource's version, `None` for built-in kinds.
pub(crate) fn schema_for(def: &ResourceDef, version: &str) -> Option<&'static Node> {
    if !def.group.ends_with(".istio.io") {
        return None;
    }
    schemas().get(&(
        def.group.to_string(),
        def.plural.to_string(),
        version.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;

    #[test]
    fn every_served_istio_version_has_its_schema() {
        for def in RESOURCES.iter().filter(|d| d.group.ends_with(".istio.io")) {
            for version in def.versions {
                let node = schema_for(def, version)
                    .unwrap_or_else(|| panic!("no schema for {} {version}", def.plural));
                assert!(node.properties.contains_key("spec"), "{}", def.plural);
            }
        }
    }
}
