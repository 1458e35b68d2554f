//! The typed settings an admin may override in values.yaml, read and checked.

use serde_json::Value;

use super::ValuesError;
use crate::quantity;

/// Repositories per instance when values.yaml does not say (`limits.repositoriesPerInstance`).
pub const DEFAULT_REPOSITORY_LIMIT: usize = 20;
/// The largest `limits.repositoriesPerInstance` accepted.
pub const MAX_REPOSITORY_LIMIT: usize = 1000;

/// Typed settings an admin may override in values.yaml (`image`, `resources`, `storage`).
#[derive(Default)]
pub(super) struct Overrides {
    pub(super) image: Option<String>,
    pub(super) cpu: Option<String>,
    pub(super) memory: Option<String>,
    pub(super) cpu_limit: Option<String>,
    pub(super) memory_limit: Option<String>,
    pub(super) size: Option<String>,
    pub(super) class: Option<String>,
    pub(super) max_size: Option<String>,
    pub(super) repository_limit: usize,
    pub(super) git_identity: bool,
}

impl Overrides {
    pub(super) fn from_extra(extra: &Value) -> Result<Self, ValuesError> {
        let quantity = |path: &[&str]| -> Result<Option<String>, ValuesError> {
            match string_at(extra, path)? {
                Some(q) => quantity::parse_positive(&q).map(|_| Some(q)).map_err(|e| {
                    ValuesError::Invalid {
                        key: path.join("."),
                        message: e.to_string(),
                    }
                }),
                None => Ok(None),
            }
        };
        Ok(Self {
            image: string_at(extra, &["image"])?,
            cpu: quantity(&["resources", "requests", "cpu"])?,
            memory: quantity(&["resources", "requests", "memory"])?,
            cpu_limit: quantity(&["resources", "limits", "cpu"])?,
            memory_limit: quantity(&["resources", "limits", "memory"])?,
            size: quantity(&["storage", "size"])?,
            class: string_at(extra, &["storage", "class"])?,
            max_size: quantity(&["storage", "maxSize"])?,
            repository_limit: repository_limit(extra)?,
            git_identity: flag(extra, "/gitIdentity/enabled", "gitIdentity.enabled", true)?,
        })
    }
}

/// `limits.repositoriesPerInstance`: a whole number from 1 to [`MAX_REPOSITORY_LIMIT`];
/// [`DEFAULT_REPOSITORY_LIMIT`] when absent.
fn repository_limit(extra: &Value) -> Result<usize, ValuesError> {
    const KEY: &str = "limits.repositoriesPerInstance";
    match extra.pointer("/limits/repositoriesPerInstance") {
        None | Some(Value::Null) => Ok(DEFAULT_REPOSITORY_LIMIT),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_REPOSITORY_LIMIT).contains(n))
            .ok_or_else(|| ValuesError::Invalid {
                key: KEY.to_owned(),
                message: format!(
                    "expected a whole number from 1 to {MAX_REPOSITORY_LIMIT}, found {n}"
                ),
            }),
        Some(other) => Err(ValuesError::Invalid {
            key: KEY.to_owned(),
            message: format!("expected a whole number, found {other}"),
        }),
    }
}

/// The boolean at `pointer` (`key` names it in errors); `default` when absent.
fn flag(extra: &Value, pointer: &str, key: &str, default: bool) -> Result<bool, ValuesError> {
    match extra.pointer(pointer) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ValuesError::Invalid {
            key: key.to_owned(),
            message: format!("expected true or false, found {other}"),
        }),
    }
}

/// The non-empty string at `path`, if any; other non-null types are an error.
fn string_at(extra: &Value, path: &[&str]) -> Result<Option<String>, ValuesError> {
    let mut cur = extra;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return Ok(None),
        }
    }
    match cur {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(ValuesError::Invalid {
            key: path.join("."),
            message: format!("expected a string, found {other}"),
        }),
    }
}
