//! Validation of a custom resource against its structural schema, with the causes the real
//! server gives (kube-openapi's validator, turned into field errors by apiextensions).

use base64::Engine;
use serde_json::{Value, json};

use super::schema::{JsonType, Node};
use crate::status::{Cause, field_invalid, field_not_supported, field_required};

/// Every schema violation of `obj` (a whole custom resource) against its `root` schema.
pub(crate) fn validate(obj: &Value, root: &Node) -> Vec<Cause> {
    let mut out = Vec::new();
    let Value::Object(m) = obj else {
        return out;
    };
    // NB: apiVersion, kind and metadata are the API server's and checked apart.
    for name in &root.required {
        if !m.contains_key(name) {
            out.push(field_required(name, ""));
        }
    }
    for (k, child) in m {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = root.properties.get(k).or(root.additional.as_deref()) {
            node(child, s, k, &mut out);
        }
    }
    out
}

/// The type name kube-openapi reports for a value.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(v: &Value, t: JsonType) -> bool {
    match (t, v) {
        (JsonType::String, Value::String(_))
        | (JsonType::Boolean, Value::Bool(_))
        | (JsonType::Object, Value::Object(_))
        | (JsonType::Array, Value::Array(_))
        | (JsonType::Number, Value::Number(_)) => true,
        // NB: a JSON number with an integral value (`80.0`) passes as an integer.
        (JsonType::Integer, Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// field.TypeInvalid with kube-openapi's `<path> in body must be of type <type>: "<got>"`.
fn type_invalid(path: &str, shown: &Value, wanted: &str, got: &str) -> Cause {
    let mut c = field_invalid(
        path,
        shown,
        &format!("{path} in body must be of type {wanted}: {got:?}"),
    );
    c.reason = "FieldValueTypeInvalid".into();
    c
}

fn node(v: &Value, s: &Node, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() && s.nullable {
        return;
    }
    if !s.types.is_empty() && !s.types.iter().any(|t| type_matches(v, *t)) {
        let wanted: Vec<&str> = s.types.iter().map(|t| t.name()).collect();
        let got = type_of(v);
        out.push(type_invalid(path, &json!(got), &wanted.join(","), got));
        return;
    }
    if let (Some(format), Value::String(text)) = (s.format.as_deref(), v)
        && !format_ok(format, text)
    {
        out.push(type_invalid(path, v, format, text));
    }
    if !s.allowed.is_empty() && !s.allowed.contains(v) {
        let supported: Vec<String> = s
            .allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
        out.push(field_not_supported(path, v, &supported));
    }
    match v {
        Value::Object(m) => {
            for name in &s.required {
                if !m.contains_key(name) {
                    out.push(field_required(&format!("{path}.{name}"), ""));
                }
            }
            for (k, child) in m {
                if let Some(cs) = s.properties.get(k).or(s.additional.as_deref()) {
                    node(child, cs, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for (i, child) in a.iter().enumerate() {
                    node(child, items, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The string formats the real server checks (the others, and number formats such as
/// `int32`, pass: kube-openapi checks no integer range for them).
fn format_ok(format: &str, text: &str) -> bool {
    match format {
        "date-time" => text.parse::<jiff::Timestamp>().is_ok(),
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(schema: Value, obj: Value) -> Vec<String> {
        validate(&obj, &Node::from_json(&schema))
            .into_iter()
            .map(|c| format!("{} {}: {}", c.reason, c.field, c.message))
            .collect()
    }

    #[test]
    fn types_required_enums_and_formats() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "required": ["host"],
        "properties": {
            "host": {"type": "string"},
            "port": {"type": "integer", "format": "int32"},
            "weight": {"type": "number"},
            "on": {"type": "boolean"},
            "action": {"type": "string", "enum": ["ALLOW", "DENY"]},
            "target": {"x-kubernetes-int-or-string": true},
            "at": {"type": "string", "format": "date-time"},
            "list": {"type": "array", "items": {"type": "string"}},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}}
        }}}});
        let ok = json!({"spec": {"host": "h", "port": 80.0, "weight": 1, "on": true,
            "action": "DENY", "target": "http", "at": "2026-01-02T03:04:05Z",
            "list": ["a"], "map": {"a": 1}}});
        assert!(messages(schema.clone(), ok).is_empty());
        let got = messages(
            schema,
            json!({"spec": {"port": "80", "weight": "x", "on": 1, "action": "MAYBE",
                "target": 1.5, "at": "yesterday", "list": [1], "map": {"a": "b"}}}),
        );
        assert_eq!(
            got,
            [
                "FieldValueRequired spec.host: Required value",
                "FieldValueNotSupported spec.action: Unsupported value: \"MAYBE\": supported values: \"ALLOW\", \"DENY\"",
                "FieldValueTypeInvalid spec.at: Invalid value: \"yesterday\": spec.at in body must be of type date-time: \"yesterday\"",
                "FieldValueTypeInvalid spec.list[0]: Invalid value: \"integer\": spec.list[0] in body must be of type string: \"integer\"",
                "FieldValueTypeInvalid spec.map.a: Invalid value: \"string\": spec.map.a in body must be of type integer: \"string\"",
                "FieldValueTypeInvalid spec.on: Invalid value: \"integer\": spec.on in body must be of type boolean: \"integer\"",
                "FieldValueTypeInvalid spec.port: Invalid value: \"string\": spec.port in body must be of type integer: \"string\"",
                "FieldValueTypeInvalid spec.target: Invalid value: \"number\": spec.target in body must be of type integer,string: \"number\"",
                "FieldValueTypeInvalid spec.weight: Invalid value: \"string\": spec.weight in body must be of type number: \"string\"",
            ]
        );
    }
}
