//! The MiniJinja environment templates render in: strict undefined values, the YAML-safe
//! formatter, and the functions templates may call.

use minijinja::{Environment, UndefinedBehavior, Value as JinjaValue};

use super::{cidr, shape};

/// A fresh environment with the formatter and functions, and no templates yet.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, _state, value| shape::format(out, value));
    env.add_function("merge", merge_maps);
    env.add_function("required", required);
    env.add_function("egress_except", egress_except);
    env
}

/// `egress_except(cidr, excluded)`: the blocks of `excluded` that lie strictly inside
/// `cidr`, for a NetworkPolicy ipBlock's `except` (the API server refuses any other).
/// An error when `cidr` itself lies inside (or equals) an excluded block: such a rule
/// would reach only addresses that must never be reached.
fn egress_except(cidr: String, excluded: Vec<String>) -> Result<JinjaValue, minijinja::Error> {
    let invalid =
        |message: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message);
    let block = cidr::Block::parse(&cidr)
        .ok_or_else(|| invalid(format!("{cidr:?} is not a CIDR block")))?;
    let mut inside = Vec::new();
    for text in excluded {
        let ex = cidr::Block::parse(&text)
            .ok_or_else(|| invalid(format!("excluded block {text:?} is not a CIDR block")))?;
        if block.within(&ex) {
            return Err(invalid(format!(
                "egress block {cidr} lies inside the excluded block {text}; it would reach only addresses a workspace must never reach"
            )));
        }
        if ex.within(&block) {
            inside.push(JinjaValue::from(text));
        }
    }
    Ok(JinjaValue::from(inside))
}

/// `required(value, message)`: `value`, or a render error with `message` when it is
/// undefined, none or empty (as Helm's `required`).
fn required(value: JinjaValue, message: String) -> Result<JinjaValue, minijinja::Error> {
    if value.is_undefined() || value.is_none() || (value.len() == Some(0)) {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            message,
        ))
    } else {
        Ok(value)
    }
}

/// `merge(a, b)`: a mapping with `b`'s keys over `a`'s (used by the metadata helper).
fn merge_maps(a: JinjaValue, b: JinjaValue) -> Result<JinjaValue, minijinja::Error> {
    let mut out = std::collections::BTreeMap::new();
    for map in [&a, &b] {
        if map.is_none() || map.is_undefined() {
            continue;
        }
        for key in map.try_iter()? {
            let item = map.get_item(&key)?;
            out.insert(key.to_string(), item);
        }
    }
    Ok(JinjaValue::from(out))
}
