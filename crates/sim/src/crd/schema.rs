//! One node of a structural schema, and the pruning walk that finds the fields it does not
//! know.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::prune::Seg;

/// A JSON type a schema node allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonType {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
}

impl JsonType {
    fn parse(s: &str) -> Option<JsonType> {
        Some(match s {
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "boolean" => JsonType::Boolean,
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            _ => return None,
        })
    }

    /// The name the schema and the messages use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Object => "object",
            JsonType::Array => "array",
        }
    }
}

/// One node of a structural schema (the parts this server evaluates).
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    /// Allowed types; empty allows any (`x-kubernetes-int-or-string` gives integer and
    /// string).
    pub types: Vec<JsonType>,
    /// `format` (`int32`, `date-time`, `byte`, ...).
    pub format: Option<String>,
    /// `properties`.
    pub properties: BTreeMap<String, Node>,
    /// `additionalProperties` (a schema for every other key).
    pub additional: Option<Box<Node>>,
    /// `items`.
    pub items: Option<Box<Node>>,
    /// `required`.
    pub required: Vec<String>,
    /// `enum`; empty for none.
    pub allowed: Vec<Value>,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown: bool,
    /// `nullable`.
    pub nullable: bool,
}

impl Node {
    /// Read a node from its JSON form.
    pub(crate) fn from_json(v: &Value) -> Node {
        let int_or_string = v
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let types = if int_or_string {
            vec![JsonType::Integer, JsonType::String]
        } else {
            v.get("type")
                .and_then(Value::as_str)
                .and_then(JsonType::parse)
                .into_iter()
                .collect()
        };
        let properties = v
            .get("properties")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, s)| (k.clone(), Node::from_json(s)))
                    .collect()
            })
            .unwrap_or_default();
        // NB: `additionalProperties: true` keeps every key, like preserve-unknown-fields.
        let additional = match v.get("additionalProperties") {
            Some(Value::Object(_)) => v.get("additionalProperties").map(Node::from_json),
            Some(Value::Bool(true)) => Some(Node {
                preserve_unknown: true,
                ..Node::default()
            }),
            _ => None,
        };
        Node {
            types,
            format: v.get("format").and_then(Value::as_str).map(str::to_string),
            properties,
            additional: additional.map(Box::new),
            items: v.get("items").map(|i| Box::new(Node::from_json(i))),
            required: v
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            allowed: v
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            preserve_unknown: v
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            nullable: v.get("nullable").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    /// The schema of a field of an object this node describes.
    fn field(&self, key: &str) -> Option<&Node> {
        self.properties.get(key).or(self.additional.as_deref())
    }
}

/// Drop the `null`s of fields that are not nullable (the real server prunes them before
/// defaulting, so a `null` never fails validation there).
pub(crate) fn drop_non_nullable_nulls(v: &mut Value, node: &Node) {
    match v {
        Value::Object(m) => {
            m.retain(|k, child| !(child.is_null() && node.field(k).is_some_and(|s| !s.nullable)));
            for (k, child) in m.iter_mut() {
                if let Some(s) = node.field(k) {
                    drop_non_nullable_nulls(child, s);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = node.items.as_deref() {
                for child in a {
                    drop_non_nullable_nulls(child, items);
                }
            }
        }
        _ => {}
    }
}

/// The paths of the fields a structural schema does not know (what the real server prunes),
/// below `root` of a custom resource. `apiVersion`, `kind` and `metadata` are the API
/// server's own and never pruned here.
pub(crate) fn unknown_fields(obj: &Value, root: &Node) -> Vec<Vec<Seg>> {
    let mut out = Vec::new();
    let Value::Object(m) = obj else {
        return out;
    };
    for (k, child) in m {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let mut path = vec![Seg::Key(k.clone())];
        match root.field(k) {
            Some(s) => walk(child, s, &mut path, &mut out),
            None if root.preserve_unknown => {}
            None => out.push(path),
        }
    }
    out
}

fn walk(v: &Value, node: &Node, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(Seg::Key(k.clone()));
                match node.field(k) {
                    Some(s) => walk(child, s, path, out),
                    None if node.preserve_unknown => {}
                    None => out.push(path.clone()),
                }
                path.pop();
            }
        }
        Value::Array(a) => {
            if let Some(items) = node.items.as_deref() {
                for (i, child) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(child, items, path, out);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::prune::display;

    #[test]
    fn unknown_fields_follow_properties_additional_properties_and_preservation() {
        let root = Node::from_json(&json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "hosts": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "http": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "closed": {"type": "object"}
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}));
        let obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"hosts": ["a"], "labels": {"any": "b"}, "http": [{"name": "n", "bogus": 1}],
                     "free": {"anything": {"deep": 1}}, "closed": {"k": 1}, "extra": true},
            "status": {"whatever": 1}, "top": 1});
        let mut got: Vec<String> = unknown_fields(&obj, &root)
            .iter()
            .map(|p| display(p))
            .collect();
        got.sort();
        assert_eq!(
            got,
            ["spec.closed.k", "spec.extra", "spec.http[0].bogus", "top"]
        );
    }

    #[test]
    fn nulls_of_non_nullable_fields_are_dropped() {
        let node = Node::from_json(&json!({"type": "object", "properties": {
            "a": {"type": "string"}, "b": {"type": "string", "nullable": true}}}));
        let mut v = json!({"a": null, "b": null, "c": null});
        drop_non_nullable_nulls(&mut v, &node);
        assert_eq!(v, json!({"b": null, "c": null}));
    }
}
