//! Envoy's HTTP external authorization filter (`envoy.filters.http.ext_authz` with an
//! `http_service`), configured as Istio configures it from a mesh config
//! `extensionProviders[].envoyExtAuthzHttp`.
//!
//! Sources (Envoy's `main` as of 2026, Istio's `master` as of 2026):
//! - Istio's translation: `pilot/pkg/security/authz/builder/extauthz.go`
//!   (`buildExtAuthzHTTP`, `generateHTTPConfig`, `generateHeaders`, `timeoutOrDefault`).
//! - The filter's API: `api/envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto`
//!   (<https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/ext_authz/v3/ext_authz.proto>).
//! - The check request: `source/extensions/filters/common/ext_authz/check_request_utils.cc`
//!   (`toRequestMatchers`, `setHttpRequest`) and `ext_authz_http_impl.cc`
//!   (`RawHttpClientImpl::check`, `toResponse`, `toClientMatchers`).
//! - What the filter does with the answer: `source/extensions/filters/http/ext_authz/ext_authz.cc`
//!   (`Filter::onComplete`, `Filter::encodeHeaders`).
//! - Headers Envoy's async HTTP client adds: `source/common/http/async_client_impl.cc`
//!   (`AsyncStreamImpl::sendHeaders`) and the router's `FilterUtility::finalTimeout`.

use std::{net::IpAddr, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::ExtAuthzHttp;

/// The header an HTTP authorization service lists request headers to drop in
/// (`Headers::get().EnvoyAuthHeadersToRemove`, `x-envoy-` + `auth-headers-to-remove`).
pub(crate) const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// A list of header name patterns as Istio writes them in a provider (exact, `prefix*`,
/// `*suffix`; a lone `*` is refused by `buildExtAuthzHTTP`), turned into Envoy string
/// matchers with `ignore_case: true` by `generateHeaders`.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderPatterns(Vec<NamePattern>);

#[derive(Debug, Clone)]
enum NamePattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl HeaderPatterns {
    /// Compiles a list; `Err` names the first lone `*` (Istio rejects the provider then).
    pub(crate) fn new(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|p| {
                let p = p.to_ascii_lowercase();
                if p == "*" {
                    Err(p)
                } else if let Some(suffix) = p.strip_prefix('*') {
                    Ok(NamePattern::Suffix(suffix.to_string()))
                } else if let Some(prefix) = p.strip_suffix('*') {
                    Ok(NamePattern::Prefix(prefix.to_string()))
                } else {
                    Ok(NamePattern::Exact(p))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a (lower-case) header name matches any pattern.
    pub(crate) fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| match p {
            NamePattern::Exact(e) => name.eq_ignore_ascii_case(e),
            NamePattern::Prefix(pre) => name.to_ascii_lowercase().starts_with(pre.as_str()),
            NamePattern::Suffix(suf) => name.to_ascii_lowercase().ends_with(suf.as_str()),
        })
    }
}

/// One provider, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    config: ExtAuthzHttp,
    request: HeaderPatterns,
    upstream: HeaderPatterns,
    client_on_success: HeaderPatterns,
    client_on_deny: HeaderPatterns,
    status_on_error: StatusCode,
}

/// What the filter decided.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `200 OK`: the request goes on, changed.
    Ok(Allowed),
    /// Any other status below 500: the client gets it, with the body.
    Denied {
        status: StatusCode,
        /// The authorization response's headers that pass `allowed_client_headers`.
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    },
    /// No answer, or a 5xx: `failure_mode_allow` decides.
    Error(CheckError),
}

