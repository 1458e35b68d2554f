//! Reading credentials from request headers: the bearer token, strictly parsed, and the
//! identity a trusted proxy forwards.

use http::{HeaderMap, header::AUTHORIZATION};

use super::{AuthError, Identity};

/// The header Istio sets to the authenticated user.
pub const FORWARDED_USER: &str = "x-forwarded-user";
/// The header Istio sets to the authenticated user's email.
pub const FORWARDED_EMAIL: &str = "x-forwarded-email";

/// The longest bearer token accepted; Keycloak tokens are a few kB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The longest forwarded user name accepted.
const MAX_FORWARDED_USER_BYTES: usize = 256;

/// The bearer token of a request, if it has an Authorization header.
pub(super) fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::MalformedHeader);
    }
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::MalformedHeader)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MalformedHeader);
    }
    let token = token.trim();
    let well_formed = !token.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
    if !well_formed {
        return Err(AuthError::MalformedToken(None));
    }
    Ok(Some(token))
}

/// The identity set by a trusted proxy, if it set one.
pub(super) fn forwarded_identity(headers: &HeaderMap) -> Result<Option<Identity>, AuthError> {
    let Some(user) = headers.get(FORWARDED_USER) else {
        return Ok(None);
    };
    let user = user
        .to_str()
        .map(str::trim)
        .map_err(|_| AuthError::BadForwardedUser)?;
    if user.is_empty() || user.len() > MAX_FORWARDED_USER_BYTES {
        return Err(AuthError::BadForwardedUser);
    }
    let email = headers
        .get(FORWARDED_EMAIL)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    Ok(Some(Identity {
        user_id: user.to_owned(),
        email,
        sub: None,
        roles: Vec::new(),
        token: None,
    }))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn parses_bearer_headers_strictly() {
        assert_eq!(bearer_token(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer a.b.c")])).unwrap(),
            Some("a.b.c")
        );
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token a.b.c"] {
            assert!(
                matches!(
                    bearer_token(&headers(&[("authorization", bad)])),
                    Err(AuthError::MalformedHeader)
                ),
                "{bad}"
            );
        }
        for bad in [
            "Bearer a.b",
            "Bearer a.b.c.d",
            "Bearer a.b.c;rm",
            "Bearer a .b.c",
        ] {
            assert!(
                bearer_token(&headers(&[("authorization", bad)])).is_err(),
                "{bad}"
            );
        }
        let long = format!("Bearer a.{}.c", "b".repeat(MAX_TOKEN_BYTES));
        assert!(bearer_token(&headers(&[("authorization", &long)])).is_err());
        let twice = headers(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer d.e.f"),
        ]);
        assert!(matches!(
            bearer_token(&twice),
            Err(AuthError::MalformedHeader)
        ));
    }

    #[test]
    fn forwarded_identity_requires_a_sane_user() {
        let id = forwarded_identity(&headers(&[
            ("x-forwarded-user", " alice "),
            ("x-forwarded-email", "alice@example.com"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(id.user_id, "alice");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert!(id.roles.is_empty());
        assert!(forwarded_identity(&HeaderMap::new()).unwrap().is_none());
        assert!(forwarded_identity(&headers(&[("x-forwarded-user", " ")])).is_err());
        let long = "u".repeat(MAX_FORWARDED_USER_BYTES + 1);
        assert!(forwarded_identity(&headers(&[("x-forwarded-user", &long)])).is_err());
    }
}
