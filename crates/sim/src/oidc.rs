//! The OpenID Connect side of the simulated Keycloak realm `devplatform`: discovery, the
//! authorization endpoint with a login page (one button per login user, no password), the token
//! endpoint for the authorization code grant with PKCE, userinfo and RP-initiated logout.
//!
//! It answers as Keycloak does: the same paths, the same checks in the same order, the same
//! `error`/`error_description` pairs and error pages, so a relying party (the service, with the
//! `openidconnect` crate) can be tested against it as against the real realm. The behaviour was
//! checked against Keycloak's sources (keycloak/keycloak on GitHub), cited where it matters:
//!
//! - `services/.../protocol/oidc/endpoints/AuthorizationEndpoint.java` and
//!   `AuthorizationEndpointChecker.java`: the order of the authorization checks, which ones
//!   answer with an error page and which go back to the redirect URI (with `state` and `iss`);
//! - `services/.../protocol/oidc/grants/AuthorizationCodeGrantType.java`,
//!   `protocol/oidc/utils/PkceUtils.java`, `endpoints/TokenEndpoint.java`: the token endpoint;
//! - `services/.../authentication/authenticators/client/ClientIdAndSecretAuthenticator.java`,
//!   `AuthenticationProcessor.handleClientAuthException`: client authentication errors;
//! - `endpoints/UserInfoEndpoint.java` and `endpoints/LogoutEndpoint.java`.
//!
//! Known differences from Keycloak, all on paths the service does not take: no SSO session (every
//! authorization request shows the login page, `prompt=none` always answers `login_required`),
//! no refresh tokens (only `grant_type=authorization_code`), only `response_type=code` with
//! `response_mode=query`, redirect URIs match exactly (no wildcards), a request without the
//! `openid` scope is refused with `invalid_scope` (Keycloak would go on as plain OAuth 2 and issue
//! no ID token), and logout needs no confirmation page.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use bytes::Bytes;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use warp::{
    Filter, Reply,
    http::{HeaderValue, StatusCode, header},
};

use crate::issuer::{
    self, CERTS_PATH, Issuer, IssuerError, REALM_PATH, RealmAccess, State, TokenSpec,
};
use crate::lock;

/// The path of the discovery document, as Keycloak serves it.
pub const DISCOVERY_PATH: &str = "/realms/devplatform/.well-known/openid-configuration";
/// The authorization endpoint's path, as Keycloak serves it.
pub const AUTH_PATH: &str = "/realms/devplatform/protocol/openid-connect/auth";
/// The token endpoint's path, as Keycloak serves it.
pub const TOKEN_PATH: &str = "/realms/devplatform/protocol/openid-connect/token";
/// The userinfo endpoint's path, as Keycloak serves it.
pub const USERINFO_PATH: &str = "/realms/devplatform/protocol/openid-connect/userinfo";
/// The end-session (RP-initiated logout) endpoint's path, as Keycloak serves it.
pub const LOGOUT_PATH: &str = "/realms/devplatform/protocol/openid-connect/logout";

/// How long an authorization code can be exchanged: Keycloak's default realm setting
/// "Client login timeout" (`accessCodeLifespan`) is 60 seconds.
pub const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(60);

/// The realm name, in `WWW-Authenticate` challenges.
const REALM: &str = "devplatform";
/// Largest form body accepted.
const MAX_FORM_BYTES: u64 = 64 * 1024;
/// How long a spent or expired code is remembered (so a late use says "expired").
const CODE_MEMORY: Duration = Duration::from_secs(300);
/// The scopes a request may name: Keycloak's default and optional client scopes of a new
/// client, less `offline_access` (no refresh tokens here), plus `openid`.
const SCOPES: [&str; 9] = [
    "openid",
    "profile",
    "email",
    "roles",
    "web-origins",
    "acr",
    "basic",
    "address",
    "phone",
];
/// Scopes Keycloak grants a new client by default, whatever the request named.
const DEFAULT_SCOPES: [&str; 2] = ["profile", "email"];
/// Keycloak's message for a wrong or missing client secret and for an unknown client.
const BAD_CLIENT: &str = "Invalid client or Invalid client credentials";
/// RFC 7636 §4.1: a code verifier (and so a plain challenge) is 43 to 128 characters.
const PKCE_MIN: usize = 43;
/// RFC 7636 §4.1.
const PKCE_MAX: usize = 128;

/// A client of the realm: a confidential client with the standard flow enabled, or a public one
/// when `client_secret` is empty (Keycloak skips the secret check for public clients).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OidcClient {
    /// `client_id`.
    pub client_id: String,
    /// The client secret; empty for a public client.
    pub client_secret: String,
    /// Valid redirect URIs, matched exactly. They are also valid post-logout redirect URIs
    /// (Keycloak's `+`), besides those given to [`Issuer::set_post_logout_redirect_uris`].
    pub redirect_uris: Vec<String>,
}

