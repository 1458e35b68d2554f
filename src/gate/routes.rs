//! The gatekeeper's routes: the check listener (EXT_AUTHZ_PORT, reached only by the
//! ingress gateway) and the login routes on the API's port.

use std::sync::Arc;

use http::{HeaderMap, Method, header};
use warp::{Filter, Rejection, filters::path::FullPath, reply::Response};

use super::{
    CheckRequest, Gate,
    login::{CallbackQuery, LoginQuery},
    pages::not_yours,
};

/// The path prefix of check requests (the provider's `pathPrefix`): the gateway asks
/// `<prefix><original path>`.
pub const EXT_AUTHZ_PREFIX: &str = "/ext-authz";

/// The request headers the check reads (the provider's `includeRequestHeadersInCheck`).
pub const CHECK_HEADERS: [&str; 3] = ["cookie", "authorization", "accept"];
/// The headers an allowing answer sets on the request to code-server
/// (`headersToUpstreamOnAllow`): the browser's cookies less the session's.
pub const UPSTREAM_ON_ALLOW: [&str; 1] = ["cookie"];
/// The headers of an allowing answer added to the response (`headersToDownstreamOnAllow`).
pub const DOWNSTREAM_ON_ALLOW: [&str; 1] = ["set-cookie"];
/// The headers of a denying answer sent to the browser (`headersToDownstreamOnDeny`):
/// the login's redirects and cookies, and the pages' type and caching.
pub const DOWNSTREAM_ON_DENY: [&str; 5] = [
    "set-cookie",
    "location",
    "content-type",
    "cache-control",
    "www-authenticate",
];

/// The check listener: every method and path; the original path follows
/// [`EXT_AUTHZ_PREFIX`]. Anything else is refused (403), never allowed.
pub fn check_routes(
    gate: Arc<Gate>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // NB: every part below is infallible; serving wants the filter to reject with a
    // `Rejection`, which it never does.
    warp::any()
        .and_then(|| async { Ok::<(), Rejection>(()) })
        .untuple_one()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::any().map(move || gate.clone()))
        .then(
            |method: Method, path: FullPath, query: String, headers: HeaderMap, gate: Arc<Gate>| async move {
                let Some(original) = path.as_str().strip_prefix(EXT_AUTHZ_PREFIX) else {
                    return not_yours();
                };
                let original = match (original.is_empty(), query.is_empty()) {
                    (true, true) => "/".to_owned(),
                    (true, false) => format!("/?{query}"),
                    (false, true) => original.to_owned(),
                    (false, false) => format!("{original}?{query}"),
                };
                // NB: HTTP/1.1 carries the authority in Host; warp also sees it there when
                // the gateway speaks HTTP/2 (hyper maps :authority to the URI, not Host).
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                gate.check(CheckRequest {
                    method: &method,
                    host: &host,
                    path: &original,
                    headers: &headers,
                })
                .await
            },
        )
}

/// `/auth/login`, `/auth/callback` and `/auth/logout` on the API's port.
pub fn login_routes(
    gate: Arc<Gate>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_gate = warp::any().map(move || gate.clone());
    let login = warp::path!("auth" / "login")
        .and(warp::get())
        .and(query::<LoginQuery>())
        .and(warp::header::headers_cloned())
        .and(with_gate.clone())
        .then(|query, headers: HeaderMap, gate: Arc<Gate>| async move {
            gate.login(query, &headers).await
        });
    let callback = warp::path!("auth" / "callback")
        .and(warp::get())
        .and(query::<CallbackQuery>())
        .and(warp::header::headers_cloned())
        .and(with_gate.clone())
        .then(|query, headers: HeaderMap, gate: Arc<Gate>| async move {
            gate.callback(query, &headers).await
        });
    let logout_page = warp::path!("auth" / "logout")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(with_gate.clone())
        .map(|headers: HeaderMap, gate: Arc<Gate>| gate.logout_page(&headers));
    let logout = warp::path!("auth" / "logout")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(with_gate)
        .map(|headers: HeaderMap, gate: Arc<Gate>| gate.logout(&headers));
    login
        .or(callback)
        .unify()
        .or(logout_page)
        .unify()
        .or(logout)
        .unify()
}

/// The query string as `T`; a query that does not parse is read as empty, so that the
/// handler answers it with its own message rather than a bare rejection.
fn query<T>() -> impl Filter<Extract = (T,), Error = std::convert::Infallible> + Clone
where
    T: serde::de::DeserializeOwned + Default + Send + 'static,
{
    warp::query::<T>().or(warp::any().map(T::default)).unify()
}
