//! Who a verified token (or a trusted proxy) names.

use std::fmt;

use serde::Deserialize;

use super::AuthError;

/// An authenticated caller.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id: `preferred_username`, else `sub`, else the forwarded user.
    pub user_id: String,
    /// The user's email, when known.
    pub email: Option<String>,
    /// The token's `sub` (stable Keycloak user id), when known.
    pub sub: Option<String>,
    /// Realm roles (`realm_access.roles`).
    pub roles: Vec<String>,
    /// The raw bearer token, forwarded to Gitea. Never log it.
    pub token: Option<String>,
}

impl Identity {
    /// Whether the caller holds the admin realm role.
    pub fn is_admin(&self, admin_role: &str) -> bool {
        self.roles.iter().any(|role| role == admin_role)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("sub", &self.sub)
            .field("roles", &self.roles)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Deserialize)]
pub(super) struct Claims {
    pub(super) sub: Option<String>,
    pub(super) preferred_username: Option<String>,
    pub(super) email: Option<String>,
    pub(super) realm_access: Option<RealmAccess>,
    pub(super) exp: Option<u64>,
    /// The ID token's `nonce` (OpenID Connect), checked by the login.
    #[serde(default)]
    pub(super) nonce: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RealmAccess {
    #[serde(default)]
    roles: Vec<String>,
}

pub(super) fn identity_from(claims: Claims, token: &str) -> Result<Identity, AuthError> {
    let user_id = claims
        .preferred_username
        .filter(|name| !name.trim().is_empty())
        .or_else(|| claims.sub.clone().filter(|sub| !sub.trim().is_empty()))
        .ok_or(AuthError::MissingUser)?;
    Ok(Identity {
        user_id,
        email: claims.email.filter(|email| !email.is_empty()),
        sub: claims.sub,
        roles: claims.realm_access.map(|r| r.roles).unwrap_or_default(),
        token: Some(token.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let identity = Identity {
            user_id: "alice".into(),
            email: None,
            sub: None,
            roles: vec!["admin".into()],
            token: Some("eyJsecret.token.value".into()),
        };
        let shown = format!("{identity:?}");
        assert!(!shown.contains("eyJsecret"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(identity.is_admin("admin"));
        assert!(!identity.is_admin("platform-admin"));
    }
}
