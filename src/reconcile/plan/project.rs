//! The live object projected onto the shape of the desired one, scalars the API server
//! reformats taken as equal.

use serde_json::{Map, Value};

use crate::quantity::Quantity;

/// The live value restricted to the shape of the desired one, with equivalent scalars
/// replaced by the desired form.
pub fn project(want: &Value, have: &Value) -> Value {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            let mut out = Map::new();
            for (k, wv) in w {
                if let Some(hv) = h.get(k) {
                    out.insert(k.clone(), project(wv, hv));
                }
            }
            Value::Object(out)
        }
        (Value::Array(w), Value::Array(h)) if is_keyed(w) => {
            let out = w
                .iter()
                .filter_map(|wv| {
                    let name = wv.get("name")?;
                    h.iter()
                        .find(|hv| hv.get("name") == Some(name))
                        .map(|hv| project(wv, hv))
                })
                .collect();
            Value::Array(out)
        }
        (Value::Array(w), Value::Array(h)) if w.len() == h.len() => {
            Value::Array(w.iter().zip(h).map(|(wv, hv)| project(wv, hv)).collect())
        }
        (w, h) if equivalent(w, h) => w.clone(),
        (_, h) => h.clone(),
    }
}

/// Lists merged by `name` (containers, env, volumes, ports): every element has one.
fn is_keyed(list: &[Value]) -> bool {
    !list.is_empty()
        && list
            .iter()
            .all(|v| v.get("name").is_some_and(Value::is_string))
}

/// Scalars the API server may reformat: quantities and int-or-string.
fn equivalent(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::String(w), Value::String(h)) => {
            w == h
                || matches!((w.parse::<Quantity>(), h.parse::<Quantity>()), (Ok(a), Ok(b)) if a == b)
        }
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            n.to_string() == *s
        }
        (w, h) => w == h,
    }
}
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_the_server_reformats_are_equivalent() {
        assert!(equivalent(&json!("1Gi"), &json!("1024Mi")));
        assert!(equivalent(&json!(8080), &json!("8080")));
        assert!(equivalent(&json!("0.5"), &json!("500m")));
        assert!(!equivalent(&json!("1G"), &json!("1Gi")));
        assert!(!equivalent(&json!("http"), &json!(8080)));
    }
}
