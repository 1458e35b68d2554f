//! The check: Envoy's HTTP external authorization answered for one request to a
//! workspace host.
//!
//! Envoy sends the check with the original request's method, the original path after the
//! provider's `pathPrefix`, the original Host, and the headers listed in the provider's
//! `includeRequestHeadersInCheck` (here `cookie`, `authorization`, `accept`). A 2xx answer
//! lets the request through; the answer's headers named in `headersToUpstreamOnAllow`
//! replace the request's, and those listed in its `x-envoy-auth-headers-to-remove` are
//! removed from it. Any other status is sent to the browser as it is, with the headers
//! named in `headersToDownstreamOnDeny`.
//! <https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/ext_authz/v3/ext_authz.proto>
//! <https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#MeshConfig-ExtensionProvider-EnvoyExternalAuthorizationHttpProvider>

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::{Reply, reply::Response};

use super::{
    Gate, HANDOFF_COOKIE, HANDOFF_TTL, Principal, Ticket, WORKSPACE_COOKIE, WorkspaceHost,
    WorkspaceSession, hash, now, origin,
    pages::{self, json_error, not_yours, page, paragraph, redirect},
    random_secret, same,
    session::{clear_cookie, cookie_value, cookies, set_cookie},
    sub_problem, workspace_host,
};
use crate::{auth::Identity, naming, reconcile::WorkspaceAccess};

/// The reserved path on every workspace host: `ticket` (the hand-off) and `logout`.
pub const AUTH_PATH: &str = "/__codeserver_auth/";

/// The header that tells Envoy which request headers to remove before the request goes
/// upstream (`x-envoy-auth-headers-to-remove`, honoured on an OK answer of an HTTP
/// authorization service).
const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// One check request, as the gateway sent it.
pub struct CheckRequest<'a> {
    /// The original method.
    pub method: &'a Method,
    /// The original Host (`:authority`).
    pub host: &'a str,
    /// The original path and query (the check path after the prefix).
    pub path: &'a str,
    /// The headers the gateway included.
    pub headers: &'a HeaderMap,
}

/// Why a check refuses: answered by [`Refusal::response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Another user's workspace, or none: the one 403 page for both.
    NotYours,
    /// The caches have not synced yet: 503.
    Starting,
    /// A bearer token that does not verify: 401.
    BadToken,
}

impl Refusal {
    /// The `decision` label of `codeserver_workspace_checks_total`.
    fn decision(self) -> &'static str {
        match self {
            Self::NotYours => "forbidden",
            Self::Starting => "unavailable",
            Self::BadToken => "unauthenticated",
        }
    }

    fn response(self) -> Response {
        match self {
            Self::NotYours => not_yours(),
            Self::Starting => unavailable("The service is starting; try again in a moment."),
            Self::BadToken => json_error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the bearer token is not valid",
            ),
        }
    }
}

/// Who a check found, and how.
enum Found {
    /// A workspace session cookie of this host.
    Cookie(Principal),
    /// A bearer token, verified as the API verifies it.
    Bearer(Principal),
}

impl Gate {
    /// Answers one check request, counted in `codeserver_workspace_checks_total`.
    pub async fn check(&self, request: CheckRequest<'_>) -> Response {
        let (decision, answer) = self.decide_request(request).await;
        self.metrics
            .workspace_checks
            .with_label_values(&[decision])
            .inc();
        answer
    }

