//! YAML-safe output: how every `{{ value }}` in a template is written.
//!
//! NB: this is the one place that stands between user-derived strings and the YAML
//! parser. Strings are always written as double-quoted YAML scalars with every character
//! that YAML could read differently escaped (quotes, backslashes, control characters,
//! and the line separators U+0085, U+2028 and U+2029, which YAML 1.1 parsers fold into
//! spaces); maps and lists are written as flow collections of the same. Only values a
//! template marks `|safe` (and macro output, which was formatted this way already) pass
//! through as they are.

use std::fmt::Write;

use minijinja::{Error, ErrorKind, Value, value::ValueKind};

/// Writes `value` as YAML into `out`.
pub fn write_value(out: &mut impl Write, value: &Value) -> Result<(), Error> {
    let fmt_err = |_| Error::new(ErrorKind::WriteFailure, "formatting failed");
    match value.kind() {
        ValueKind::Undefined => Err(Error::new(ErrorKind::UndefinedError, "undefined value")),
        ValueKind::None => out.write_str("null").map_err(fmt_err),
        ValueKind::Bool | ValueKind::Number => {
            let text = value.to_string();
            if value.kind() == ValueKind::Number
                && text.parse::<f64>().is_ok_and(|f| !f.is_finite())
            {
                write_str(out, &text).map_err(fmt_err)
            } else {
                out.write_str(&text).map_err(fmt_err)
            }
        }
        ValueKind::String if value.is_safe() => out
            .write_str(value.as_str().unwrap_or_default())
            .map_err(fmt_err),
        ValueKind::Seq | ValueKind::Iterable => {
            out.write_char('[').map_err(fmt_err)?;
            for (i, item) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.write_str(", ").map_err(fmt_err)?;
                }
                write_value(out, &item)?;
            }
            out.write_char(']').map_err(fmt_err)
        }
        ValueKind::Map => {
            out.write_char('{').map_err(fmt_err)?;
            for (i, key) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.write_str(", ").map_err(fmt_err)?;
                }
                let item = value.get_item(&key)?;
                write_str(out, &key.to_string()).map_err(fmt_err)?;
                out.write_str(": ").map_err(fmt_err)?;
                write_value(out, &item)?;
            }
            out.write_char('}').map_err(fmt_err)
        }
        _ => write_str(out, &value.to_string()).map_err(fmt_err),
    }
}

/// Writes `s` as a double-quoted YAML scalar.
pub fn write_str(out: &mut impl Write, s: &str) -> std::fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{85}' => out.write_str("\\N")?,
            '\u{2028}' => out.write_str("\\L")?,
            '\u{2029}' => out.write_str("\\P")?,
            c if c.is_control() || c == '\u{feff}' => write!(out, "\\u{:04x}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> String {
        let mut out = String::new();
        write_str(&mut out, s).unwrap();
        serde_yaml_ng::from_str::<String>(&format!("key: {out}").replace("key: ", "")).unwrap()
    }

    #[test]
    fn hostile_strings_survive_a_yaml_parser_unchanged() {
        for s in [
            "plain",
            "a: b",
            "quote\" and 'single'",
            "back\\slash",
            "new\nline\r\n",
            "# comment",
            "&anchor *alias",
            "{{ 7*7 }} {% raw %}",
            "- list",
            "tab\there",
            "nul\0bell\u{7}",
            "line\u{2028}sep\u{2029}para\u{85}nel",
            "bom\u{feff}",
            "日本語 🦀",
            "",
            "null",
            "true",
            "1e3",
        ] {
            assert_eq!(round_trip(s), s, "{s:?}");
        }
    }

    #[test]
    fn collections_are_flow_yaml() {
        let v = Value::from(minijinja::value::Serde(
            serde_json::json!({"a": [1, "x: y", true, null], "b\"": {"c": 1.5}}),
        ));
        let mut out = String::new();
        write_value(&mut out, &v).unwrap();
        let back: serde_json::Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"a": [1, "x: y", true, null], "b\"": {"c": 1.5}})
        );
    }
}