/// The claims of an ID token, as Keycloak writes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience: the client id.
    pub aud: String,
    /// Authorized party: the client id.
    pub azp: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user logged in.
    pub auth_time: i64,
    /// Token id.
    pub jti: String,
    /// The `nonce` of the authorization request, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The login session (the `session_state` of the authorization response).
    pub sid: String,
    /// Left half of the SHA-256 of the access token, base64url (OIDC Core §3.1.3.6).
    pub at_hash: String,
    /// Authentication context class: `1`, a login with the login form.
    pub acr: String,
    /// Keycloak's token type: `ID`.
    pub typ: String,
    /// User name.
    pub preferred_username: String,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Always true here.
    pub email_verified: bool,
    /// Realm roles.
    pub realm_access: RealmAccess,
}

/// The OpenID Connect state of a running issuer.
pub(crate) struct OidcState {
    clients: Mutex<HashMap<String, OidcClient>>,
    post_logout: Mutex<HashMap<String, Vec<String>>>,
    users: Mutex<Vec<TokenSpec>>,
    codes: Mutex<HashMap<String, PendingCode>>,
    code_lifetime: Mutex<Duration>,
    authorization_requests: AtomicUsize,
    logins: AtomicUsize,
    token_requests: AtomicUsize,
    logouts: AtomicUsize,
}

impl Default for OidcState {
    fn default() -> Self {
        Self {
            clients: Mutex::default(),
            post_logout: Mutex::default(),
            users: Mutex::default(),
            codes: Mutex::default(),
            code_lifetime: Mutex::new(DEFAULT_CODE_LIFETIME),
            authorization_requests: AtomicUsize::new(0),
            logins: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            logouts: AtomicUsize::new(0),
        }
    }
}

/// An issued, not yet exchanged authorization code and what it is bound to.
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    pkce: Option<Pkce>,
    user: TokenSpec,
    session_state: String,
    auth_time: i64,
    expires_at: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PkceMethod {
    Plain,
    S256,
}

#[derive(Clone, Debug)]
struct Pkce {
    challenge: String,
    method: PkceMethod,
}

impl Issuer {
    /// Registers a client of the realm (replacing one with the same `client_id`).
    pub fn register_client(&self, client: OidcClient) {
        lock(&self.state.oidc.clients).insert(client.client_id.clone(), client);
    }

    /// Sets the client's valid post-logout redirect URIs besides its redirect URIs (matched
    /// exactly; may be called before the client is registered).
    pub fn set_post_logout_redirect_uris(&self, client_id: &str, uris: Vec<String>) {
        lock(&self.state.oidc.post_logout).insert(client_id.to_owned(), uris);
    }

    /// Sets the users the login page offers. The tokens issued after a login say what the
    /// user's spec says: the access token is exactly [`Issuer::mint`]'s, the ID token takes
    /// `sub`, the user name, email, roles, lifetime, `iss` and `kid` from it (its audience is
    /// always the client).
    pub fn set_login_users(&self, users: Vec<TokenSpec>) {
        *lock(&self.state.oidc.users) = users;
    }

    /// Sets how long new authorization codes can be exchanged ([`DEFAULT_CODE_LIFETIME`]
    /// unless told otherwise; zero makes every new code expired).
    pub fn set_code_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.oidc.code_lifetime) = lifetime;
    }

    /// How many login pages the authorization endpoint served.
    pub fn authorization_requests(&self) -> usize {
        self.state
            .oidc
            .authorization_requests
            .load(Ordering::SeqCst)
    }

    /// How many logins completed (authorization codes issued).
    pub fn logins(&self) -> usize {
        self.state.oidc.logins.load(Ordering::SeqCst)
    }

    /// How many requests reached the token endpoint, whatever their outcome.
    pub fn token_requests(&self) -> usize {
        self.state.oidc.token_requests.load(Ordering::SeqCst)
    }

    /// How many logouts the end-session endpoint performed.
    pub fn logouts(&self) -> usize {
        self.state.oidc.logouts.load(Ordering::SeqCst)
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        self.url(DISCOVERY_PATH)
    }

    /// The authorization endpoint's URL.
    pub fn authorization_url(&self) -> String {
        self.url(AUTH_PATH)
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        self.url(TOKEN_PATH)
    }

    /// The userinfo endpoint's URL.
    pub fn userinfo_url(&self) -> String {
        self.url(USERINFO_PATH)
    }

    /// The end-session endpoint's URL.
    pub fn logout_url(&self) -> String {
        self.url(LOGOUT_PATH)
    }

    /// Checks an ID token as a relying party would (signature with a published key, `exp`,
    /// `iss`, `aud` = `client_id`, `typ` = `ID`), returning its claims; the caller compares the
    /// `nonce`.
    pub fn verify_id_token(&self, token: &str, client_id: &str) -> Result<IdClaims, IssuerError> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[self.issuer_url()]);
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims: IdClaims = issuer::decode_with(&self.state, token, &validation)?;
        if claims.typ != "ID" {
            return Err(IssuerError::Rejected(
                jsonwebtoken::errors::ErrorKind::InvalidToken.into(),
            ));
        }
        Ok(claims)
    }

    fn url(&self, path: &str) -> String {
        let issuer = self.issuer_url();
        let origin = issuer.strip_suffix(REALM_PATH).unwrap_or(&issuer);
        format!("{origin}{path}")
    }
}

