//! Turning a checked document into an object to apply: the template revision and the pod
//! spec hash stamped on, and names for messages.

use kube::api::DynamicObject;
use serde_json::Value;

use crate::naming;

/// Stamps the template revision (and, on pods, the spec hash) and converts to an object.
pub(super) fn finish(mut value: Value, revision: &str) -> Result<DynamicObject, String> {
    let spec_hash = (value.get("kind").and_then(Value::as_str) == Some("Pod"))
        .then(|| value.get("spec").map(spec_hash))
        .flatten();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                naming::ANNOTATION_TEMPLATE_REVISION.to_owned(),
                Value::String(revision.to_owned()),
            );
            if let Some(hash) = spec_hash {
                annotations.insert(naming::ANNOTATION_SPEC_HASH.to_owned(), Value::String(hash));
            }
        }
    }
    into_object(value)
}

/// Converts a checked document into an object.
///
/// NB: `DynamicObject` flattens its type and data fields, which serde can only
/// deserialize through a buffered copy; taking the map apart by hand is several times
/// cheaper on this hot path.
fn into_object(value: Value) -> Result<DynamicObject, String> {
    let Value::Object(mut map) = value else {
        return Err("not a mapping".to_owned());
    };
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err("apiVersion and kind must be strings".to_owned()),
    };
    let api_version = text(map.remove("apiVersion"))?;
    let kind = text(map.remove("kind"))?;
    let metadata = serde_json::from_value(map.remove("metadata").unwrap_or(Value::Null))
        .map_err(|e| format!("metadata is not valid object metadata: {e}"))?;
    Ok(DynamicObject {
        types: Some(kube::api::TypeMeta { api_version, kind }),
        metadata,
        data: Value::Object(map),
    })
}

/// Hash of a pod's rendered spec, like a Deployment's pod-template-hash: 64-bit FNV-1a
/// over the spec's JSON, 16 hex digits. Stable across versions and replicas.
pub fn spec_hash(spec: &Value) -> String {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            for b in buf {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut fnv = Fnv(0xcbf2_9ce4_8422_2325);
    // NB: serde_json maps are sorted, so equal specs serialize identically.
    if serde_json::to_writer(&mut fnv, spec).is_err() {
        return String::new();
    }
    format!("{:016x}", fnv.0)
}

/// `Kind/name` of a rendered document (`document N` when it has neither), for messages.
pub(super) fn value_label(v: &Value, index: usize) -> String {
    let kind = v.get("kind").and_then(Value::as_str);
    let name = v.pointer("/metadata/name").and_then(Value::as_str);
    match (kind, name) {
        (Some(k), Some(n)) => format!("{k}/{n}"),
        (Some(k), None) => format!("{k} (document {})", index + 1),
        _ => format!("document {}", index + 1),
    }
}

/// `Kind/name` of an object, for messages and plans.
pub fn object_label(obj: &DynamicObject) -> String {
    let kind = obj.types.as_ref().map(|t| t.kind.as_str()).unwrap_or("?");
    format!("{kind}/{}", obj.metadata.name.as_deref().unwrap_or("?"))
}
