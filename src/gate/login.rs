//! The browser login on the API host: `/auth/login`, `/auth/callback`, `/auth/logout`.
//!
//! `/auth/login?rd=<url>&h=<hash>` starts an OIDC authorization code flow with PKCE
//! (unless the API host's own login is still valid), `/auth/callback` finishes it, and
//! both end in a one-time ticket for the workspace host of `rd`. `rd` is only ever an
//! https URL of a workspace host under BASE_DOMAIN: nothing else is redirected to.

use http::{HeaderMap, StatusCode, header};
use url::Url;
use warp::reply::Response;

use super::{
    AUTH_PATH, Gate, LOGIN_COOKIE, LOGIN_STATE_COOKIE, LOGIN_STATE_TTL, Login, Principal, Seal,
    TICKET_TTL, Ticket, WorkspaceHost,
    check::principal,
    now, origin,
    pages::{page, page_with_forms, paragraph, redirect},
    same,
    session::{LoginState, clear_cookie, cookie_value, set_cookie},
    workspace_host,
};

/// The longest `rd` accepted.
const MAX_RD_BYTES: usize = 2048;

/// The query of `/auth/login`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct LoginQuery {
    rd: Option<String>,
    h: Option<String>,
}

/// The query of `/auth/callback` (RFC 6749, 4.1.2 and 4.1.2.1).
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Gate {
    /// `rd` when it is an https URL of a workspace host under BASE_DOMAIN, without user
    /// info, with that host.
    fn checked_rd(&self, rd: &str) -> Option<(Url, WorkspaceHost)> {
        if rd.len() > MAX_RD_BYTES {
            return None;
        }
        let url = Url::parse(rd).ok()?;
        if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let authority = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => return None,
        };
        let host = workspace_host(&authority, &self.settings.base_domain)?;
        Some((url, host))
    }

    /// `GET /auth/login`.
    pub async fn login(&self, query: LoginQuery, headers: &HeaderMap) -> Response {
        let Some((url, host)) = query.rd.as_deref().and_then(|rd| self.checked_rd(rd)) else {
            return bad_request(
                "The address to return to is missing or is not a workspace of this platform.",
            );
        };
        let Some((seal, oidc, _)) = self.login_parts() else {
            return unavailable(
                "Browser login is not configured for this platform; ask its admins.",
            );
        };
        // NB: without the hand-off hash the workspace host did not send this browser here;
        // back to the workspace, whose check starts the login properly.
        let Some(hh) = query
            .h
            .filter(|h| h.len() == 43 && h.bytes().all(is_base64url))
        else {
            return redirect(StatusCode::FOUND, url.as_str(), &[]);
        };
        if let Some(login) =
            cookie_value(headers, LOGIN_COOKIE).and_then(|v| seal.open::<Login>(&v))
        {
            return self.hand_off(seal, login.who, login.exp, &url, &host, hh, Vec::new());
        }
        let Some(authorization) = oidc.authorize() else {
            return unavailable(
                "The identity provider cannot be reached yet; try again in a minute.",
            );
        };
        let state = LoginState::new(
            authorization.state.clone(),
            authorization.nonce,
            authorization.verifier,
            url.to_string(),
            hh,
            now() + LOGIN_STATE_TTL.as_secs(),
        );
        let sealed = match seal.seal(&state) {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::error!(%error, "failed to seal a login state");
                return unavailable("The login could not be started; try again.");
            }
        };
        redirect(
            StatusCode::FOUND,
            authorization.url.as_str(),
            &[set_cookie(
                &state_cookie(&authorization.state),
                sealed,
                LOGIN_STATE_TTL,
            )],
        )
    }

    /// `GET /auth/callback`.
    pub async fn callback(&self, query: CallbackQuery, headers: &HeaderMap) -> Response {
        let Some((seal, oidc, _)) = self.login_parts() else {
            return unavailable(
                "Browser login is not configured for this platform; ask its admins.",
            );
        };
        if let Some(error) = &query.error {
            tracing::info!(error, description = ?query.error_description, "the issuer refused a login");
            self.count_login("refused");
            return page(
                StatusCode::UNAUTHORIZED,
                "Login failed",
                &paragraph(&format!(
                    "The identity provider refused the login ({error})."
                )),
            );
        }
        let (Some(code), Some(state)) = (query.code, query.state) else {
            return bad_request("The login answer lacks its code or state.");
        };
        // NB: the state must be the one this browser was sent off with (RFC 6749, 10.12):
        // a callback from anywhere else, e.g. a link an attacker made, finds no cookie.
        let cookie_name = state_cookie(&state);
        let Some(login) = cookie_value(headers, &cookie_name)
            .and_then(|v| seal.open::<LoginState>(&v))
            .filter(|login| same(&login.state, &state))
        else {
            return bad_request(
                "This login was not started in this browser, or took longer than 10 minutes. Open your workspace again.",
            );
        };
        let Ok(_permit) = self.exchanges.try_acquire() else {
            return unavailable("Too many logins at once; try again in a moment.");
        };
        let id_token = match oidc.exchange(&code, &login.verifier).await {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(error = %crate::errors::error_chain(&error), "login code exchange failed");
                self.count_login("failed");
                return page(
                    StatusCode::BAD_GATEWAY,
                    "Login failed",
                    &paragraph(
                        "The identity provider did not confirm the login. Open your workspace again.",
                    ),
                );
            }
        };
        let identity = match self
            .auth
            .verify_id_token(&id_token, &self.settings.client_id, &login.nonce)
            .await
        {
            Ok(identity) => identity,
            Err(error) => {
                tracing::warn!(%error, "login ID token refused");
                self.count_login("failed");
                return page(
                    StatusCode::UNAUTHORIZED,
                    "Login failed",
                    &paragraph("The identity provider's answer could not be verified."),
                );
            }
        };
        let who = match principal(&identity, self.auth.admin_role()) {
            Ok(who) => who,
            Err(problem) => {
                tracing::warn!(user = %identity.user_id, problem, "login refused: unusable sub");
                self.count_login("refused");
                return page(
                    StatusCode::FORBIDDEN,
                    "Login refused",
                    &paragraph(
                        "Your account's id cannot own a workspace here; ask the platform's admins.",
                    ),
                );
            }
        };
        let Some((url, host)) = self.checked_rd(&login.rd) else {
            return bad_request("The address to return to is not a workspace of this platform.");
        };
        let exp = now() + self.settings.session_ttl.as_secs();
        let sealed = match seal.seal(&Login::new(who.clone(), exp)) {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::error!(%error, "failed to seal a login");
                return unavailable("The login could not be completed; try again.");
            }
        };
        tracing::info!(user = %who.uid, sub = %who.sub, "browser login");
        self.count_login("ok");
        let cookies = vec![
            set_cookie(LOGIN_COOKIE, sealed, self.settings.session_ttl),
            clear_cookie(&cookie_name),
        ];
        self.hand_off(seal, who, exp, &url, &host, login.hh, cookies)
    }

    fn count_login(&self, result: &str) {
        self.metrics
            .workspace_logins
            .with_label_values(&[result])
            .inc();
    }

    /// A redirect to `host`'s ticket path with a ticket for `who`, setting `cookies`.
    #[allow(clippy::too_many_arguments)]
    fn hand_off(
        &self,
        seal: &Seal,
        who: Principal,
        login_exp: u64,
        url: &Url,
        host: &WorkspaceHost,
        hh: String,
        cookies: Vec<String>,
    ) -> Response {
        let ticket = Ticket::new(
            who,
            host.name.clone(),
            url.to_string(),
            hh,
            login_exp,
            now() + TICKET_TTL.as_secs(),
        );
        let sealed = match seal.seal(&ticket) {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::error!(%error, "failed to seal a ticket");
                return unavailable("The login could not be completed; try again.");
            }
        };
        let mut target = url.clone();
        target.set_path(&format!("{AUTH_PATH}ticket"));
        target.set_query(None);
        target.set_fragment(None);
        target.query_pairs_mut().append_pair("t", &sealed);
        redirect(StatusCode::FOUND, target.as_str(), &cookies)
    }

    /// `GET /auth/logout`: a page with a button that logs out (a POST, so that no link or
    /// image on another site can log anyone out).
    pub fn logout_page(&self, headers: &HeaderMap) -> Response {
        let logged_in = self.seal.as_ref().is_some_and(|seal| {
            cookie_value(headers, LOGIN_COOKIE)
                .and_then(|v| seal.open::<Login>(&v))
                .is_some()
        });
        if !logged_in {
            return page(
                StatusCode::OK,
                "Logged out",
                &paragraph("You are logged out of the workspaces."),
            );
        }
        // NB: the logout goes on to the user's workspace host, then back here.
        let port = self
            .settings
            .public_url
            .as_ref()
            .and_then(Url::port)
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let workspaces = format!("https://*.{}{port}", self.settings.base_domain);
        page_with_forms(
            StatusCode::OK,
            "Log out",
            "<form method=\"post\" action=\"/auth/logout\"><p>Log out of the workspaces?</p>\
             <button id=\"logout\" type=\"submit\">Log out</button></form>",
            Some(&workspaces),
        )
    }

    /// `POST /auth/logout`: ends the login on the API host, then the session of the
    /// user's own workspace host (which comes back here, logged out). Refused unless the
    /// form was posted from the API host itself.
    pub fn logout(&self, headers: &HeaderMap) -> Response {
        let Some(public) = &self.settings.public_url else {
            return unavailable(
                "Browser login is not configured for this platform; ask its admins.",
            );
        };
        if !same_origin(headers, &origin(public)) {
            return page(
                StatusCode::FORBIDDEN,
                "Not logged out",
                &paragraph("Logging out works only from this site's own logout page."),
            );
        }
        let login = self.seal.as_ref().and_then(|seal| {
            cookie_value(headers, LOGIN_COOKIE).and_then(|v| seal.open::<Login>(&v))
        });
        let next = login
            .and_then(|login| self.own_workspace_name(&login.who))
            .map(|safe| {
                let host = crate::naming::host(&safe, &self.settings.base_domain);
                format!("{}{AUTH_PATH}logout", self.workspace_origin(&host))
            })
            .unwrap_or_else(|| format!("{}/auth/logout", origin(public)));
        redirect(StatusCode::SEE_OTHER, &next, &[clear_cookie(LOGIN_COOKIE)])
    }
}