/// The routes of the OpenID Connect endpoints.
pub(crate) fn routes(
    state: Arc<State>,
    addr: SocketAddr,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let discovery = warp::get()
        .and(warp::path!(
            "realms" / "devplatform" / ".well-known" / "openid-configuration"
        ))
        .map(move || discovery_document(addr));

    let auth_path = warp::path!("realms" / "devplatform" / "protocol" / "openid-connect" / "auth");
    let st = state.clone();
    let auth_get = warp::get()
        .and(auth_path)
        .and(warp::query::<Vec<(String, String)>>())
        .map(move |params: Vec<(String, String)>| authorize(&st, addr, &params, false));
    let st = state.clone();
    let auth_post = warp::post()
        .and(auth_path)
        .and(form())
        .map(move |params: Vec<(String, String)>| authorize(&st, addr, &params, true));

    let st = state.clone();
    let token = warp::post()
        .and(warp::path!(
            "realms" / "devplatform" / "protocol" / "openid-connect" / "token"
        ))
        .and(warp::header::optional::<String>("authorization"))
        .and(form())
        .map(
            move |authorization: Option<String>, params: Vec<(String, String)>| {
                token_endpoint(&st, addr, authorization.as_deref(), &params)
            },
        );

    let userinfo_path =
        warp::path!("realms" / "devplatform" / "protocol" / "openid-connect" / "userinfo");
    let st = state.clone();
    let userinfo_get = warp::get()
        .and(userinfo_path)
        .and(warp::header::optional::<String>("authorization"))
        .map(move |authorization: Option<String>| {
            userinfo(&st, addr, authorization.as_deref(), &[])
        });
    let st = state.clone();
    let userinfo_post = warp::post()
        .and(userinfo_path)
        .and(warp::header::optional::<String>("authorization"))
        .and(form())
        .map(
            move |authorization: Option<String>, params: Vec<(String, String)>| {
                userinfo(&st, addr, authorization.as_deref(), &params)
            },
        );

    let logout_path =
        warp::path!("realms" / "devplatform" / "protocol" / "openid-connect" / "logout");
    let st = state.clone();
    let logout_get = warp::get()
        .and(logout_path)
        .and(warp::query::<Vec<(String, String)>>())
        .map(move |params: Vec<(String, String)>| logout(&st, &params));
    let st = state;
    let logout_post = warp::post()
        .and(logout_path)
        .and(form())
        .map(move |params: Vec<(String, String)>| logout(&st, &params));

    discovery
        .or(auth_get)
        .unify()
        .or(auth_post)
        .unify()
        .or(token)
        .unify()
        .or(userinfo_get)
        .unify()
        .or(userinfo_post)
        .unify()
        .or(logout_get)
        .unify()
        .or(logout_post)
        .unify()
}

/// An `application/x-www-form-urlencoded` body as name/value pairs, in order.
fn form() -> impl Filter<Extract = (Vec<(String, String)>,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_FORM_BYTES)
        .and(warp::body::bytes())
        .map(|body: Bytes| {
            url::form_urlencoded::parse(&body)
                .into_owned()
                .collect::<Vec<_>>()
        })
}

/// The first value of the parameter `name` (as JAX-RS `getFirst`).
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

