//! Reading, removing and merging values at field paths.

use serde_json::Value;

use super::*;

/// The value at a path, if present.
pub fn value_at<'a>(v: &'a Value, path: &[PathElement], schema: Schema) -> Option<&'a Value> {
    let mut cur = v;
    let mut spath = String::new();
    for pe in path {
        cur = match pe {
            PathElement::Field(f) => {
                spath = join(&spath, f);
                cur.get(f)?
            }
            PathElement::Key(k) => {
                let ListType::Map(keys) = schema.list_type(&spath) else {
                    return None;
                };
                cur.as_array()?
                    .iter()
                    .find(|item| element_key(item, keys) == *k)?
            }
            PathElement::Value(want) => cur
                .as_array()?
                .iter()
                .find(|item| item.to_string() == *want)?,
            PathElement::Index(i) => cur.as_array()?.get(*i)?,
        };
    }
    Some(cur)
}

/// Remove the value at a path (a field, a list element); no-op when absent.
pub fn remove_at(v: &mut Value, path: &[PathElement], schema: Schema) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    let mut spath = String::new();
    for pe in parent_path {
        let next = match pe {
            PathElement::Field(f) => {
                spath = join(&spath, f);
                cur.get_mut(f)
            }
            PathElement::Key(k) => {
                let ListType::Map(keys) = schema.list_type(&spath) else {
                    return;
                };
                cur.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|item| element_key(item, keys) == *k))
            }
            PathElement::Value(_) | PathElement::Index(_) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        PathElement::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        PathElement::Key(k) => {
            if let ListType::Map(keys) = schema.list_type(&spath)
                && let Some(a) = cur.as_array_mut()
            {
                a.retain(|item| element_key(item, keys) != *k);
            }
        }
        PathElement::Value(want) => {
            if let Some(a) = cur.as_array_mut() {
                let want: Value = serde_json::from_str(want).unwrap_or(Value::Null);
                a.retain(|item| *item != want);
            }
        }
        PathElement::Index(i) => {
            if let Some(a) = cur.as_array_mut()
                && *i < a.len()
            {
                a.remove(*i);
            }
        }
    }
}

/// Merge an applied configuration into a live object following the schema.
pub fn merge(live: &Value, applied: &Value, spath: &str, schema: Schema) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !schema.atomic_map(spath) => {
            let mut out = l.clone();
            for (k, av) in a {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, av, &join(spath, k), schema),
                    None => av.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match schema.list_type(spath) {
            ListType::Map(keys) => {
                let mut out = l.clone();
                for item in a {
                    let key = element_key(item, keys);
                    match out.iter().position(|x| element_key(x, keys) == key) {
                        Some(pos) => out[pos] = merge(&out[pos], item, spath, schema),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            ListType::Set => {
                let mut out = l.clone();
                for item in a {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Atomic => applied.clone(),
        },
        (_, a) => a.clone(),
    }
}