impl Gate {
    /// The safe name of `who`'s own workspace: their recorded instance's (found by the
    /// owner key, as the API finds it, so a name kept from an earlier username or naming
    /// scheme is the one used), else the one their user id gives. From the cache only.
    fn own_workspace_name(&self, who: &Principal) -> Option<String> {
        let safe = crate::naming::safe_name(&who.uid).ok()?;
        let key = crate::naming::owner_key(Some(&who.sub), &safe);
        let recorded = self
            .reconciler
            .caches()
            .records_of_owner(&key)
            .first()
            .and_then(|pvc| crate::instance::record::safe_name(pvc).map(str::to_owned));
        Some(recorded.unwrap_or(safe))
    }
}

/// True when a form post comes from `origin` itself: its `Origin` header (sent by every
/// current browser on a POST), else `Sec-Fetch-Site: same-origin`.
fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(sent) => sent.eq_ignore_ascii_case(origin),
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site == "same-origin"),
    }
}

/// The cookie that holds the login under way with `state`.
fn state_cookie(state: &str) -> String {
    super::cookie_named(LOGIN_STATE_COOKIE, state)
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn bad_request(message: &str) -> Response {
    page(StatusCode::BAD_REQUEST, "Bad request", &paragraph(message))
}

fn unavailable(message: &str) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Login unavailable",
        &paragraph(message),
    )
}
