//! `metav1.Status` error bodies, shaped exactly like the real API server's.

use serde_json::{Value, json};

use super::resources::ResourceDef;

/// One `details.causes` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// e.g. `FieldValueInvalid`, `FieldManagerConflict`.
    pub reason: String,
    /// Human message.
    pub message: String,
    /// Field path (`metadata.name`, `.spec.x`).
    pub field: String,
}

/// An API failure: HTTP code, reason and the Status body parts.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `reason` (NotFound, AlreadyExists, Conflict, Invalid, BadRequest, ...).
    pub reason: &'static str,
    /// `message`.
    pub message: String,
    /// `details.name`.
    pub name: Option<String>,
    /// `details.group`.
    pub group: Option<String>,
    /// `details.kind`.
    pub kind: Option<String>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds` (and the Retry-After header).
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn base(code: u16, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    fn with_details(mut self, def: &ResourceDef, name: &str) -> Self {
        self.name = Some(name.to_string());
        if !def.group.is_empty() {
            self.group = Some(def.group.to_string());
        }
        self.kind = Some(def.plural.to_string());
        self
    }

    /// 404 `<plural> "<name>" not found`.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::base(
            404,
            "NotFound",
            format!("{} \"{}\" not found", def.qualified_plural(), name),
        )
        .with_details(def, name)
    }

    /// 404 for a missing namespace.
    pub fn namespace_not_found(ns: &str) -> Self {
        let mut e = Self::base(404, "NotFound", format!("namespaces \"{ns}\" not found"));
        e.name = Some(ns.to_string());
        e.kind = Some("namespaces".to_string());
        e
    }

    /// 404 for a path nothing serves (the real server's body for unknown paths).
    pub fn unknown_path() -> Self {
        let mut e = Self::base(
            404,
            "NotFound",
            "the server could not find the requested resource".to_string(),
        );
        e.causes.clear();
        e
    }

    /// 409 AlreadyExists.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::base(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", def.qualified_plural(), name),
        )
        .with_details(def, name)
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict_modified(def: &ResourceDef, name: &str) -> Self {
        Self::base(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                def.qualified_plural(),
                name
            ),
        )
        .with_details(def, name)
    }

    /// 409 Conflict with a free message (e.g. a UID precondition).
    pub fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self::base(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                def.qualified_plural(),
                name,
                why
            ),
        )
        .with_details(def, name)
    }

    /// 409 for server-side apply conflicts.
    pub fn apply_conflict(message: String, causes: Vec<Cause>) -> Self {
        let mut e = Self::base(409, "Conflict", message);
        e.causes = causes;
        e
    }

    /// 422 Invalid with one cause per field error.
    pub fn invalid(def: &ResourceDef, name: &str, errors: Vec<Cause>) -> Self {
        let list = if errors.len() == 1 {
            format!("{}: {}", errors[0].field, errors[0].message)
        } else {
            format!(
                "[{}]",
                errors
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut e = Self::base(
            422,
            "Invalid",
            format!("{} \"{}\" is invalid: {}", def.qualified_kind(), name, list),
        );
        e.name = Some(name.to_string());
        if !def.group.is_empty() {
            e.group = Some(def.group.to_string());
        }
        e.kind = Some(def.kind.to_string());
        e.causes = errors;
        e
    }

    /// 403 Forbidden from an admission plugin (upstream `admission.NewForbidden`):
    /// `<plural> "<name>" is forbidden: <why>`.
    pub fn forbidden(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self::base(
            403,
            "Forbidden",
            format!(
                "{} \"{}\" is forbidden: {}",
                def.qualified_plural(),
                name,
                why
            ),
        )
        .with_details(def, name)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::base(400, "BadRequest", message.into())
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::base(405, "MethodNotAllowed", message.into())
    }

    /// 415 UnsupportedMediaType for a body in a format the server does not decode, listing
    /// the media types it takes (upstream `errUnsupportedMediaType`).
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::base(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 410 Expired for a compacted watch resourceVersion.
    pub fn expired(message: String) -> Self {
        Self::base(410, "Expired", message)
    }

    /// An injected fault with the reason the real server uses for that code.
    pub fn injected(code: u16, retry_after: Option<u32>) -> Self {
        let (reason, message): (&'static str, String) = match code {
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later"
                    .to_string(),
            ),
            500 => (
                "InternalError",
                "Internal error occurred: injected fault".to_string(),
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request".to_string(),
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request".to_string(),
            ),
            409 => (
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again".to_string(),
            ),
            404 => (
                "NotFound",
                "the server could not find the requested resource".to_string(),
            ),
            403 => ("Forbidden", "forbidden: injected fault".to_string()),
            401 => ("Unauthorized", "Unauthorized".to_string()),
            400 => ("BadRequest", "injected fault".to_string()),
            _ => ("InternalError", format!("injected fault {code}")),
        };
        let mut e = Self::base(code, reason, message);
        e.retry_after = retry_after;
        e
    }

    /// The Status body.
    pub fn to_json(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // NB: the real server sends `"details": {}` for an unknown resource path.
        if !details.is_empty() || self.reason == "NotFound" {
            body["details"] = Value::Object(details);
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A field-error cause (`FieldValueInvalid` etc.) with the real message prefixes.
pub fn field_invalid(field: &str, value: &Value, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {}", go_value(value), detail),
        field: field.into(),
    }
}

/// `Required value` cause.
pub fn field_required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    Cause {
        reason: "FieldValueRequired".into(),
        message,
        field: field.into(),
    }
}

/// `Forbidden` cause.
pub fn field_forbidden(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {detail}"),
        field: field.into(),
    }
}

/// `Unsupported value` cause.
pub fn field_not_supported(field: &str, value: &Value, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!(
            "Unsupported value: {}: supported values: {}",
            go_value(value),
            list.join(", ")
        ),
        field: field.into(),
    }
}

/// Values printed the way Go's `%#v`-ish field errors print them: strings quoted, numbers bare.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}
