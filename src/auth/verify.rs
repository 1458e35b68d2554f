//! Verifying a request's credentials: a bearer JWT against the JWKS (or HS256 with
//! JWT_SECRET), or the forwarded identity of a trusted proxy.

use std::{collections::HashSet, fmt, sync::Arc};

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};

use super::{
    AuthError, AuthSettings, Identity, MIN_JWT_SECRET_BYTES,
    headers::{bearer_token, forwarded_identity},
    identity::{Claims, identity_from},
    jwks::{KeySet, VerifyingKey},
    verified::{Verified, VerifiedTokens, digest},
};

/// Authenticates requests; cheap to clone and share between requests.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AuthSettings,
    hmac: Option<DecodingKey>,
    keys: KeySet,
    verified: VerifiedTokens,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds an authenticator; refuses `insecure_decode` in production.
    pub fn new(settings: AuthSettings) -> Result<Self, AuthError> {
        if settings.insecure_decode {
            if settings
                .environment
                .trim()
                .eq_ignore_ascii_case("production")
            {
                return Err(AuthError::InsecureDecodeInProduction);
            }
            tracing::warn!("token signatures are NOT verified (insecure decode, development)");
        }
        if let Some(secret) = &settings.jwt_secret
            && secret.len() < MIN_JWT_SECRET_BYTES
        {
            return Err(AuthError::ShortSecret { len: secret.len() });
        }
        crate::install_crypto();
        let http = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .connect_timeout(settings.http_timeout)
            .build()
            .map_err(AuthError::HttpClient)?;
        let keys = KeySet::new(
            http,
            settings.jwks_url.clone(),
            settings.jwks_min_refresh,
            settings.jwks_max_age,
        );
        let hmac = settings
            .jwt_secret
            .as_deref()
            .map(|secret| DecodingKey::from_secret(secret.as_bytes()));
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                hmac,
                keys,
                verified: VerifiedTokens::default(),
            }),
        })
    }

    /// The realm role that makes a caller an admin.
    pub fn admin_role(&self) -> &str {
        &self.inner.settings.admin_role
    }

    /// Identifies the caller of a request from its headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        let token = bearer_token(headers)?;
        let forwarded = if self.inner.settings.trust_forwarded {
            forwarded_identity(headers)?
        } else {
            None
        };
        match (token, forwarded) {
            (Some(token), None) => self.verify(token).await,
            (Some(token), Some(forwarded)) => {
                // NB: a token is always verified, even behind the proxy; the headers only
                // stand in for a token, they never override one.
                let identity = self.verify(token).await?;
                // NB: the proxy may forward `preferred_username` or `sub`, as configured.
                let same = identity.user_id == forwarded.user_id
                    || identity.sub.as_deref() == Some(forwarded.user_id.as_str());
                if !same {
                    return Err(AuthError::ForwardedMismatch);
                }
                Ok(identity)
            }
            (None, Some(forwarded)) => Ok(forwarded),
            (None, None) => Err(AuthError::MissingCredentials),
        }
    }

    /// Identifies the caller by a bearer token only (never the forwarded headers): what
    /// the workspace gatekeeper accepts from CLI tools.
    pub async fn authenticate_bearer(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        let token = bearer_token(headers)?.ok_or(AuthError::MissingCredentials)?;
        self.verify(token).await
    }

    /// Verifies a raw token and returns who it names.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if self.inner.settings.insecure_decode {
            return identity_from(self.decode_unverified(token)?, token);
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::MalformedToken(Some(e)))?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 if self.inner.hmac.is_some() => (None, Algorithm::HS256),
            alg if is_asymmetric(alg) => {
                let kid = header.kid.as_deref().ok_or(AuthError::MissingKeyId)?;
                let key = self.inner.keys.key(kid).await?;
                if key.alg != alg {
                    return Err(disallowed(alg));
                }
                (Some(key), alg)
            }
            alg => return Err(disallowed(alg)),
        };
        let (now, leeway) = (
            jsonwebtoken::get_current_timestamp(),
            self.inner.settings.leeway.as_secs(),
        );
        let digest = digest(token);
        if let Some(mut identity) = self.inner.verified.get(&digest, key.as_ref(), now, leeway) {
            identity.token = Some(token.to_owned());
            return Ok(identity);
        }
        let claims = self.decode_with(
            token,
            self.decoding_key(key.as_deref())?,
            alg,
            self.inner.settings.audience.as_deref(),
        )?;
        let exp = claims.exp;
        let identity = identity_from(claims, token)?;
        if let Some(exp) = exp {
            let remembered = Verified {
                identity: Identity {
                    token: None,
                    ..identity.clone()
                },
                exp,
                key,
            };
            self.inner.verified.insert(digest, remembered, now, leeway);
        }
        Ok(identity)
    }

    /// Verifies an OpenID Connect ID token from the login's code exchange, the way
    /// [`Self::verify`] checks a bearer token (the JWKS key of its `kid`, the `alg` pinned
    /// to the key's, `exp`/`nbf`, `iss` when JWT_ISSUER is set), with `aud` the login's
    /// client id and `nonce` the one the login sent (OpenID Connect Core 1.0, 3.1.3.7).
    /// Never HS256 and never unverified: an ID token is always signed by the issuer.
    pub async fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Identity, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::MalformedToken(Some(e)))?;
        if !is_asymmetric(header.alg) {
            return Err(disallowed(header.alg));
        }
        let kid = header.kid.as_deref().ok_or(AuthError::MissingKeyId)?;
        let key = self.inner.keys.key(kid).await?;
        if key.alg != header.alg {
            return Err(disallowed(header.alg));
        }
        let claims = self.decode_with(token, &key.key, header.alg, Some(client_id))?;
        // NB: compared in full; a nonce is single-use and random, so its length says nothing.
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(AuthError::WrongNonce);
        }
        identity_from(claims, token)
    }

    /// The key a token's signature is checked with: the JWKS key, else the HS256 secret.
    fn decoding_key<'a>(
        &'a self,
        key: Option<&'a VerifyingKey>,
    ) -> Result<&'a DecodingKey, AuthError> {
        match key {
            Some(key) => Ok(&key.key),
            None => self
                .inner
                .hmac
                .as_ref()
                .ok_or_else(|| disallowed(Algorithm::HS256)),
        }
    }

    fn decode_with(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
        audience: Option<&str>,
    ) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, key, &self.validation(alg, audience))
            .map(|data| data.claims)
            .map_err(map_jwt_error)
    }

    fn decode_unverified(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
            .map_err(|e| AuthError::MalformedToken(Some(e)))?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        match claims.exp {
            Some(exp) if exp.saturating_add(self.inner.settings.leeway.as_secs()) < now => {
                Err(AuthError::Expired)
            }
            Some(_) => Ok(claims),
            None => Err(AuthError::MissingClaim("exp".to_owned())),
        }
    }

    fn validation(&self, alg: Algorithm, audience: Option<&str>) -> Validation {
        let settings = &self.inner.settings;
        let mut validation = Validation::new(alg);
        validation.leeway = settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required: HashSet<String> = HashSet::from(["exp".to_owned()]);
        if let Some(issuer) = &settings.issuer {
            validation.set_issuer(&[issuer]);
            required.insert("iss".to_owned());
        }
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        validation.required_spec_claims = required;
        validation
    }
}