    /// The answer to one check request, and the decision it stands for.
    async fn decide_request(&self, request: CheckRequest<'_>) -> (&'static str, Response) {
        let Some(host) = workspace_host(request.host, &self.settings.base_domain) else {
            return ("forbidden", not_yours());
        };
        if let Some(action) = request.path.strip_prefix(AUTH_PATH) {
            return ("handoff", self.reserved(&host, action, request.headers));
        }
        let found = match self.identify(&host, request.headers).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                let answer = self.unauthenticated(&host, &request);
                let decision = match answer.status() {
                    StatusCode::FOUND => "login",
                    StatusCode::UNAUTHORIZED => "unauthenticated",
                    _ => "unavailable",
                };
                return (decision, answer);
            }
            Err(refusal) => return (refusal.decision(), refusal.response()),
        };
        let (who, bearer) = match found {
            Found::Cookie(who) => (who, false),
            Found::Bearer(who) => (who, true),
        };
        match self.decide(&host, &who, bearer) {
            Ok(()) => ("allowed", allow(request.headers)),
            Err(refusal) => (refusal.decision(), refusal.response()),
        }
    }

    /// Who the request names: a bearer token when it carries one (verified; a bad token
    /// is refused, never passed over for a cookie), else this host's session cookie.
    async fn identify(
        &self,
        host: &WorkspaceHost,
        headers: &HeaderMap,
    ) -> Result<Option<Found>, Refusal> {
        if headers.contains_key(header::AUTHORIZATION) {
            let identity = self
                .auth
                .authenticate_bearer(headers)
                .await
                .map_err(|error| {
                    tracing::info!(host = %host.name, %error, "workspace check refused a token");
                    Refusal::BadToken
                })?;
            return principal(&identity, self.auth.admin_role())
                .map(|who| Some(Found::Bearer(who)))
                .map_err(|problem| {
                    tracing::info!(host = %host.name, problem, "workspace check refused a token's sub");
                    Refusal::NotYours
                });
        }
        let Some(seal) = &self.seal else {
            return Ok(None);
        };
        Ok(cookie_value(headers, WORKSPACE_COOKIE)
            .and_then(|value| seal.open::<WorkspaceSession>(&value))
            .filter(|session| session.host == host.name)
            .map(|session| Found::Cookie(session.who)))
    }

    /// Whether `who` may open `host`'s workspace, from the caches.
    fn decide(&self, host: &WorkspaceHost, who: &Principal, bearer: bool) -> Result<(), Refusal> {
        let id = naming::instance_id(&host.safe);
        match self.reconciler.workspace_access(&id, &who.uid, &who.sub) {
            WorkspaceAccess::Owner => Ok(()),
            WorkspaceAccess::NotSynced => Err(Refusal::Starting),
            WorkspaceAccess::Missing => Err(Refusal::NotYours),
            WorkspaceAccess::Other(owner) if who.adm && self.settings.admin_access => {
                tracing::warn!(admin = %who.uid, admin_sub = %who.sub, instance = %id, %owner, how = if bearer { "bearer token" } else { "browser session" }, "admin opened another user's workspace");
                Ok(())
            }
            WorkspaceAccess::Other(_) => Err(Refusal::NotYours),
        }
    }

    /// No identity: a browser navigation goes to the login (with a fresh hand-off secret
    /// for this host); anything else gets 401.
    fn unauthenticated(&self, host: &WorkspaceHost, request: &CheckRequest<'_>) -> Response {
        let navigation = matches!(*request.method, Method::GET | Method::HEAD)
            && request
                .headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.to_ascii_lowercase().contains("text/html"));
        if !navigation {
            let mut response = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "log in with a browser, or send Authorization: Bearer <token>",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"workspaces\""),
            );
            return response;
        }
        let Some((_, _, public)) = self.login_parts() else {
            return unavailable(
                "Browser login is not configured for this platform; ask its admins.",
            );
        };
        let secret = random_secret();
        let hh = hash(&secret);
        let rd = format!("{}{}", self.workspace_origin(&host.name), request.path);
        let mut login = public
            .join("/auth/login")
            .unwrap_or_else(|_| public.clone());
        login
            .query_pairs_mut()
            .append_pair("rd", &rd)
            .append_pair("h", &hh);
        // NB: one cookie per login under way, named by its hash, so that logins started
        // in two tabs at once both finish.
        redirect(
            StatusCode::FOUND,
            login.as_str(),
            &[set_cookie(&handoff_cookie(&hh), secret, HANDOFF_TTL)],
        )
    }

    /// The reserved paths of a workspace host: the ticket hand-off and the logout.
    fn reserved(&self, host: &WorkspaceHost, action: &str, headers: &HeaderMap) -> Response {
        let (action, query) = action.split_once('?').unwrap_or((action, ""));
        match action {
            "ticket" => self.exchange(host, query, headers),
            "logout" => {
                let next = match &self.settings.public_url {
                    Some(public) => format!("{}/auth/logout", origin(public)),
                    None => format!("{}/", self.workspace_origin(&host.name)),
                };
                redirect(StatusCode::FOUND, &next, &[clear_cookie(WORKSPACE_COOKIE)])
            }
            _ => pages::page(
                StatusCode::NOT_FOUND,
                "Not found",
                &paragraph("This address is reserved for logging in to the workspace."),
            ),
        }
    }

    /// `ticket?t=…`: checks the ticket (signed, unexpired, for this host, bound to this
    /// browser's hand-off secret), then sets the host's session cookie and goes on to the
    /// page the login started from.
    fn exchange(&self, host: &WorkspaceHost, query: &str, headers: &HeaderMap) -> Response {
        let Some(seal) = &self.seal else {
            return unavailable(
                "Browser login is not configured for this platform; ask its admins.",
            );
        };
        let ticket = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "t")
            .and_then(|(_, t)| seal.open::<Ticket>(&t));
        let spent = ticket
            .as_ref()
            .map(|ticket| clear_cookie(&handoff_cookie(&ticket.hh)));
        let valid = ticket.filter(|ticket| {
            ticket.host == host.name
                && cookie_value(headers, &handoff_cookie(&ticket.hh))
                    .is_some_and(|secret| same(&hash(&secret), &ticket.hh))
        });
        let Some(ticket) = valid else {
            let again = format!("{}/", self.workspace_origin(&host.name));
            let mut response = page(
                StatusCode::FORBIDDEN,
                "Login link not valid",
                &format!(
                    "{}<p><a id=\"again\" href=\"{}\">Open the workspace again</a></p>",
                    paragraph(
                        "This login link has expired, was already used, or was started in another browser or for another workspace."
                    ),
                    pages::escape(&again)
                ),
            );
            pages::add_cookies(&mut response, spent.as_slice());
            return response;
        };
        if let Err(refusal) = self.decide(host, &ticket.who, false) {
            let mut response = refusal.response();
            pages::add_cookies(&mut response, spent.as_slice());
            return response;
        }
        let now = now();
        let exp = ticket
            .login_exp
            .min(now.saturating_add(self.settings.workspace_ttl.as_secs()));
        let session = WorkspaceSession::new(ticket.who, host.name.clone(), exp);
        let value = match seal.seal(&session) {
            Ok(value) => value,
            Err(error) => {
                tracing::error!(%error, "failed to seal a workspace session");
                return unavailable("The login could not be completed; try again.");
            }
        };
        let ttl = std::time::Duration::from_secs(exp.saturating_sub(now));
        // NB: the ticket's `rd` was checked at the login to be on this host; only its path
        // is used, so the redirect cannot leave the host whatever it says.
        let path = url::Url::parse(&ticket.rd)
            .ok()
            .map(|rd| match rd.query() {
                Some(q) => format!("{}?{q}", rd.path()),
                None => rd.path().to_owned(),
            })
            .unwrap_or_else(|| "/".to_owned());
        redirect(
            StatusCode::FOUND,
            &format!("{}{}", self.workspace_origin(&host.name), path),
            &[
                set_cookie(WORKSPACE_COOKIE, value, ttl),
                clear_cookie(&handoff_cookie(&ticket.hh)),
            ],
        )
    }
}

