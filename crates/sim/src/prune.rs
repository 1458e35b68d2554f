//! Decoding as the real server does it: fields the schema does not know are dropped (or
//! refused with `fieldValidation=Strict`); built-in kinds are decoded into their types, so a
//! value of the wrong type is refused (400), while custom resources are pruned against their
//! CRD's structural schema (their types are checked by validation, 422).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::crd;
use super::resources::ResourceDef;
use super::status::ApiError;

/// One step of an unknown field's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// Map key / struct field.
    Key(String),
    /// List index.
    Index(usize),
}

fn segments(p: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
    match p {
        serde_ignored::Path::Root => {}
        serde_ignored::Path::Seq { parent, index } => {
            segments(parent, out);
            out.push(Seg::Index(*index));
        }
        serde_ignored::Path::Map { parent, key } => {
            segments(parent, out);
            out.push(Seg::Key(key.clone()));
        }
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => segments(parent, out),
    }
}

/// `spec.containers[0].foo`
pub fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn check<T: DeserializeOwned>(obj: &Value) -> Result<Vec<Vec<Seg>>, String> {
    let mut unknown = Vec::new();
    let r: Result<T, _> = serde_ignored::deserialize(obj.clone(), |p| {
        let mut segs = Vec::new();
        segments(&p, &mut segs);
        unknown.push(segs);
    });
    r.map(|_| unknown).map_err(|e| e.to_string())
}

/// Unknown field paths of a built-in object, or the decoding error.
pub fn unknown_fields(plural: &str, obj: &Value) -> Result<Vec<Vec<Seg>>, String> {
    use k8s_openapi::api::{batch, core, networking};
    match plural {
        "pods" => check::<core::v1::Pod>(obj),
        "services" => check::<core::v1::Service>(obj),
        "persistentvolumeclaims" => check::<core::v1::PersistentVolumeClaim>(obj),
        "secrets" => check::<core::v1::Secret>(obj),
        "configmaps" => check::<core::v1::ConfigMap>(obj),
        "namespaces" => check::<core::v1::Namespace>(obj),
        "networkpolicies" => check::<networking::v1::NetworkPolicy>(obj),
        "jobs" => check::<batch::v1::Job>(obj),
        "limitranges" => check::<core::v1::LimitRange>(obj),
        "storageclasses" => check::<k8s_openapi::api::storage::v1::StorageClass>(obj),
        _ => Ok(Vec::new()),
    }
}

fn remove(v: &mut Value, path: &[Seg]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        let next = match seg {
            Seg::Key(k) => cur.get_mut(k.as_str()),
            Seg::Index(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.remove(k);
        }
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

/// Unknown field paths of a custom resource: its metadata's against ObjectMeta, the rest
/// against the CRD's schema. The `null`s of non-nullable fields are dropped first.
fn custom_unknown_fields(obj: &mut Value, root: &crd::Node) -> Vec<Vec<Seg>> {
    crd::drop_non_nullable_nulls(obj, root);
    let mut out = Vec::new();
    if let Some(meta) = obj.get("metadata")
        && let Ok(paths) = check::<ObjectMeta>(meta)
    {
        out.extend(paths.into_iter().map(|p| {
            let mut full = vec![Seg::Key("metadata".into())];
            full.extend(p);
            full
        }));
    }
    out.extend(crd::unknown_fields(obj, root));
    out
}

/// Decode an object like the real server: refuse type errors of built-in kinds (400),
/// refuse unknown fields under `Strict`, otherwise drop them. Returns the dropped paths.
pub fn decode(
    def: &ResourceDef,
    version: &str,
    obj: &mut Value,
    strict: bool,
) -> Result<Vec<String>, ApiError> {
    let unknown = match crd::schema_for(def, version) {
        Some(root) => custom_unknown_fields(obj, root),
        None => unknown_fields(def.plural, obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
                kind = def.kind
            ))
        })?,
    };
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = unknown.iter().map(|p| display(p)).collect();
    if strict {
        let list: Vec<String> = names
            .iter()
            .map(|n| format!("unknown field \"{n}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            list.join(", "),
            kind = def.kind
        )));
    }
    // Deepest (and last index) first so earlier removals do not shift later paths.
    let mut sorted = unknown;
    sorted.sort_by(|a, b| {
        b.len()
            .cmp(&a.len())
            .then_with(|| format!("{b:?}").cmp(&format!("{a:?}")))
    });
    for p in &sorted {
        remove(obj, p);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields_with_paths() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "Always"}], "bogus": 1}});
        let mut names: Vec<String> = unknown_fields("pods", &pod)
            .unwrap()
            .iter()
            .map(|p| display(p))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["spec.bogus", "spec.containers[0].imagePullPolcy"]
        );
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "80"}]}]}});
        assert!(unknown_fields("pods", &bad).is_err());
    }
}
