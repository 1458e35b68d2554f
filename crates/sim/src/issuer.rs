//! A local stand-in for Keycloak's token side: a freshly generated RSA key, its JWKS served on
//! 127.0.0.1 at Keycloak's path, and RS256 tokens minted on demand.
//!
//! [`TokenSpec`] has a knob for every way a token can be wrong (expired, not yet valid, other
//! issuer, other audience, unknown `kid`), so tests can check each one is refused. Keys can be
//! rotated: the new key is published and used for new tokens, old keys stay published.
//!
//! It is also an OpenID Connect provider for the authorization code flow with PKCE (discovery,
//! a login page with one button per user, the token, userinfo and logout endpoints): see
//! [`crate::oidc`] and [`Issuer::register_client`].

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::{
    RsaPrivateKey,
    pkcs1::EncodeRsaPrivateKey,
    pkcs8::{EncodePublicKey, LineEnding},
    traits::PublicKeyParts,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;
use tokio::sync::oneshot;
use warp::{Filter, Reply};

pub use crate::oidc::{IdClaims, OidcClient};

/// The realm path, as Keycloak serves it.
pub const REALM_PATH: &str = "/realms/devplatform";
/// The JWKS path, as Keycloak serves it.
pub const CERTS_PATH: &str = "/realms/devplatform/protocol/openid-connect/certs";
/// The audience minted tokens carry unless told otherwise.
pub const DEFAULT_AUDIENCE: &str = "codeserver-service";
/// Lifetime of minted tokens unless told otherwise.
pub const DEFAULT_LIFETIME_SECS: i64 = 3600;

const KEY_BITS: usize = 2048;

/// Errors of the simulated issuer.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The RSA key could not be generated or encoded.
    #[error("failed to generate the signing key: {0}")]
    Key(String),
    /// The key generation task died.
    #[error("the key generation task failed")]
    KeyTask(#[source] tokio::task::JoinError),
    /// The listener could not be bound on 127.0.0.1.
    #[error("failed to listen on 127.0.0.1")]
    Bind(#[source] std::io::Error),
    /// A token could not be signed.
    #[error("failed to sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// A token presented for checking is not one of ours.
    #[error("token rejected")]
    Rejected(#[source] jsonwebtoken::errors::Error),
    /// A token presented for checking names a key we never published.
    #[error("unknown signing key")]
    UnknownKey,
}

pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: serde_json::Value,
    public_pem: String,
}

struct Keys {
    /// The key new tokens are signed with (also in `published`).
    current: Arc<SigningKey>,
    /// Every key in the JWKS, oldest first.
    published: Vec<Arc<SigningKey>>,
}

pub(crate) struct State {
    keys: RwLock<Keys>,
    jwks_requests: AtomicUsize,
    /// The OpenID Connect side: clients, login users, pending codes, counters.
    pub(crate) oidc: crate::oidc::OidcState,
}

impl State {
    /// The key new tokens are signed with.
    pub(crate) fn current_key(&self) -> Arc<SigningKey> {
        match self.keys.read() {
            Ok(keys) => keys.current.clone(),
            Err(poisoned) => poisoned.into_inner().current.clone(),
        }
    }

    /// Every key in the JWKS, oldest first.
    pub(crate) fn published_keys(&self) -> Vec<Arc<SigningKey>> {
        match self.keys.read() {
            Ok(keys) => keys.published.clone(),
            Err(poisoned) => poisoned.into_inner().published.clone(),
        }
    }
}

/// A running token issuer; the server stops when this is dropped.
pub struct Issuer {
    addr: SocketAddr,
    pub(crate) state: Arc<State>,
    _shutdown: oneshot::Sender<()>,
}

/// What a minted token says. Start from [`TokenSpec::new`] and turn the knobs.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// `preferred_username`.
    pub user: String,
    /// `email`.
    pub email: Option<String>,
    /// `sub`; defaults to a stable id derived from the user.
    pub sub: String,
    /// `realm_access.roles`.
    pub roles: Vec<String>,
    /// `iss`; `None` is this issuer's URL.
    pub issuer: Option<String>,
    /// `aud`; `None` is [`DEFAULT_AUDIENCE`].
    pub audience: Option<String>,
    /// Seconds from now until `exp` (negative: already expired).
    pub expires_in: i64,
    /// Seconds from now until `nbf` (positive: not valid yet).
    pub not_before: i64,
    /// The header `kid`; `None` is the current key's id.
    pub kid: Option<String>,
}

impl TokenSpec {
    /// A valid token for `user`, with an email and no roles.
    pub fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            email: Some(format!("{user}@devplatform.local")),
            sub: format!("sub-{user}"),
            roles: Vec::new(),
            issuer: None,
            audience: None,
            expires_in: DEFAULT_LIFETIME_SECS,
            not_before: 0,
            kid: None,
        }
    }

    /// Adds realm roles.
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        self
    }

    /// Sets `exp` relative to now.
    pub fn expires_in(mut self, secs: i64) -> Self {
        self.expires_in = secs;
        self
    }

    /// Sets `nbf` relative to now.
    pub fn not_before(mut self, secs: i64) -> Self {
        self.not_before = secs;
        self
    }

    /// Sets `iss`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Sets `aud`.
    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = Some(audience.to_owned());
        self
    }

    /// Sets the header `kid`.
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }
}

