//! Merging the admin's values as Helm does: values files over values.yaml, then `--set`.

use serde_json::{Map, Value};

use super::ValuesError;

/// Parses a YAML values document into a mapping (an empty document is an empty mapping).
pub fn parse_values(path: &str, text: &str) -> Result<Value, ValuesError> {
    let parsed: Value = serde_yaml_ng::from_str(text).map_err(|e| ValuesError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    match parsed {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(parsed),
        _ => Err(ValuesError::Parse {
            path: path.to_owned(),
            message: "the top level must be a mapping".to_owned(),
        }),
    }
}

/// Reads and parses a values file.
pub fn read_values_file(path: &std::path::Path) -> Result<Value, ValuesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ValuesError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_values(&shown, &text)
}

/// Deep-merges `overlay` into `base`: mappings merge key by key, anything else replaces.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Applies one `--set key.path=value` (the value parsed as a YAML scalar, as Helm does).
pub fn apply_set(extra: &mut Value, assignment: &str) -> Result<(), ValuesError> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| ValuesError::Set(assignment.to_owned()))?;
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(ValuesError::Set(assignment.to_owned()));
    }
    let value = match serde_yaml_ng::from_str::<Value>(raw) {
        Ok(v @ (Value::Bool(_) | Value::Number(_) | Value::Null)) if !raw.is_empty() => v,
        _ => Value::String(raw.to_owned()),
    };
    let mut overlay = value;
    for key in path.rsplit('.') {
        overlay = Value::Object(Map::from_iter([(key.to_owned(), overlay)]));
    }
    merge(extra, overlay);
    Ok(())
}

/// Applies `--set` overrides in order; see [`apply_set`].
pub fn apply_sets(extra: &mut Value, sets: &[String]) -> Result<(), ValuesError> {
    sets.iter().try_for_each(|set| apply_set(extra, set))
}

/// Reads `files` and deep-merges each over `base`, in order. Returns the overlays as
/// text (each after a NUL), for a revision that covers what the files added.
pub fn merge_files(base: &mut Value, files: &[std::path::PathBuf]) -> Result<String, ValuesError> {
    let mut fingerprint = String::new();
    for file in files {
        let overlay = read_values_file(file)?;
        fingerprint.push('\0');
        fingerprint.push_str(&overlay.to_string());
        merge(base, overlay);
    }
    Ok(fingerprint)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_and_set_behave_like_helm() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        merge(&mut base, json!({"a": {"c": [3]}, "e": true}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [3]}, "d": "x", "e": true}));
        apply_set(&mut base, "a.b=2").unwrap();
        apply_set(&mut base, "f.g=true").unwrap();
        apply_set(&mut base, "h=hello: world").unwrap();
        apply_set(&mut base, "i=").unwrap();
        assert_eq!(base["a"]["b"], json!(2));
        assert_eq!(base["f"]["g"], json!(true));
        assert_eq!(base["h"], json!("hello: world"));
        assert_eq!(base["i"], json!(""));
        for bad in ["novalue", "=v", "a..b=1"] {
            assert!(apply_set(&mut base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_files_must_be_mappings() {
        assert_eq!(parse_values("f", "").unwrap(), json!({}));
        assert!(parse_values("f", "- a\n- b").is_err());
        assert!(
            parse_values("f", "a: [")
                .unwrap_err()
                .to_string()
                .contains("f")
        );
    }
}