/// The discovery document. OpenID Connect Discovery 1.0 §3 requires `issuer`,
/// `authorization_endpoint`, `token_endpoint` (unless only the implicit flow is used),
/// `jwks_uri`, `response_types_supported`, `subject_types_supported` and
/// `id_token_signing_alg_values_supported` (also what `openidconnect`'s `CoreProviderMetadata`
/// requires); the rest is what Keycloak publishes for the features simulated here
/// (`OIDCWellKnownProvider`; `code_challenge_methods_supported` is `["plain","S256"]` there,
/// and `authorization_response_iss_parameter_supported` is RFC 9207).
fn discovery_document(addr: SocketAddr) -> warp::reply::Response {
    let issuer = issuer::issuer_url_of(addr);
    let origin = format!("http://{addr}");
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{origin}{AUTH_PATH}"),
        "token_endpoint": format!("{origin}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{origin}{USERINFO_PATH}"),
        "end_session_endpoint": format!("{origin}{LOGOUT_PATH}"),
        "jwks_uri": format!("{origin}{CERTS_PATH}"),
        "grant_types_supported": ["authorization_code"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES,
        "claims_supported": [
            "aud", "sub", "iss", "auth_time", "preferred_username", "email", "email_verified",
            "acr", "sid", "nonce", "azp", "at_hash", "realm_access",
        ],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    warp::reply::json(&doc).into_response()
}

// ---------------------------------------------------------------------------------------------
// Authorization endpoint
// ---------------------------------------------------------------------------------------------

/// Why an authorization request is refused.
#[derive(Debug, thiserror::Error)]
enum AuthFailure {
    /// Before the redirect URI is known good: Keycloak's error page ("We are sorry...").
    #[error("{status}: {message}")]
    Page { status: StatusCode, message: String },
    /// After: back to the client's redirect URI (RFC 6749 §4.1.2.1).
    #[error("{error}: {description:?}")]
    Redirect {
        redirect_uri: url::Url,
        error: &'static str,
        description: Option<String>,
        state: Option<String>,
    },
}

impl AuthFailure {
    fn page(message: impl Into<String>) -> Self {
        Self::Page {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn into_response(self, addr: SocketAddr) -> warp::reply::Response {
        match self {
            Self::Page { status, message } => error_page(status, &message),
            Self::Redirect {
                mut redirect_uri,
                error,
                description,
                state,
            } => {
                {
                    let mut query = redirect_uri.query_pairs_mut();
                    query.append_pair("error", error);
                    if let Some(description) = &description {
                        query.append_pair("error_description", description);
                    }
                    if let Some(state) = &state {
                        query.append_pair("state", state);
                    }
                    // Keycloak adds `iss` to error responses too (`redirectErrorToClient`).
                    query.append_pair("iss", &issuer::issuer_url_of(addr));
                }
                redirect(redirect_uri.as_str())
            }
        }
    }
}

/// An authorization request that passed every check.
struct Checked {
    client_id: String,
    redirect_uri: url::Url,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    pkce: Option<Pkce>,
}

/// The request parameters the login page carries from the request to the login.
const CARRIED: [&str; 9] = [
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

fn authorize(
    state: &State,
    addr: SocketAddr,
    params: &[(String, String)],
    post: bool,
) -> warp::reply::Response {
    let checked = match check_authorization(state, params) {
        Ok(checked) => checked,
        Err(failure) => return failure.into_response(addr),
    };
    if post && let Some(username) = param(params, "username") {
        return login(state, addr, checked, username);
    }
    if param(params, "prompt") == Some("none") {
        // No SSO session here, so a passive request always needs a login (OIDC Core §3.1.2.6,
        // Keycloak's `login_required`).
        return AuthFailure::Redirect {
            redirect_uri: checked.redirect_uri,
            error: "login_required",
            description: None,
            state: checked.state,
        }
        .into_response(addr);
    }
    state
        .oidc
        .authorization_requests
        .fetch_add(1, Ordering::SeqCst);
    let users = lock(&state.oidc.users).clone();
    login_page(addr, params, &users)
}

/// Keycloak's checks, in Keycloak's order (`AuthorizationEndpoint.process`): client, redirect
/// URI (both answered with an error page), then response type, scope and PKCE (answered on the
/// redirect URI).
fn check_authorization(state: &State, params: &[(String, String)]) -> Result<Checked, AuthFailure> {
    let client_id = param(params, "client_id")
        .ok_or_else(|| AuthFailure::page("Missing parameter: client_id"))?;
    let client = lock(&state.oidc.clients)
        .get(client_id)
        .cloned()
        .ok_or_else(|| AuthFailure::page("Client not found."))?;
    let redirect_uri = param(params, "redirect_uri")
        .filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
        .and_then(|uri| url::Url::parse(uri).ok())
        .ok_or_else(|| AuthFailure::page("Invalid parameter: redirect_uri"))?;
    let request_state = param(params, "state").map(str::to_owned);
    let fail = |error: &'static str, description: Option<String>| AuthFailure::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description,
        state: request_state.clone(),
    };

    // AuthorizationEndpointChecker.checkResponseType: a missing type is invalid_request, an
    // unknown one unsupported_response_type without a description, the implicit and hybrid
    // types are refused because the implicit flow is disabled for the client.
    let response_type = param(params, "response_type").ok_or_else(|| {
        fail(
            "invalid_request",
            Some("Missing parameter: response_type".into()),
        )
    })?;
    let types: Vec<&str> = response_type.split_whitespace().collect();
    let known = |t: &&str| matches!(*t, "code" | "token" | "id_token");
    if types.is_empty() || !types.iter().all(known) {
        return Err(fail("unsupported_response_type", None));
    }
    if types != ["code"] {
        return Err(fail(
            "unauthorized_client",
            Some(
                "Client is not allowed to initiate browser login with given response_type. \
                 Implicit flow is disabled for the client."
                    .into(),
            ),
        ));
    }
    if let Some(mode) = param(params, "response_mode")
        && mode != "query"
    {
        return Err(fail(
            "invalid_request",
            Some("Invalid parameter: response_mode".into()),
        ));
    }

    // checkValidScope: "Invalid scopes: <scope>". Requiring `openid` is the sim's own rule.
    let scope = param(params, "scope").unwrap_or_default();
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if !scopes.contains(&"openid") || !scopes.iter().all(|s| SCOPES.contains(s)) {
        return Err(fail(
            "invalid_scope",
            Some(format!("Invalid scopes: {scope}")),
        ));
    }

    // checkPKCEParams for a client without an enforced method: no challenge, no PKCE; a missing
    // method is `plain` (RFC 7636 §4.3).
    let challenge = param(params, "code_challenge");
    let method = param(params, "code_challenge_method");
    let pkce = match (challenge, method) {
        (None, Some(_)) => {
            return Err(fail(
                "invalid_request",
                Some("Missing parameter: code_challenge".into()),
            ));
        }
        (None, None) => None,
        (Some(challenge), method) => {
            let method = match method {
                None | Some("plain") => PkceMethod::Plain,
                Some("S256") => PkceMethod::S256,
                Some(_) => {
                    return Err(fail(
                        "invalid_request",
                        Some("Invalid parameter: code_challenge_method".into()),
                    ));
                }
            };
            if !valid_pkce_value(challenge) {
                return Err(fail(
                    "invalid_request",
                    Some("Invalid parameter: code_challenge".into()),
                ));
            }
            Some(Pkce {
                challenge: challenge.to_owned(),
                method,
            })
        }
    };

    Ok(Checked {
        client_id: client.client_id,
        redirect_uri,
        scope: scope.to_owned(),
        state: request_state,
        nonce: param(params, "nonce").map(str::to_owned),
        pkce,
    })
}

/// RFC 7636 §4.1/§4.2: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn valid_pkce_value(value: &str) -> bool {
    (PKCE_MIN..=PKCE_MAX).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Issues a code for `username` and sends the browser back to the client, as Keycloak's
/// `OIDCLoginProtocol.authenticated`: `state`, `session_state`, `iss` (RFC 9207) and `code`.
fn login(
    state: &State,
    addr: SocketAddr,
    checked: Checked,
    username: &str,
) -> warp::reply::Response {
    let Some(user) = lock(&state.oidc.users)
        .iter()
        .find(|u| u.user == username)
        .cloned()
    else {
        return error_page(StatusCode::BAD_REQUEST, "Invalid username or password.");
    };
    let session_state = uuid::Uuid::new_v4().to_string();
    let code = format!(
        "{}.{session_state}.{}",
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4()
    );
    let now = Instant::now();
    let lifetime = *lock(&state.oidc.code_lifetime);
    let mut redirect_uri = checked.redirect_uri.clone();
    {
        let mut query = redirect_uri.query_pairs_mut();
        if let Some(s) = &checked.state {
            query.append_pair("state", s);
        }
        query.append_pair("session_state", &session_state);
        query.append_pair("iss", &issuer::issuer_url_of(addr));
        query.append_pair("code", &code);
    }
    let pending = PendingCode {
        client_id: checked.client_id,
        redirect_uri: checked.redirect_uri.to_string(),
        scope: checked.scope,
        nonce: checked.nonce,
        pkce: checked.pkce,
        user,
        session_state,
        auth_time: now_secs(),
        expires_at: now + lifetime,
    };
    {
        let mut codes = lock(&state.oidc.codes);
        codes.retain(|_, c| c.expires_at + CODE_MEMORY > now);
        codes.insert(code, pending);
    }
    state.oidc.logins.fetch_add(1, Ordering::SeqCst);
    redirect(redirect_uri.as_str())
}

/// The login page: a form posting the request back with one submit button per user.
fn login_page(
    addr: SocketAddr,
    params: &[(String, String)],
    users: &[TokenSpec],
) -> warp::reply::Response {
    let mut hidden = String::new();
    for name in CARRIED {
        if let Some(value) = param(params, name) {
            hidden.push_str(&format!(
                "      <input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                escape(value)
            ));
        }
    }
    let mut buttons = String::new();
    for user in users {
        let name = escape(&user.user);
        buttons.push_str(&format!(
            "      <button type=\"submit\" name=\"username\" value=\"{name}\" \
             id=\"login-{name}\">Sign in as {name}</button>\n"
        ));
    }
    if users.is_empty() {
        buttons.push_str("      <p id=\"no-users\">No user can log in.</p>\n");
    }
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  \
         <title>Sign in to {REALM}</title>\n</head>\n<body>\n  \
         <h1 id=\"kc-page-title\">Sign in to your account</h1>\n  \
         <form id=\"kc-form-login\" method=\"post\" action=\"http://{addr}{AUTH_PATH}\">\n\
         {hidden}{buttons}  </form>\n</body>\n</html>\n"
    );
    let mut response = warp::reply::html(body).into_response();
    // Keycloak's login pages are not cached (`CacheControlUtil.noBackButtonCacheControlHeader`).
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, must-revalidate, max-age=0"),
    );
    response
}

/// Keycloak's error page (`error.ftl`): "We are sorry..." and the message.
fn error_page(status: StatusCode, message: &str) -> warp::reply::Response {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  \
         <title>Sign in to {REALM}</title>\n</head>\n<body>\n  \
         <h1 id=\"kc-page-title\">We are sorry...</h1>\n  \
         <p id=\"kc-error-message\" class=\"instruction\">{}</p>\n</body>\n</html>\n",
        escape(message)
    );
    warp::reply::with_status(warp::reply::html(body), status).into_response()
}