/// The claims of minted tokens, as Keycloak writes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Subject.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// User name.
    pub preferred_username: String,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Realm roles.
    pub realm_access: RealmAccess,
}

/// Keycloak's `realm_access` claim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RealmAccess {
    /// Realm roles.
    pub roles: Vec<String>,
}

impl Issuer {
    /// Generates a key and starts serving the JWKS on 127.0.0.1 (a free port).
    pub async fn start() -> Result<Self, IssuerError> {
        let key = Arc::new(generate_key(1).await?);
        let state = Arc::new(State {
            keys: RwLock::new(Keys {
                current: key.clone(),
                published: vec![key],
            }),
            jwks_requests: AtomicUsize::new(0),
            oidc: crate::oidc::OidcState::default(),
        });
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(IssuerError::Bind)?;
        let addr = listener.local_addr().map_err(IssuerError::Bind)?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = warp::serve(routes(state.clone(), addr))
            .incoming(listener)
            .graceful(async {
                let _dropped = stopped.await;
            });
        tokio::spawn(server.run());
        Ok(Self {
            addr,
            state,
            _shutdown: shutdown,
        })
    }

    /// The issuer URL (`iss` of minted tokens).
    pub fn issuer_url(&self) -> String {
        issuer_url_of(self.addr)
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("http://{}{CERTS_PATH}", self.addr)
    }

    /// The audience minted tokens carry by default.
    pub fn audience(&self) -> &'static str {
        DEFAULT_AUDIENCE
    }

    /// The id of the key new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.current().kid.clone()
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_requests(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    /// The current public key as a PEM `PUBLIC KEY` document (what an attacker can read).
    pub fn public_key_pem(&self) -> String {
        self.current().public_pem.clone()
    }

    /// A valid token for `user` with `roles`.
    pub fn token(&self, user: &str, roles: &[&str]) -> Result<String, IssuerError> {
        self.mint(&TokenSpec::new(user).roles(roles))
    }

    /// Mints an RS256 token as `spec` says, signed with the current key.
    pub fn mint(&self, spec: &TokenSpec) -> Result<String, IssuerError> {
        mint_with(&self.state, &self.issuer_url(), spec)
    }

    /// Signs `spec`'s claims with HS256 using `secret` (a shared secret, or an attacker's
    /// guess such as the public key), with the current key's `kid` in the header.
    pub fn mint_hs256(&self, spec: &TokenSpec, secret: &[u8]) -> Result<String, IssuerError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current_kid());
        jsonwebtoken::encode(
            &header,
            &self.claims(spec),
            &EncodingKey::from_secret(secret),
        )
        .map_err(IssuerError::Sign)
    }

    /// An unsigned token with `alg: none`, as an attacker would forge it.
    pub fn mint_alg_none(&self, spec: &TokenSpec) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.current_kid()});
        let claims = serde_json::to_value(self.claims(spec)).unwrap_or_default();
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// Generates a new key, publishes it and signs new tokens with it; returns its `kid`.
    pub async fn rotate(&self) -> Result<String, IssuerError> {
        let serial = self.published().len() + 1;
        let key = Arc::new(generate_key(serial).await?);
        let kid = key.kid.clone();
        let mut keys = match self.state.keys.write() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        keys.published.push(key.clone());
        keys.current = key;
        Ok(kid)
    }

    /// Withdraws every published key except the current one (as after a key compromise):
    /// the JWKS no longer lists them, so tokens they signed must be refused.
    pub fn retire_old_keys(&self) {
        let mut keys = match self.state.keys.write() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = keys.current.clone();
        keys.published.retain(|k| Arc::ptr_eq(k, &current));
    }

    /// Checks a token as a downstream service would (signature with a published key, `exp`,
    /// issuer), returning its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, IssuerError> {
        verify_with(&self.state, &self.issuer_url(), token)
    }

    fn claims(&self, spec: &TokenSpec) -> Claims {
        claims_for(spec, &self.issuer_url())
    }

    fn current(&self) -> Arc<SigningKey> {
        self.state.current_key()
    }

    fn published(&self) -> Vec<Arc<SigningKey>> {
        self.state.published_keys()
    }
}