/// The principal of a verified identity; refused without a usable `sub`.
pub(super) fn principal(identity: &Identity, admin_role: &str) -> Result<Principal, &'static str> {
    let sub = identity.sub.as_deref().ok_or("the token has no sub")?;
    if let Some(problem) = sub_problem(sub) {
        return Err(problem);
    }
    Ok(Principal {
        sub: sub.to_owned(),
        uid: identity.user_id.clone(),
        adm: identity.is_admin(admin_role),
    })
}

/// 200: the request goes on to code-server without the session cookie and without the
/// Authorization header. The cookies the browser holds for code-server itself are
/// passed on (`cookie` is in `headersToUpstreamOnAllow`); when there are none, `cookie`
/// is removed with `authorization`.
fn allow(headers: &HeaderMap) -> Response {
    let others: Vec<String> = cookies(headers)
        .into_iter()
        .filter(|(name, _)| name != WORKSPACE_COOKIE && !name.starts_with(HANDOFF_COOKIE))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let mut response = warp::reply::with_status(warp::reply(), StatusCode::OK).into_response();
    let out = response.headers_mut();
    match HeaderValue::from_str(&others.join("; ")) {
        Ok(value) if !others.is_empty() => {
            out.insert(header::COOKIE, value);
            out.insert(HEADERS_TO_REMOVE, HeaderValue::from_static("authorization"));
        }
        _ => {
            out.insert(
                HEADERS_TO_REMOVE,
                HeaderValue::from_static("authorization,cookie"),
            );
        }
    }
    response
}

/// The hand-off cookie of the login whose secret hashes to `hh`.
fn handoff_cookie(hh: &str) -> String {
    super::cookie_named(&format!("{HANDOFF_COOKIE}-"), hh)
}

/// 503 with a page: the check cannot decide now. Never 2xx.
fn unavailable(message: &str) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Workspace unavailable",
        &paragraph(message),
    )
}