fn redirect(location: &str) -> warp::reply::Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response =
                warp::reply::with_status(warp::reply(), StatusCode::FOUND).into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "Invalid parameter: redirect_uri"),
    }
}

/// HTML-escapes text for element content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

/// An OAuth 2 error response of the token, userinfo endpoints (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// A `WWW-Authenticate` challenge to send along.
    challenge: Option<String>,
    /// Keycloak's Basic challenge for an unreadable `Authorization` header has no body.
    empty: bool,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
            empty: false,
        }
    }

    fn bad_request(error: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    fn into_response(self) -> warp::reply::Response {
        let mut response = if self.empty {
            warp::reply::with_status(warp::reply(), self.status).into_response()
        } else {
            let body = json!({"error": self.error, "error_description": self.description});
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
        };
        no_store(&mut response);
        if let Some(challenge) = self.challenge
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl From<IssuerError> for OAuthError {
    fn from(e: IssuerError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        )
    }
}

/// RFC 6749 §5.1: token responses are not cached.
fn no_store(response: &mut warp::reply::Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A successful token response, Keycloak's `AccessTokenResponse` without the refresh token.
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
    token_type: &'static str,
    id_token: String,
    #[serde(rename = "not-before-policy")]
    not_before_policy: i64,
    session_state: String,
    scope: String,
}

fn token_endpoint(
    state: &State,
    addr: SocketAddr,
    authorization: Option<&str>,
    params: &[(String, String)],
) -> warp::reply::Response {
    state.oidc.token_requests.fetch_add(1, Ordering::SeqCst);
    match exchange_code(state, addr, authorization, params) {
        Ok(body) => {
            let mut response = warp::reply::json(&body).into_response();
            no_store(&mut response);
            response
        }
        Err(e) => e.into_response(),
    }
}

/// `TokenEndpoint.processGrantRequest` then `AuthorizationCodeGrantType.process`, in their
/// order: grant type, client authentication, duplicated parameters, the code (single use: it
/// is spent as soon as it is looked up, whatever follows), its expiry, the redirect URI, the
/// client it was issued to, PKCE.
fn exchange_code(
    state: &State,
    addr: SocketAddr,
    authorization: Option<&str>,
    params: &[(String, String)],
) -> Result<TokenResponse, OAuthError> {
    let grant_type = param(params, "grant_type").ok_or_else(|| {
        OAuthError::bad_request("invalid_request", "Missing form parameter: grant_type")
    })?;
    if grant_type != "authorization_code" {
        return Err(OAuthError::bad_request(
            "unsupported_grant_type",
            "Unsupported grant_type",
        ));
    }
    let client = authenticate_client(state, authorization, params)?;
    let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(OAuthError::bad_request(
            "invalid_request",
            "duplicated parameter",
        ));
    }
    let code = param(params, "code")
        .ok_or_else(|| OAuthError::bad_request("invalid_request", "Missing parameter: code"))?;
    let pending = lock(&state.oidc.codes)
        .remove(code)
        .ok_or_else(|| OAuthError::invalid_grant("Code not valid"))?;
    if Instant::now() >= pending.expires_at {
        return Err(OAuthError::invalid_grant("Code is expired"));
    }
    if param(params, "redirect_uri") != Some(pending.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("Incorrect redirect_uri"));
    }
    if client.client_id != pending.client_id {
        return Err(OAuthError::invalid_grant(
            "Auth error: Found different client_id in clientSession",
        ));
    }
    check_pkce(pending.pkce.as_ref(), param(params, "code_verifier"))?;

    let issuer_url = issuer::issuer_url_of(addr);
    let access_token = issuer::mint_with(state, &issuer_url, &pending.user)?;
    let id_token = mint_id_token(state, &issuer_url, &pending, &access_token)?;
    Ok(TokenResponse {
        access_token,
        expires_in: pending.user.expires_in.max(0),
        token_type: "Bearer",
        id_token,
        not_before_policy: 0,
        session_state: pending.session_state.clone(),
        scope: granted_scope(&pending.scope),
    })
}