/// The issuer URL of an issuer listening on `addr`.
pub(crate) fn issuer_url_of(addr: SocketAddr) -> String {
    format!("http://{addr}{REALM_PATH}")
}

/// The claims of a token minted now as `spec` says, by the issuer at `issuer_url`.
fn claims_for(spec: &TokenSpec, issuer_url: &str) -> Claims {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    Claims {
        sub: spec.sub.clone(),
        iss: spec.issuer.clone().unwrap_or_else(|| issuer_url.to_owned()),
        aud: spec
            .audience
            .clone()
            .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
        exp: now + spec.expires_in,
        nbf: now + spec.not_before,
        iat: now,
        preferred_username: spec.user.clone(),
        email: spec.email.clone(),
        realm_access: RealmAccess {
            roles: spec.roles.clone(),
        },
    }
}

/// [`Issuer::mint`] without the handle: an RS256 token as `spec` says, signed with the current
/// key.
pub(crate) fn mint_with(
    state: &State,
    issuer_url: &str,
    spec: &TokenSpec,
) -> Result<String, IssuerError> {
    let key = state.current_key();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(spec.kid.clone().unwrap_or_else(|| key.kid.clone()));
    jsonwebtoken::encode(&header, &claims_for(spec, issuer_url), &key.encoding)
        .map_err(IssuerError::Sign)
}

/// [`Issuer::verify`] without the handle.
pub(crate) fn verify_with(
    state: &State,
    issuer_url: &str,
    token: &str,
) -> Result<Claims, IssuerError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer_url]);
    validation.validate_aud = false;
    decode_with(state, token, &validation)
}

/// Decodes `token` with the published key its header names, as `validation` says.
pub(crate) fn decode_with<T: DeserializeOwned>(
    state: &State,
    token: &str,
    validation: &Validation,
) -> Result<T, IssuerError> {
    let header = jsonwebtoken::decode_header(token).map_err(IssuerError::Rejected)?;
    let kid = header.kid.ok_or(IssuerError::UnknownKey)?;
    let key = state
        .published_keys()
        .into_iter()
        .find(|k| k.kid == kid)
        .ok_or(IssuerError::UnknownKey)?;
    jsonwebtoken::decode::<T>(token, &key.decoding, validation)
        .map(|data| data.claims)
        .map_err(IssuerError::Rejected)
}

fn routes(
    state: Arc<State>,
    addr: SocketAddr,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let oidc = crate::oidc::routes(state.clone(), addr);
    let certs = warp::get()
        .and(warp::path!(
            "realms" / "devplatform" / "protocol" / "openid-connect" / "certs"
        ))
        .map(move || {
            state.jwks_requests.fetch_add(1, Ordering::SeqCst);
            let keys: Vec<serde_json::Value> = match state.keys.read() {
                Ok(keys) => keys.published.iter().map(|k| k.jwk.clone()).collect(),
                Err(poisoned) => {
                    let keys = poisoned.into_inner();
                    keys.published.iter().map(|k| k.jwk.clone()).collect()
                }
            };
            warp::reply::json(&json!({ "keys": keys })).into_response()
        });
    certs.or(oidc).unify()
}

async fn generate_key(serial: usize) -> Result<SigningKey, IssuerError> {
    tokio::task::spawn_blocking(move || build_key(serial))
        .await
        .map_err(IssuerError::KeyTask)?
}

fn build_key(serial: usize) -> Result<SigningKey, IssuerError> {
    let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)
        .map_err(|e| IssuerError::Key(e.to_string()))?;
    let public = private.to_public_key();
    let der = private
        .to_pkcs1_der()
        .map_err(|e| IssuerError::Key(e.to_string()))?;
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| IssuerError::Key(e.to_string()))?;
    let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
    let kid = format!(
        "sim-key-{serial}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let decoding =
        DecodingKey::from_rsa_components(&n, &e).map_err(|e| IssuerError::Key(e.to_string()))?;
    let jwk = json!({
        "kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": n, "e": e,
    });
    Ok(SigningKey {
        kid,
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        decoding,
        jwk,
        public_pem,
    })
}
