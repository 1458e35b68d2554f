//! Kubernetes name rules: DNS-1123 labels and subdomains, label values and keys.

use super::MAX_NAME_LEN;

/// A DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= MAX_NAME_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters that is a non-empty label value.
pub fn is_qualified_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_key_rules() {
        assert!(is_label_value("") && is_label_value("A.b_c-1"));
        assert!(
            !is_label_value("-a") && !is_label_value(&"a".repeat(64)) && !is_label_value("a b")
        );
        assert!(is_qualified_key("app.kubernetes.io/name") && is_qualified_key("plain"));
        assert!(
            !is_qualified_key("Bad_Prefix/x") && !is_qualified_key("a/") && !is_qualified_key("/x")
        );
    }
}