/// `PkceUtils.checkParamsForPkceNotEnforcedClient` and `verifyCodeVerifier`.
fn check_pkce(pkce: Option<&Pkce>, verifier: Option<&str>) -> Result<(), OAuthError> {
    let (pkce, verifier) = match (pkce, verifier) {
        (None, None) => return Ok(()),
        (Some(_), None) => {
            return Err(OAuthError::invalid_grant(
                "PKCE code verifier not specified",
            ));
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "PKCE code verifier specified but challenge not present in authorization",
            ));
        }
        (Some(pkce), Some(verifier)) => (pkce, verifier),
    };
    if !valid_pkce_value(verifier) {
        return Err(OAuthError::invalid_grant(
            "PKCE verification failed: Invalid code verifier",
        ));
    }
    let encoded = match pkce.method {
        PkceMethod::Plain => verifier.to_owned(),
        // RFC 7636 §4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), no padding.
        PkceMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
    };
    if !constant_time_eq(encoded.as_bytes(), pkce.challenge.as_bytes()) {
        return Err(OAuthError::invalid_grant(
            "PKCE verification failed: Code mismatch",
        ));
    }
    Ok(())
}

/// `ClientIdAndSecretAuthenticator.authenticateClient`: HTTP Basic (`client_secret_basic`, id
/// and secret form-urlencoded first, RFC 6749 §2.3.1) or `client_id`/`client_secret` in the
/// body (`client_secret_post`), the body winning when both are sent.
fn authenticate_client(
    state: &State,
    authorization: Option<&str>,
    params: &[(String, String)],
) -> Result<OidcClient, OAuthError> {
    let mut client_id = None;
    let mut secret = None;
    if let Some(authorization) = authorization {
        match parse_basic(authorization) {
            Some((id, s)) => {
                client_id = Some(id);
                secret = Some(s);
            }
            None if param(params, "client_id").is_none() => {
                return Err(OAuthError {
                    challenge: Some(format!("Basic realm=\"{REALM}\"")),
                    empty: true,
                    ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", "")
                });
            }
            None => {}
        }
    }
    if let Some(id) = param(params, "client_id") {
        client_id = Some(id.to_owned());
    }
    if let Some(s) = param(params, "client_secret") {
        secret = Some(s.to_owned());
    }
    let client_id = client_id
        .ok_or_else(|| OAuthError::bad_request("invalid_client", "Missing client_id parameter"))?;
    // AuthenticationProcessor.handleClientAuthException, CLIENT_NOT_FOUND.
    let client = lock(&state.oidc.clients)
        .get(&client_id)
        .cloned()
        .ok_or_else(|| OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", BAD_CLIENT))?;
    if client.client_secret.is_empty() {
        return Ok(client);
    }
    // reportFailedAuth: a missing or wrong secret is 401 unauthorized_client.
    match secret {
        Some(secret) if constant_time_eq(secret.as_bytes(), client.client_secret.as_bytes()) => {
            Ok(client)
        }
        _ => Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            BAD_CLIENT,
        )),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` → (id, secret).
fn parse_basic(authorization: &str) -> Option<(String, String)> {
    let (scheme, credentials) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space); `None` when malformed.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The requested scopes and the client's default ones, as Keycloak's `scope` in the token
/// response (`openid profile email` for a request of `openid`).
fn granted_scope(requested: &str) -> String {
    let mut scopes: Vec<&str> = Vec::new();
    for scope in requested.split_whitespace().chain(DEFAULT_SCOPES) {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.join(" ")
}

fn mint_id_token(
    state: &State,
    issuer_url: &str,
    pending: &PendingCode,
    access_token: &str,
) -> Result<String, IssuerError> {
    let spec = &pending.user;
    let key = state.current_key();
    let now = now_secs();
    let digest = Sha256::digest(access_token.as_bytes());
    let claims = IdClaims {
        iss: spec.issuer.clone().unwrap_or_else(|| issuer_url.to_owned()),
        sub: spec.sub.clone(),
        aud: pending.client_id.clone(),
        azp: pending.client_id.clone(),
        exp: now + spec.expires_in,
        iat: now,
        auth_time: pending.auth_time,
        jti: uuid::Uuid::new_v4().to_string(),
        nonce: pending.nonce.clone(),
        sid: pending.session_state.clone(),
        at_hash: URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]),
        acr: "1".to_owned(),
        typ: "ID".to_owned(),
        preferred_username: spec.user.clone(),
        email: spec.email.clone(),
        email_verified: true,
        realm_access: RealmAccess {
            roles: spec.roles.clone(),
        },
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(spec.kid.clone().unwrap_or_else(|| key.kid.clone()));
    jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(IssuerError::Sign)
}

fn now_secs() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Userinfo
// ---------------------------------------------------------------------------------------------

/// `UserInfoEndpoint.issueUserInfo`: the bearer token from the `Authorization` header (or, on a
/// POST, the `access_token` form field); none is 400 "Token not provided", a bad one 401 with a
/// `WWW-Authenticate: Bearer` challenge (OIDC Core §5.3.3).
fn userinfo(
    state: &State,
    addr: SocketAddr,
    authorization: Option<&str>,
    params: &[(String, String)],
) -> warp::reply::Response {
    let bearer = authorization.and_then(|h| {
        let (scheme, token) = h.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    let Some(token) = bearer.or_else(|| param(params, "access_token").map(str::to_owned)) else {
        return OAuthError::bad_request("invalid_request", "Token not provided").into_response();
    };
    match issuer::verify_with(state, &issuer::issuer_url_of(addr), &token) {
        Ok(claims) => {
            let mut body = json!({
                "sub": claims.sub,
                "email_verified": true,
                "preferred_username": claims.preferred_username,
            });
            if let Some(email) = claims.email {
                body["email"] = json!(email);
            }
            warp::reply::json(&body).into_response()
        }
        Err(_) => {
            let description = "Token verification failed";
            OAuthError {
                challenge: Some(format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", \
                     error_description=\"{description}\""
                )),
                ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", description)
            }
            .into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------------------------

/// The claims of an `id_token_hint` that matter here.
#[derive(Debug, Deserialize)]
struct HintClaims {
    typ: Option<String>,
    azp: Option<String>,
}

/// `LogoutEndpoint.logout` (OpenID Connect RP-Initiated Logout 1.0): the deprecated
/// `redirect_uri` is refused; `post_logout_redirect_uri` needs `id_token_hint` or `client_id`
/// and must be valid for that client; an `id_token_hint` must be one of our ID tokens (its
/// expiry is not checked) issued to `client_id`. Without a redirect the "logged out" page is
/// shown (Keycloak would first ask for a confirmation).
fn logout(state: &State, params: &[(String, String)]) -> warp::reply::Response {
    if param(params, "redirect_uri").is_some() {
        return error_page(StatusCode::BAD_REQUEST, "Invalid parameter: redirect_uri");
    }
    let hint = param(params, "id_token_hint");
    let client_id = param(params, "client_id");
    let post_logout = param(params, "post_logout_redirect_uri");
    if post_logout.is_some() && hint.is_none() && client_id.is_none() {
        return error_page(StatusCode::BAD_REQUEST, "Missing parameter: id_token_hint");
    }
    let hinted_client = match hint {
        None => None,
        Some(token) => {
            let mut validation = Validation::new(Algorithm::RS256);
            validation.validate_exp = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            match issuer::decode_with::<HintClaims>(state, token, &validation) {
                Ok(claims) if claims.typ.as_deref() == Some("ID") => claims.azp,
                _ => {
                    return error_page(StatusCode::BAD_REQUEST, "Invalid parameter: id_token_hint");
                }
            }
        }
    };
    if let (Some(id), Some(hinted)) = (client_id, hinted_client.as_deref())
        && id != hinted
    {
        return error_page(StatusCode::BAD_REQUEST, "Invalid parameter: id_token_hint");
    }
    let client_id = client_id.map(str::to_owned).or(hinted_client);
    let Some(uri) = post_logout else {
        state.oidc.logouts.fetch_add(1, Ordering::SeqCst);
        return logged_out_page();
    };
    let valid = client_id.as_deref().is_some_and(|id| {
        let registered = lock(&state.oidc.clients)
            .get(id)
            .is_some_and(|c| c.redirect_uris.iter().any(|r| r == uri));
        registered
            || lock(&state.oidc.post_logout)
                .get(id)
                .is_some_and(|uris| uris.iter().any(|r| r == uri))
    });
    let target = valid.then(|| url::Url::parse(uri).ok()).flatten();
    let Some(mut target) = target else {
        return error_page(StatusCode::BAD_REQUEST, "Invalid redirect uri");
    };
    if let Some(s) = param(params, "state") {
        target.query_pairs_mut().append_pair("state", s);
    }
    state.oidc.logouts.fetch_add(1, Ordering::SeqCst);
    redirect(target.as_str())
}

fn logged_out_page() -> warp::reply::Response {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  \
         <title>Signing out of {REALM}</title>\n</head>\n<body>\n  \
         <h1 id=\"kc-page-title\">You are logged out</h1>\n</body>\n</html>\n"
    );
    warp::reply::html(body).into_response()
}
