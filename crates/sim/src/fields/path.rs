//! Field paths and sets, and their `FieldsV1` encoding.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// `f:name`: a field of a struct or map.
    Field(String),
    /// `k:{"name":"x"}`: an element of an associative list, by its key fields (sorted JSON).
    Key(String),
    /// `v:"x"`: an element of a set list, by value (JSON).
    Value(String),
    /// `i:3`: an element of an atomic list by index (not produced, but parsed).
    Index(usize),
}

/// A field path from the object root.
pub type FieldPath = Vec<PathElement>;
/// A set of owned field paths.
pub type FieldSet = BTreeSet<FieldPath>;

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<PathElement> {
        let (kind, rest) = s.split_once(':')?;
        Some(match kind {
            "f" => PathElement::Field(rest.to_string()),
            "k" => PathElement::Key(rest.to_string()),
            "v" => PathElement::Value(rest.to_string()),
            "i" => PathElement::Index(rest.parse().ok()?),
            _ => return None,
        })
    }
}

/// `.spec.containers[name="x"].image`, the form used in conflict messages.
pub fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for pe in path {
        match pe {
            PathElement::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElement::Key(k) => {
                let parts: Vec<String> = match serde_json::from_str::<Map<String, Value>>(k) {
                    Ok(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    Err(_) => vec![k.clone()],
                };
                out.push('[');
                out.push_str(&parts.join(","));
                out.push(']');
            }
            PathElement::Value(v) => {
                out.push_str("[=");
                out.push_str(v);
                out.push(']');
            }
            PathElement::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Encode a field set as a `fieldsV1` object.
pub fn encode(set: &FieldSet) -> Value {
    let paths: Vec<&FieldPath> = set.iter().collect();
    encode_level(&paths, 0)
}

// NB: the set is sorted, so paths sharing a prefix are contiguous and a member node's own
// path comes right before its children.
pub(crate) fn encode_level(paths: &[&FieldPath], depth: usize) -> Value {
    let mut m = Map::new();
    let mut i = 0;
    while i < paths.len() {
        if paths[i].len() == depth {
            m.insert(".".to_string(), Value::Object(Map::new()));
            i += 1;
            continue;
        }
        let pe = &paths[i][depth];
        let mut j = i;
        while j < paths.len() && paths[j].len() > depth && paths[j][depth] == *pe {
            j += 1;
        }
        m.insert(pe.encode(), encode_level(&paths[i..j], depth + 1));
        i = j;
    }
    if m.len() == 1 && m.contains_key(".") {
        return Value::Object(Map::new());
    }
    Value::Object(m)
}

/// Decode a `fieldsV1` object.
pub fn decode(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    decode_into(v, &mut path, &mut out);
    out
}

pub(crate) fn decode_into(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Value::Object(m) = v else { return };
    for (k, child) in m {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        let Some(pe) = PathElement::decode(k) else {
            continue;
        };
        path.push(pe);
        match child {
            Value::Object(cm) if !cm.is_empty() => decode_into(child, path, out),
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

/// True when `prefix` is a strict prefix of `path`.
pub fn is_strict_prefix(prefix: &[PathElement], path: &[PathElement]) -> bool {
    path.len() > prefix.len() && path[..prefix.len()] == *prefix
}
