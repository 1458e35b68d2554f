//! Names and labels: the DNS-1123 / DNS-1035 shapes and label keys and values, with the
//! real server's messages.

use serde_json::{Value, json};

use crate::status::{Cause, field_invalid};

pub(super) const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub(super) const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub(super) const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
pub(super) const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
pub(super) const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

pub(super) fn label_shape(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 label.
#[cfg(test)]
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && label_shape(s)
}

/// DNS-1123 subdomain.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(label_shape)
}

/// A valid label value (may be empty).
#[cfg(test)]
pub fn is_label_value(s: &str) -> bool {
    s.len() <= 63 && label_value_shape(s)
}

fn label_value_shape(s: &str) -> bool {
    s.is_empty()
        || (s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

pub(super) fn check_name_kind(field: &str, name: &str, kind: NameKind, out: &mut Vec<Cause>) {
    let v = json!(name);
    let (shape_ok, max, msg) = match kind {
        NameKind::Subdomain => (name.split('.').all(label_shape), 253, SUBDOMAIN_MSG),
        NameKind::Label => (label_shape(name), 63, LABEL_MSG),
        NameKind::Dns1035 => (
            label_shape(name) && name.as_bytes()[0].is_ascii_lowercase(),
            63,
            DNS1035_MSG,
        ),
    };
    if name.len() > max {
        out.push(field_invalid(
            field,
            &v,
            &format!("must be no more than {max} characters"),
        ));
    }
    if !shape_ok {
        out.push(field_invalid(field, &v, msg));
    }
}

#[derive(Clone, Copy)]
pub(super) enum NameKind {
    Subdomain,
    Label,
    Dns1035,
}

pub(super) fn labels(obj: &Value, out: &mut Vec<Cause>) {
    let Some(m) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in m {
        let (prefix, name) = match k.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if let Some(p) = prefix
            && !is_dns1123_subdomain(p)
        {
            out.push(field_invalid(
                "metadata.labels",
                &json!(k),
                &format!("prefix part {SUBDOMAIN_MSG}"),
            ));
        }
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
        if name.len() > 63 {
            out.push(field_invalid(
                "metadata.labels",
                &json!(k),
                "name part must be no more than 63 characters",
            ));
        } else if !name_ok {
            out.push(field_invalid(
                "metadata.labels",
                &json!(k),
                QUALIFIED_NAME_MSG,
            ));
        }
        match v.as_str() {
            Some(s) => {
                if s.len() > 63 {
                    out.push(field_invalid(
                        "metadata.labels",
                        v,
                        "must be no more than 63 characters",
                    ));
                }
                if !label_value_shape(s) {
                    out.push(field_invalid("metadata.labels", v, LABEL_VALUE_MSG));
                }
            }
            None => out.push(field_invalid("metadata.labels", v, "must be a string")),
        }
    }
}