/// The changes an allowing answer makes.
#[derive(Debug, Default)]
pub(crate) struct Allowed {
    /// Set on the upstream request, overriding (`allowed_upstream_headers`).
    pub(crate) headers_to_set: Vec<(HeaderName, HeaderValue)>,
    /// Removed from the upstream request (`x-envoy-auth-headers-to-remove`).
    pub(crate) headers_to_remove: Vec<HeaderName>,
    /// Added to the response to the client (`allowed_client_headers_on_success`).
    pub(crate) response_headers_to_add: Vec<(HeaderName, HeaderValue)>,
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    /// The check request could not be built (a path prefix that makes a bad URI).
    #[error("failed to build the check request")]
    Build(#[source] http::Error),
    /// The authorization service could not be reached.
    #[error("failed to connect to the authorization service")]
    Connect(#[source] std::io::Error),
    /// The HTTP exchange failed.
    #[error("the check request failed")]
    Http(#[source] hyper::Error),
    /// No answer within the provider's timeout.
    #[error("the authorization service did not answer within {0:?}")]
    Timeout(Duration),
    /// The service answered with a 5xx.
    #[error("the authorization service answered {0}")]
    Status(StatusCode),
}

impl Provider {
    /// Compiles a provider; `Err` says what Istio would refuse.
    pub(crate) fn new(config: &ExtAuthzHttp) -> Result<Self, String> {
        // Istio: "pathPrefix must begin with `/`" (buildExtAuthzHTTP).
        if !config.path_prefix.is_empty() && !config.path_prefix.starts_with('/') {
            return Err(format!(
                "pathPrefix must begin with `/`, found: {:?}",
                config.path_prefix
            ));
        }
        let compile = |field: &str, list: &[String]| {
            HeaderPatterns::new(list).map_err(|_| {
                format!("a single wildcard (\"*\") is not supported, change it to either prefix or suffix match: {field}")
            })
        };
        Ok(Self {
            request: compile(
                "IncludeRequestHeadersInCheck",
                &config.include_request_headers_in_check,
            )?,
            upstream: compile(
                "HeadersToUpstreamOnAllow",
                &config.headers_to_upstream_on_allow,
            )?,
            client_on_success: compile(
                "HeadersToDownstreamOnAllow",
                &config.headers_to_downstream_on_allow,
            )?,
            client_on_deny: compile(
                "HeadersToDownstreamOnDeny",
                &config.headers_to_downstream_on_deny,
            )?,
            status_on_error: error_code(config.status_on_error),
            config: config.clone(),
        })
    }

    pub(crate) fn fail_open(&self) -> bool {
        self.config.fail_open
    }

    pub(crate) fn status_on_error(&self) -> StatusCode {
        self.status_on_error
    }

    /// Sends the check request for a client request and interprets the answer.
    ///
    /// `headers` are the request's headers after the connection manager's edge changes
    /// (`x-forwarded-for`, `x-forwarded-proto`, `x-request-id`, ...), as the filter sees them;
    /// `local_ip` is the gateway's own address, which Envoy's async client appends to
    /// `x-forwarded-for`.
    pub(crate) async fn check(
        &self,
        method: &Method,
        path: &str,
        authority: &str,
        headers: &HeaderMap,
        local_ip: IpAddr,
    ) -> Outcome {
        let request = match self.check_request(method, path, authority, headers, local_ip) {
            Ok(r) => r,
            Err(e) => return Outcome::Error(CheckError::Build(e)),
        };
        // The whole exchange is bounded by `server_uri.timeout` (Istio: `timeout`, default
        // 600 s): a timeout resets the request, which the filter treats as an error
        // (ext_authz_http_impl.cc `onFailure` -> `errorResponse()`).
        let timeout = self.config.timeout;
        let exchange = send(self.config.service, request);
        let answer = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Outcome::Error(e),
            Err(_) => return Outcome::Error(CheckError::Timeout(timeout)),
        };
        self.to_outcome(answer)
    }

    /// Builds the check request as `RawHttpClientImpl::check` does.
    fn check_request(
        &self,
        method: &Method,
        path: &str,
        authority: &str,
        headers: &HeaderMap,
        local_ip: IpAddr,
    ) -> Result<Request<Empty<Bytes>>, http::Error> {
        // The method and `:path` of the client request; `path_prefix` is prepended to the
        // path, query included (ext_authz_http_impl.cc `check`: `absl::StrCat(pathPrefix(),
        // header.second)` for `:path`).
        let uri = format!("{}{}", self.config.path_prefix, path);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Empty::new())?;
        let mut check = HeaderMap::new();
        // `Content-Length: 0` and no body without `with_request_body` (`lengthZeroHeader()`;
        // the client's own content-length is skipped).
        check.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        // `:authority` is always allowed (check_request_utils.cc `toRequestMatchers` with
        // add_http_headers: Authorization, :method, :path, :authority).
        if let Ok(v) = HeaderValue::from_str(authority) {
            check.insert(header::HOST, v);
        }
        // The other headers: `Authorization` always (the same list), and those matching
        // `allowed_headers` (Istio: `includeRequestHeadersInCheck`). Duplicates are merged
        // with "," (`setHttpRequest`: "Merge duplicate headers").
        for name in headers.keys() {
            let n = name.as_str();
            if n == "host"
                || n == "content-length"
                || n == "x-envoy-auth-partial-body"
                || !(name == header::AUTHORIZATION || self.request.matches(n))
            {
                continue;
            }
            let joined = join_values(headers, name);
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                check.insert(name.clone(), v);
            }
        }
        // Envoy's async client marks the request internal and appends its own address to
        // `x-forwarded-for` (async_client_impl.cc `sendHeaders`: `send_internal`, `send_xff`,
        // both on by default); the router writes the expected timeout
        // (`x-envoy-expected-rq-timeout-ms`, async client routers do not suppress Envoy
        // headers).
        check.insert(
            HeaderName::from_static("x-envoy-internal"),
            HeaderValue::from_static("true"),
        );
        append_xff(&mut check, local_ip);
        let ms = self.config.timeout.as_millis();
        if ms > 0 {
            check.insert(
                HeaderName::from_static("x-envoy-expected-rq-timeout-ms"),
                HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX)),
            );
        }
        *request.headers_mut() = check;
        Ok(request)
    }

    /// `RawHttpClientImpl::toResponse`.
    fn to_outcome(&self, answer: Answer) -> Outcome {
        let Answer {
            status,
            mut headers,
            body,
        } = answer;
        // "Set an error status if the call to the authorization server returns any of the
        // 5xx HTTP error codes."
        if status.is_server_error() {
            return Outcome::Error(CheckError::Status(status));
        }
        // Only `200 OK` allows (`status_code == enumToInt(Http::Code::OK)`); 201, 204, 3xx
        // and 4xx are all denials, with the service's status passed on.
        let ok = status == StatusCode::OK;
        let mut headers_to_remove = Vec::new();
        if ok {
            // Each value is a comma-separated list, trimmed, empty names dropped.
            for value in headers.get_all(HEADERS_TO_REMOVE) {
                let Ok(value) = value.to_str() else { continue };
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if let Ok(n) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                        headers_to_remove.push(n);
                    }
                }
            }
        }
        // "remove the storage header from the authz server response headers before we reuse
        // them": it never reaches the upstream or the client.
        headers.remove(HEADERS_TO_REMOVE);
        if ok {
            let mut allowed = Allowed {
                headers_to_remove,
                ..Allowed::default()
            };
            for (name, value) in &headers {
                if self.upstream.matches(name.as_str()) {
                    allowed.headers_to_set.push((name.clone(), value.clone()));
                }
                if self.client_on_success.matches(name.as_str()) {
                    allowed
                        .response_headers_to_add
                        .push((name.clone(), value.clone()));
                }
            }
            return Outcome::Ok(allowed);
        }
        let passed = headers
            .iter()
            .filter(|(name, _)| self.client_header_on_deny(name))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        Outcome::Denied {
            status,
            headers: passed,
            body,
        }
    }

    /// `toClientMatchers`: with no list every header but Host goes to the client; with a list,
    /// the list plus `:status`, `Content-Length`, `WWW-Authenticate` and `Location`.
    fn client_header_on_deny(&self, name: &HeaderName) -> bool {
        if self.client_on_deny.is_empty() {
            return *name != header::HOST;
        }
        *name == header::CONTENT_LENGTH
            || *name == header::WWW_AUTHENTICATE
            || *name == header::LOCATION
            || self.client_on_deny.matches(name.as_str())
    }
}

