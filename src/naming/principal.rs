//! The owner as Kubernetes and Istio name it: the owner key and the request principal.

use super::{MAX_SUB_LEN, NamingError, error::truncate_for_message, hex_digest, is_label_value};

/// The durable owner key stored in [`LABEL_OWNER`](super::LABEL_OWNER): the token's `sub` when it is a valid
/// label value (Keycloak's are UUIDs), else its hash; without a `sub`, the safe name.
pub fn owner_key(sub: Option<&str>, safe_name: &str) -> String {
    match sub.filter(|s| !s.is_empty()) {
        Some(sub) if is_label_value(sub) => sub.to_owned(),
        Some(sub) => format!("sub-{}", &hex_digest(sub.as_bytes())[..40]),
        None => safe_name.to_owned(),
    }
}

/// Why `s` cannot be part of an Istio request principal (`<iss>/<sub>`), if it cannot.
///
/// NB: Istio's string match reads a leading or trailing `*` as a wildcard (prefix,
/// suffix or presence match), so a `*` could widen a principal to many; control
/// characters have no place in an issuer or subject.
pub fn principal_part_problem(s: &str) -> Option<&'static str> {
    if s.contains('*') {
        Some("it contains '*', which Istio reads as a wildcard")
    } else if s.chars().any(char::is_control) {
        Some("it contains control characters")
    } else if s.len() > MAX_SUB_LEN {
        Some("it is longer than 1024 bytes")
    } else {
        None
    }
}

/// The Istio request principal of the owner with `sub`, as tokens from `issuer` carry
/// it: `<issuer>/<sub>`, matched exactly. Refuses what cannot be named exactly.
pub fn request_principal(issuer: &str, sub: &str) -> Result<String, NamingError> {
    let refuse = |reason| NamingError::UnsafeSub {
        value: truncate_for_message(sub),
        reason,
    };
    if sub.is_empty() {
        return Err(refuse("it is empty"));
    }
    if let Some(reason) = principal_part_problem(sub) {
        return Err(refuse(reason));
    }
    if let Some(reason) = principal_part_problem(issuer).or(issuer
        .chars()
        .any(char::is_whitespace)
        .then_some("the issuer contains whitespace"))
    {
        return Err(refuse(reason));
    }
    Ok(format!("{issuer}/{sub}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::*;

    #[test]
    fn owner_key_prefers_a_label_safe_sub() {
        let uuid = "3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f";
        assert_eq!(owner_key(Some(uuid), "john"), uuid);
        assert_eq!(owner_key(None, "john"), "john");
        assert_eq!(owner_key(Some(""), "john"), "john");
        let hashed = owner_key(Some("auth0|user/1"), "john");
        assert!(
            hashed.starts_with("sub-") && is_label_value(&hashed),
            "{hashed}"
        );
    }
}
