//! What the gatekeeper's cookies and tickets say, and the cookies themselves.
//!
//! Every cookie is host-only (`__Host-` prefix: `Secure`, `Path=/`, no `Domain`),
//! `HttpOnly` and `SameSite=Lax`. The API host keeps the login ([`Login`]) and, while a
//! login is under way, its state ([`LoginState`]); a workspace host keeps its own session
//! ([`WorkspaceSession`], bound to that host) and, while a login it started is under way,
//! the hand-off secret whose hash the ticket carries.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use super::seal::Sealed;

/// The login on the API host.
pub const LOGIN_COOKIE: &str = "__Host-cs-session";
/// The prefix of a login under way on the API host (one per login, named by its state).
pub const LOGIN_STATE_COOKIE: &str = "__Host-cs-login-";
/// A workspace host's session.
pub const WORKSPACE_COOKIE: &str = "__Host-cs-workspace";
/// A workspace host's hand-off secret during a login.
pub const HANDOFF_COOKIE: &str = "__Host-cs-handoff";

/// Who logged in: what a session needs to decide access.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: the owner as the API records it.
    pub sub: String,
    /// The user id (`preferred_username`, else `sub`): the instance's name comes from it.
    pub uid: String,
    /// Whether the user held the admin role at login.
    pub adm: bool,
}

/// The login on the API host.
#[derive(Debug, Serialize, Deserialize)]
pub struct Login {
    typ: String,
    /// Who logged in.
    #[serde(flatten)]
    pub who: Principal,
    /// When the login ends (seconds since the epoch).
    pub exp: u64,
}

impl Login {
    /// A login of `who` until `exp`.
    pub fn new(who: Principal, exp: u64) -> Self {
        Self {
            typ: Self::TYP.to_owned(),
            who,
            exp,
        }
    }
}

impl Sealed for Login {
    const TYP: &'static str = "login";
    fn typ(&self) -> &str {
        &self.typ
    }
}

/// A login under way: what the callback checks and needs.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginState {
    typ: String,
    /// The `state` sent to the issuer.
    pub state: String,
    /// The `nonce` sent to the issuer.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Where to go after the login.
    pub rd: String,
    /// The hash of the workspace host's hand-off secret.
    pub hh: String,
    /// When the login must have come back (seconds since the epoch).
    pub exp: u64,
}

impl LoginState {
    /// A login under way until `exp`.
    pub fn new(
        state: String,
        nonce: String,
        verifier: String,
        rd: String,
        hh: String,
        exp: u64,
    ) -> Self {
        Self {
            typ: Self::TYP.to_owned(),
            state,
            nonce,
            verifier,
            rd,
            hh,
            exp,
        }
    }
}

impl Sealed for LoginState {
    const TYP: &'static str = "login-state";
    fn typ(&self) -> &str {
        &self.typ
    }
}

/// The one-time hand-off from the API host to a workspace host.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ticket {
    typ: String,
    /// Who logged in.
    #[serde(flatten)]
    pub who: Principal,
    /// The workspace host (lowercase, without a port) it is for.
    pub host: String,
    /// Where to go on that host after the hand-off.
    pub rd: String,
    /// The hash of the hand-off secret of the browser that asked for the login.
    pub hh: String,
    /// When the login it came from ends; the workspace session never outlives it.
    pub login_exp: u64,
    /// When the ticket expires (seconds since the epoch; at most a minute).
    pub exp: u64,
}

impl Ticket {
    /// A ticket for `who` on `host`.
    pub fn new(
        who: Principal,
        host: String,
        rd: String,
        hh: String,
        login_exp: u64,
        exp: u64,
    ) -> Self {
        Self {
            typ: Self::TYP.to_owned(),
            who,
            host,
            rd,
            hh,
            login_exp,
            exp,
        }
    }
}

impl Sealed for Ticket {
    const TYP: &'static str = "ticket";
    fn typ(&self) -> &str {
        &self.typ
    }
}

/// A workspace host's session.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkspaceSession {
    typ: String,
    /// Who logged in.
    #[serde(flatten)]
    pub who: Principal,
    /// The workspace host (lowercase, without a port) it is valid on.
    pub host: String,
    /// When it ends (seconds since the epoch).
    pub exp: u64,
}

impl WorkspaceSession {
    /// A session of `who` on `host` until `exp`.
    pub fn new(who: Principal, host: String, exp: u64) -> Self {
        Self {
            typ: Self::TYP.to_owned(),
            who,
            host,
            exp,
        }
    }
}

impl Sealed for WorkspaceSession {
    const TYP: &'static str = "workspace";
    fn typ(&self) -> &str {
        &self.typ
    }
}

/// The most bytes of `Cookie` headers read from one request.
const MAX_COOKIE_BYTES: usize = 16 * 1024;

/// The value of cookie `name` in the request's `Cookie` headers, if present.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    cookies(headers)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// Every cookie of the request (`Cookie` headers, in order), as name and value; none when
/// the headers are too large to be a browser's.
pub fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut total = 0;
    let mut all = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        total += value.len();
        if total > MAX_COOKIE_BYTES {
            return Vec::new();
        }
        let Ok(text) = value.to_str() else { continue };
        for cookie in Cookie::split_parse(text).flatten() {
            all.push((cookie.name().to_owned(), cookie.value().to_owned()));
        }
    }
    all
}

/// A `Set-Cookie` value for a host-only cookie `name` that lasts `max_age`.
pub fn set_cookie(name: &str, value: String, max_age: Duration) -> String {
    let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    Cookie::build((name.to_owned(), value))
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(seconds))
        .build()
        .to_string()
}

/// A `Set-Cookie` value that removes the host-only cookie `name`.
pub fn clear_cookie(name: &str) -> String {
    set_cookie(name, String::new(), Duration::ZERO)
}
