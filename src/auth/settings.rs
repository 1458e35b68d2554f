//! How the service authenticates callers.

use std::{fmt, time::Duration};

/// The JWKS URL used when JWKS_URL is not set (the spec's Keycloak certs endpoint).
pub const DEFAULT_JWKS_URL: &str =
    "http://keycloak:30080/realms/devplatform/protocol/openid-connect/certs";

/// How the service authenticates callers; built from the configuration.
#[derive(Clone)]
pub struct AuthSettings {
    /// Where the Keycloak signing keys are published (JWKS_URL).
    pub jwks_url: String,
    /// The required `iss` claim, when set.
    pub issuer: Option<String>,
    /// The required `aud` claim, when set.
    pub audience: Option<String>,
    /// A shared secret that makes HS256 tokens acceptable (JWT_SECRET), when set.
    pub jwt_secret: Option<String>,
    /// Honour `X-Forwarded-User`/`X-Forwarded-Email` (only behind a proxy that sets them).
    pub trust_forwarded: bool,
    /// Development only: read tokens without checking their signature.
    pub insecure_decode: bool,
    /// ENVIRONMENT; `production` forbids `insecure_decode`.
    pub environment: String,
    /// The realm role that makes a caller an admin.
    pub admin_role: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// The shortest interval between two JWKS fetches.
    pub jwks_min_refresh: Duration,
    /// How long fetched keys are used before they are fetched again.
    pub jwks_max_age: Duration,
    /// Timeout of one JWKS request.
    pub http_timeout: Duration,
}

impl AuthSettings {
    /// Defaults that accept tokens of `issuer` for `audience`, signed with the keys
    /// published at `jwks_url`.
    pub fn issued_by(jwks_url: &str, issuer: &str, audience: &str) -> Self {
        Self {
            jwks_url: jwks_url.to_owned(),
            issuer: Some(issuer.to_owned()),
            audience: Some(audience.to_owned()),
            ..Self::default()
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwks_url: DEFAULT_JWKS_URL.to_owned(),
            issuer: None,
            audience: None,
            jwt_secret: None,
            trust_forwarded: false,
            insecure_decode: false,
            environment: "development".to_owned(),
            admin_role: "admin".to_owned(),
            leeway: Duration::from_secs(30),
            jwks_min_refresh: Duration::from_secs(10),
            jwks_max_age: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwks_url", &self.jwks_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("trust_forwarded", &self.trust_forwarded)
            .field("insecure_decode", &self.insecure_decode)
            .field("environment", &self.environment)
            .field("admin_role", &self.admin_role)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// The shortest JWT_SECRET accepted: HS256 keys shorter than the hash are guessable.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let settings = AuthSettings {
            jwt_secret: Some("hunter2".into()),
            ..AuthSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
