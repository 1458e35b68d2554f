//! Resource quantities in the canonical form the real server stores (`0.5` → `500m`,
//! `1024Mi` → `1Gi`, `1` (a number) → `"1"`), and read as amounts for validation.

use codeserver_quantity::Quantity;
use serde_json::Value;

/// A quantity given as a JSON string or number; `None` when it is not one.
pub fn quantity_of(v: &Value) -> Option<Quantity> {
    match v {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The canonical string for a quantity, or `None` if it does not parse (left as it is).
pub fn canonical(v: &Value) -> Option<String> {
    quantity_of(v).map(Quantity::canonical)
}

/// Canonicalise every quantity map this service meets in an object of a resource.
pub fn canonicalise(plural: &str, obj: &mut Value) {
    let mut maps: Vec<String> = Vec::new();
    let pod_spec = match plural {
        "pods" => Some("/spec"),
        "jobs" => Some("/spec/template/spec"),
        _ => None,
    };
    if let Some(ps) = pod_spec {
        for list in ["containers", "initContainers"] {
            let n = obj
                .pointer(&format!("{ps}/{list}"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..n {
                maps.push(format!("{ps}/{list}/{i}/resources/requests"));
                maps.push(format!("{ps}/{list}/{i}/resources/limits"));
            }
        }
        maps.push(format!("{ps}/overhead"));
        let vols = obj
            .pointer(&format!("{ps}/volumes"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..vols {
            if let Some(v) = obj.pointer_mut(&format!("{ps}/volumes/{i}/emptyDir/sizeLimit"))
                && let Some(c) = canonical(v)
            {
                *v = Value::String(c);
            }
        }
    }
    if plural == "persistentvolumeclaims" {
        maps.extend(
            [
                "/spec/resources/requests",
                "/spec/resources/limits",
                "/status/capacity",
            ]
            .map(String::from),
        );
    }
    for m in maps {
        if let Some(Value::Object(q)) = obj.pointer_mut(&m) {
            for v in q.values_mut() {
                if let Some(c) = canonical(v) {
                    *v = Value::String(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_forms() {
        let cases = [
            (json!("0.5"), "500m"),
            (json!("1000m"), "1"),
            (json!(1), "1"),
            (json!(0.25), "250m"),
            (json!("1024Mi"), "1Gi"),
            (json!("1.5Gi"), "1536Mi"),
            (json!(" 2 "), "2"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(&input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(canonical(&json!("lots")), None);
        assert!(quantity_of(&json!("2Gi")) > quantity_of(&json!("1500Mi")));
    }
}