/// Envoy's `FilterConfig::toErrorCode`: a `status_on_error` outside 100..=511 (Istio leaves
/// it unset, 0, when `statusOnError` is empty) is `403 Forbidden`.
fn error_code(status: u16) -> StatusCode {
    match status {
        100..=511 => StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
        _ => StatusCode::FORBIDDEN,
    }
}

/// An authorization service's answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn send(
    service: std::net::SocketAddr,
    request: Request<Empty<Bytes>>,
) -> Result<Answer, CheckError> {
    let stream = tokio::net::TcpStream::connect(service)
        .await
        .map_err(CheckError::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(CheckError::Http)?;
    // The connection task ends with the exchange (or with this future, on timeout, when
    // the sender is dropped and the connection closes).
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await;
    let result = match response {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            body.collect()
                .await
                .map(|b| Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body: b.to_bytes(),
                })
                .map_err(CheckError::Http)
        }
        Err(e) => Err(CheckError::Http(e)),
    };
    drop(sender);
    driver.abort();
    result
}

/// All values of a header joined with "," (how a `CheckRequest` carries duplicates).
fn join_values(headers: &HeaderMap, name: &HeaderName) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, v) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Envoy's `Utility::appendXff`: the address appended to an existing `x-forwarded-for`
/// with "," (no space), or set when there is none; several headers are one list.
pub(crate) fn append_xff(headers: &mut HeaderMap, ip: IpAddr) {
    let mut value = join_values(headers, &header::HeaderName::from_static("x-forwarded-for"));
    if !value.is_empty() {
        value.push(b',');
    }
    value.extend_from_slice(ip.to_string().as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(f: impl FnOnce(&mut ExtAuthzHttp)) -> Provider {
        let mut c = ExtAuthzHttp::new(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
        f(&mut c);
        Provider::new(&c).unwrap()
    }

    fn answer(status: u16, headers: &[(&str, &str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from_static(b"body"),
        }
    }

    #[test]
    fn the_check_carries_authorization_and_listed_headers_only() {
        let p = provider(|c| {
            c.path_prefix = "/check".into();
            c.include_request_headers_in_check = vec!["Cookie".into(), "x-forwarded-*".into()];
        });
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("user-agent", HeaderValue::from_static("ua"));
        h.insert("content-length", HeaderValue::from_static("12"));
        h.insert("host", HeaderValue::from_static("ignored"));
        let r = p
            .check_request(
                &Method::POST,
                "/a/b?c=d",
                "code-a.test:8443",
                &h,
                IpAddr::from([127, 0, 0, 2]),
            )
            .unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri(), "/check/a/b?c=d");
        let g = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(g("host").as_deref(), Some("code-a.test:8443"));
        assert_eq!(g("content-length").as_deref(), Some("0"));
        assert_eq!(g("authorization").as_deref(), Some("Bearer t"));
        assert_eq!(g("cookie").as_deref(), Some("a=1,b=2"));
        assert_eq!(g("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(g("x-forwarded-for").as_deref(), Some("10.0.0.1,127.0.0.2"));
        assert_eq!(g("x-envoy-internal").as_deref(), Some("true"));
        assert_eq!(
            g("x-envoy-expected-rq-timeout-ms").as_deref(),
            Some("600000")
        );
        assert_eq!(g("user-agent"), None);
    }

    #[test]
    fn only_200_allows_and_5xx_is_an_error() {
        let p = provider(|c| {
            c.headers_to_upstream_on_allow = vec!["x-auth-*".into()];
            c.headers_to_downstream_on_allow = vec!["set-cookie".into()];
        });
        match p.to_outcome(answer(
            200,
            &[
                ("x-auth-user", "alice"),
                ("x-envoy-auth-headers-to-remove", " Cookie , ,x-a"),
                ("x-envoy-auth-headers-to-remove", "x-b"),
                ("set-cookie", "s=1"),
                ("set-cookie", "t=2"),
                ("x-other", "no"),
            ],
        )) {
            Outcome::Ok(a) => {
                assert_eq!(a.headers_to_set.len(), 1);
                assert_eq!(a.headers_to_set[0].0, "x-auth-user");
                let removed: Vec<_> = a.headers_to_remove.iter().map(|n| n.as_str()).collect();
                assert_eq!(removed, ["cookie", "x-a", "x-b"]);
                assert_eq!(a.response_headers_to_add.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.to_outcome(answer(201, &[])),
            Outcome::Denied { status, .. } if status == StatusCode::CREATED
        ));
        assert!(matches!(
            p.to_outcome(answer(503, &[])),
            Outcome::Error(CheckError::Status(_))
        ));
    }

    #[test]
    fn denied_headers_follow_allowed_client_headers() {
        let all = provider(|_| {});
        let Outcome::Denied { headers, .. } =
            all.to_outcome(answer(302, &[("location", "/x"), ("x-any", "1")]))
        else {
            panic!()
        };
        assert_eq!(headers.len(), 2);
        let listed = provider(|c| c.headers_to_downstream_on_deny = vec!["set-cookie".into()]);
        let Outcome::Denied { headers, .. } = listed.to_outcome(answer(
            401,
            &[
                ("location", "/x"),
                ("www-authenticate", "Bearer"),
                ("set-cookie", "a=1"),
                ("x-any", "1"),
                ("content-type", "text/html"),
            ],
        )) else {
            panic!()
        };
        let names: Vec<_> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["location", "www-authenticate", "set-cookie"]);
    }

    #[test]
    fn status_on_error_defaults_to_403_and_a_lone_wildcard_is_refused() {
        assert_eq!(error_code(0), StatusCode::FORBIDDEN);
        assert_eq!(error_code(600), StatusCode::FORBIDDEN);
        assert_eq!(error_code(401), StatusCode::UNAUTHORIZED);
        let mut c = ExtAuthzHttp::new(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
        c.headers_to_upstream_on_allow = vec!["*".into()];
        assert!(Provider::new(&c).is_err());
        c.headers_to_upstream_on_allow = vec![];
        c.path_prefix = "check".into();
        assert!(Provider::new(&c).is_err());
    }
}