fn is_asymmetric(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
    )
}

fn disallowed(alg: Algorithm) -> AuthError {
    AuthError::DisallowedAlgorithm {
        alg: format!("{alg:?}"),
    }
}

fn map_jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm => AuthError::DisallowedAlgorithm {
            alg: "(mismatch)".to_owned(),
        },
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::MalformedToken(Some(error)),
        _ => AuthError::Rejected(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_jwt_secret_shorter_than_32_bytes() {
        let short = AuthSettings {
            jwt_secret: Some("x".repeat(31)),
            ..AuthSettings::default()
        };
        let error = Authenticator::new(short).unwrap_err();
        assert!(matches!(error, AuthError::ShortSecret { len: 31 }));
        assert!(error.to_string().contains("at least 32 bytes"), "{error}");
        let long = AuthSettings {
            jwt_secret: Some("x".repeat(32)),
            ..AuthSettings::default()
        };
        assert!(Authenticator::new(long).is_ok());
    }

    #[test]
    fn refuses_insecure_decode_in_production_only() {
        let production = AuthSettings {
            insecure_decode: true,
            environment: "Production".into(),
            ..AuthSettings::default()
        };
        assert!(matches!(
            Authenticator::new(production),
            Err(AuthError::InsecureDecodeInProduction)
        ));
        let development = AuthSettings {
            insecure_decode: true,
            ..AuthSettings::default()
        };
        assert!(Authenticator::new(development).is_ok());
    }
}
