//! Who is calling: a Bearer JWT verified against the Keycloak JWKS (or HS256 with
//! JWT_SECRET), or, behind Istio and only when configured, the forwarded identity headers.
//!
//! The raw token is kept in the [`Identity`] because the same token is forwarded to Gitea;
//! it never reaches a log (`Debug` redacts it). Every failure is a typed [`AuthError`] for
//! the log; callers only ever see [`UNAUTHORIZED`].

mod headers;
mod jwks;

use std::{collections::HashSet, fmt, sync::Arc, time::Duration};

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;

use self::{
    headers::{bearer_token, forwarded_identity},
    jwks::KeySet,
};

/// The only message an unauthenticated caller gets.
pub const UNAUTHORIZED: &str = "unauthorized";

/// The header Istio sets to the authenticated user.
pub const FORWARDED_USER: &str = "x-forwarded-user";
/// The header Istio sets to the authenticated user's email.
pub const FORWARDED_EMAIL: &str = "x-forwarded-email";

/// The most characters of caller-supplied token text (a `kid`, a parser's message quoting
/// a header or claim) that reach one log line.
pub const MAX_LOGGED_CHARS: usize = 200;

/// `text` cut to [`MAX_LOGGED_CHARS`] characters (marked `...` when cut), for logging what
/// a caller controls without letting it fill the log.
pub fn truncate_for_log(text: &str) -> String {
    match text.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

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

impl AuthSettings {
    /// The settings the `serve` configuration asks for (JWKS_URL, JWT_ISSUER, JWT_AUDIENCE,
    /// JWT_SECRET, AUTH_TRUST_FORWARDED, AUTH_INSECURE_DECODE, ENVIRONMENT, ADMIN_ROLE).
    pub fn from_args(args: &crate::config::ServeArgs) -> Self {
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Self {
            jwks_url: args.jwks_url.clone(),
            issuer: non_empty(&args.instance.jwt_issuer),
            audience: non_empty(&args.jwt_audience),
            jwt_secret: non_empty(&args.jwt_secret.as_ref().map(|s| s.expose().to_owned())),
            trust_forwarded: args.auth_trust_forwarded,
            insecure_decode: args.auth_insecure_decode,
            environment: args.environment.clone(),
            admin_role: args.admin_role.clone(),
            ..Self::default()
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

/// Why a caller could not be authenticated, or the authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("no bearer token and no trusted forwarded identity")]
    MissingCredentials,
    /// The Authorization header is not `Bearer <token>`.
    #[error("the Authorization header is not a single `Bearer <token>`")]
    MalformedHeader,
    /// The token is not a well-formed JWT.
    #[error("the token is not a well-formed JWT")]
    MalformedToken(#[source] Option<jsonwebtoken::errors::Error>),
    /// The token's `alg` is not accepted for it.
    #[error("tokens signed with {alg} are not accepted here")]
    DisallowedAlgorithm {
        /// The algorithm the token claims.
        alg: String,
    },
    /// The token names no key (`kid`).
    #[error("the token names no signing key (kid)")]
    MissingKeyId,
    /// The JWKS has no key with this id, even after a refresh.
    #[error("no signing key {kid:?} in the JWKS")]
    UnknownKey {
        /// The key id the token names.
        kid: String,
    },
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is in the past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// A claim the service requires is missing.
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    /// Any other verification failure.
    #[error("the token was rejected")]
    Rejected(#[source] jsonwebtoken::errors::Error),
    /// The token names no user.
    #[error("the token names no user (preferred_username or sub)")]
    MissingUser,
    /// The forwarded user header is empty, too long or not printable text.
    #[error("the forwarded user header is not a usable user name")]
    BadForwardedUser,
    /// A trusted forwarded user and a verified token disagree about who is calling.
    #[error("the forwarded user does not match the token's user")]
    ForwardedMismatch,
    /// The JWKS could not be fetched.
    #[error("failed to fetch the JWKS from {url}")]
    JwksFetch {
        /// The JWKS URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The JWKS endpoint answered with an error status.
    #[error("the JWKS endpoint {url} answered HTTP {status}")]
    JwksStatus {
        /// The JWKS URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The JWKS document is unusable.
    #[error("the JWKS from {url} is unusable: {reason}")]
    JwksInvalid {
        /// The JWKS URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Unverified decoding was requested in production.
    #[error("insecure token decoding is refused when ENVIRONMENT is production")]
    InsecureDecodeInProduction,
    /// JWT_SECRET is shorter than [`crate::config::MIN_JWT_SECRET_BYTES`].
    #[error(
        "JWT_SECRET is {len} bytes long; at least {} bytes are required",
        crate::config::MIN_JWT_SECRET_BYTES
    )]
    ShortSecret {
        /// Its length in bytes.
        len: usize,
    },
    /// The HTTP client for the JWKS could not be built.
    #[error("failed to build the JWKS HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

impl AuthError {
    /// The message shown to the caller, whatever went wrong.
    pub fn caller_message(&self) -> &'static str {
        UNAUTHORIZED
    }

    /// Whether the failure is on the service's side (JWKS unreachable or unusable) rather
    /// than the caller's; such failures deserve a louder log line.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            Self::JwksFetch { .. } | Self::JwksStatus { .. } | Self::JwksInvalid { .. }
        )
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    preferred_username: Option<String>,
    email: Option<String>,
    realm_access: Option<RealmAccess>,
    exp: Option<u64>,
}

#[derive(Deserialize)]
struct RealmAccess {
    #[serde(default)]
    roles: Vec<String>,
}

/// Authenticates requests; cheap to clone and share between requests.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AuthSettings,
    hmac: Option<DecodingKey>,
    keys: KeySet,
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
            && secret.len() < crate::config::MIN_JWT_SECRET_BYTES
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

    /// Verifies a raw token and returns who it names.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let claims = if self.inner.settings.insecure_decode {
            self.decode_unverified(token)?
        } else {
            self.decode_verified(token).await?
        };
        identity_from(claims, token)
    }

    async fn decode_verified(&self, token: &str) -> Result<Claims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::MalformedToken(Some(e)))?;
        match header.alg {
            Algorithm::HS256 => match &self.inner.hmac {
                Some(key) => self.decode_with(token, key, Algorithm::HS256),
                None => Err(disallowed(header.alg)),
            },
            alg if is_asymmetric(alg) => {
                let kid = header.kid.as_deref().ok_or(AuthError::MissingKeyId)?;
                let key = self.inner.keys.key(kid).await?;
                if key.alg != alg {
                    return Err(disallowed(alg));
                }
                self.decode_with(token, &key.key, key.alg)
            }
            alg => Err(disallowed(alg)),
        }
    }

    fn decode_with(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, key, &self.validation(alg))
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

    fn validation(&self, alg: Algorithm) -> Validation {
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
        match &settings.audience {
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

fn identity_from(claims: Claims, token: &str) -> Result<Identity, AuthError> {
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
    fn debug_never_shows_the_token_or_the_secret() {
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

        let settings = AuthSettings {
            jwt_secret: Some("hunter2".into()),
            ..AuthSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

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
    fn truncates_caller_text_for_logs() {
        let kid = "k".repeat(12_000);
        let shown = truncate_for_log(&kid);
        assert_eq!(shown.len(), MAX_LOGGED_CHARS + 3);
        assert!(shown.ends_with("..."));
        assert_eq!(truncate_for_log("short"), "short");
        // Multi-byte characters are cut on a character boundary.
        assert_eq!(
            truncate_for_log(&"é".repeat(300)).chars().count(),
            MAX_LOGGED_CHARS + 3
        );
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

    #[test]
    fn settings_follow_the_configuration() {
        use clap::Parser;
        let cli = crate::config::Cli::try_parse_from([
            "codeserver-service",
            "--gitea-url",
            "http://gitea:3000",
            "--gitea-token",
            "t",
            "--jwt-issuer",
            "http://keycloak:30080/realms/devplatform",
            "--jwt-audience",
            "",
            "--admin-role",
            "platform-admin",
            "--auth-trust-forwarded",
            "true",
            "--environment",
            "production",
        ])
        .unwrap();
        let settings = AuthSettings::from_args(&cli.serve);
        assert_eq!(
            settings.issuer.as_deref(),
            Some("http://keycloak:30080/realms/devplatform")
        );
        assert_eq!(settings.audience, None, "an empty audience is no audience");
        assert_eq!(settings.jwks_url, DEFAULT_JWKS_URL);
        assert_eq!(settings.admin_role, "platform-admin");
        assert!(settings.trust_forwarded && !settings.insecure_decode);
        assert_eq!(settings.environment, "production");
    }

    #[test]
    fn every_error_tells_the_caller_only_unauthorized() {
        assert_eq!(AuthError::Expired.caller_message(), "unauthorized");
        assert_eq!(
            AuthError::UnknownKey { kid: "k".into() }.caller_message(),
            "unauthorized"
        );
        assert!(!AuthError::Expired.is_server_fault());
    }
}
