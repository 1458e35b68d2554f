//! The shape cache: why rendering stays fast for thousands of users.
//!
//! Parsing YAML costs far more than executing templates. But every user's rendered text
//! is the same apart from the values written into it, so templates are rendered with
//! each string and collection value written as a quoted placeholder token (a
//! double-quoted scalar, exactly as the YAML-safe formatter writes real strings), the
//! text (its "shape") is parsed once and cached, and the recorded values are put back
//! into the parsed tree:
//!
//! - a token that is a whole YAML node becomes the value itself;
//! - a quoted token inside a longer string (e.g. in a block scalar) becomes the value's
//!   YAML-safe text, which is what the direct path would have parsed there.
//!
//! NB: numbers, booleans and null are written as themselves, so they are part of the
//! shape. A filter that rewrites captured template output (e.g. `| length` on a macro
//! call) would see tokens rather than values; when substitution finds a token it cannot
//! place, the render falls back to the direct path (render real text, parse it), and
//! validate-templates compares both paths for every sample user.

use std::{
    cell::RefCell,
    collections::HashMap,
    fmt::Write,
    sync::{Arc, Mutex, PoisonError},
};

use minijinja::{Error, Value as JinjaValue, value::ValueKind};
use serde_json::Value;

use super::yaml;

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';
/// Shapes kept per template set; beyond it the cache starts over (bounded memory).
const MAX_SHAPES: usize = 512;

thread_local! {
    /// The values recorded by the formatter during a shape render; `None` in direct mode.
    static SLOTS: RefCell<Option<Vec<JinjaValue>>> = const { RefCell::new(None) };
}

/// The formatter: in shape mode, strings and collections become tokens; otherwise (and
/// for safe strings, numbers, booleans and null) YAML-safe text.
pub fn format(out: &mut impl Write, value: &JinjaValue) -> Result<(), Error> {
    let tokenise = matches!(value.kind(), ValueKind::String | ValueKind::Map | ValueKind::Seq | ValueKind::Iterable)
        && !value.is_safe();
    if tokenise {
        let slot = SLOTS.with(|slots| {
            slots.borrow_mut().as_mut().map(|v| {
                v.push(value.clone());
                v.len() - 1
            })
        });
        if let Some(index) = slot {
            return write!(out, "\"{OPEN}{index}{CLOSE}\"")
                .map_err(|_| Error::new(minijinja::ErrorKind::WriteFailure, "formatting failed"));
        }
    }
    yaml::write_value(out, value)
}

/// Runs `render` in shape mode; returns its result and the recorded values.
pub fn with_slots<T>(render: impl FnOnce() -> T) -> (T, Vec<JinjaValue>) {
    SLOTS.with(|s| *s.borrow_mut() = Some(Vec::new()));
    let result = render();
    let slots = SLOTS.with(|s| s.borrow_mut().take()).unwrap_or_default();
    (result, slots)
}

/// Parsed shapes by template text.
#[derive(Default)]
pub struct ShapeCache {
    shapes: Mutex<HashMap<String, Arc<Vec<Value>>>>,
}

impl ShapeCache {
    /// The parsed documents of `text`, parsing on a miss; `None` when it does not parse
    /// (the caller then takes the direct path, which reports the error precisely).
    pub fn parse(&self, text: &str) -> Option<Arc<Vec<Value>>> {
        if let Some(hit) = self.shapes.lock().unwrap_or_else(PoisonError::into_inner).get(text) {
            return Some(hit.clone());
        }
        let mut docs = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            match <Value as serde::Deserialize>::deserialize(doc) {
                Ok(Value::Null) => {}
                Ok(v) => docs.push(v),
                Err(_) => return None,
            }
        }
        let docs = Arc::new(docs);
        let mut shapes = self.shapes.lock().unwrap_or_else(PoisonError::into_inner);
        if shapes.len() >= MAX_SHAPES {
            shapes.clear();
        }
        shapes.insert(text.to_owned(), docs.clone());
        Some(docs)
    }
}

impl std::fmt::Debug for ShapeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.shapes.lock().map(|s| s.len()).unwrap_or(0);
        write!(f, "ShapeCache({n} shapes)")
    }
}

/// Puts the recorded values into a parsed shape; `None` when a token cannot be placed.
pub fn substitute(shape: &Value, slots: &[JinjaValue]) -> Option<Value> {
    match shape {
        Value::String(s) if s.contains(OPEN) => substitute_str(s, slots),
        Value::Array(items) => items.iter().map(|v| substitute(v, slots)).collect::<Option<Vec<_>>>().map(Value::Array),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                let key = if k.contains(OPEN) {
                    match substitute_str(k, slots)? {
                        Value::String(s) => s,
                        _ => return None,
                    }
                } else {
                    k.clone()
                };
                out.insert(key, substitute(v, slots)?);
            }
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

fn substitute_str(s: &str, slots: &[JinjaValue]) -> Option<Value> {
    if let Some(index) = whole_token(s) {
        return serde_json::to_value(slots.get(index)?).ok();
    }
    // Tokens embedded in longer text keep their quotes: put the YAML-safe text there.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(OPEN) {
        let (before, after) = rest.split_at(start);
        let before = before.strip_suffix('"')?;
        out.push_str(before);
        let after = &after[OPEN.len_utf8()..];
        let end = after.find(CLOSE)?;
        let index: usize = after[..end].parse().ok()?;
        yaml::write_value(&mut out, slots.get(index)?).ok()?;
        rest = after[end + CLOSE.len_utf8()..].strip_prefix('"')?;
    }
    out.push_str(rest);
    Some(Value::String(out))
}

fn whole_token(s: &str) -> Option<usize> {
    s.strip_prefix(OPEN)?.strip_suffix(CLOSE)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_and_embedded_tokens_are_replaced() {
        let slots = vec![JinjaValue::from("a: \"b\""), JinjaValue::from(minijinja::value::Serde(json!({"k": ["v", 1]})))];
        let shape = json!({"name": "\u{E000}0\u{E001}", "labels": "\u{E000}1\u{E001}",
                           "script": "echo \"\u{E000}0\u{E001}\"\n", "\u{E000}0\u{E001}": 1, "n": 3});
        let out = substitute(&shape, &slots).unwrap();
        assert_eq!(out, json!({"name": "a: \"b\"", "labels": {"k": ["v", 1]},
                               "script": "echo \"a: \\\"b\\\"\"\n", "a: \"b\"": 1, "n": 3}));
    }

    #[test]
    fn mangled_tokens_are_refused() {
        let slots = vec![JinjaValue::from("x")];
        for bad in ["\u{E000}0", "x\u{E000}0\u{E001}", "\u{E000}9\u{E001}", "\"\u{E000}zz\u{E001}\""] {
            assert!(substitute(&json!(bad), &slots).is_none(), "{bad:?}");
        }
    }
}
