//! What Envoy's HTTP connection manager does to every request and response at the edge, as
//! an Istio ingress gateway configures it: `use_remote_address: true`,
//! `xff_num_trusted_hops: 0` (`gatewayTopology.numTrustedProxies` unset),
//! `forward_client_cert_details: SANITIZE_SET`, request ids generated, no internal address
//! ranges (Envoy >= 1.33 without `ENABLE_HCM_INTERNAL_NETWORKS`), path normalization
//! `BASE`, `server_name: istio-envoy` with `OVERWRITE`
//! (`pilot/pkg/networking/core/gateway.go` `buildGatewayConnectionManager`,
//! `pilot/pkg/networking/util/proxy_headers.go`, `listener_builder.go`).
//!
//! Envoy: `source/common/http/conn_manager_utility.cc` (`mutateRequestHeaders`,
//! `cleanInternalHeaders`, `mutateResponseHeaders`) and `source/common/http/utility.cc`
//! (`sendLocalReply`).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};

/// The body type of every response the gateway writes.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// Istio's gateway `server` header (`EnvoyServerName`), written over the upstream's.
pub(crate) const SERVER_NAME: &str = "istio-envoy";

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// Headers Envoy removes from requests it did not mark internal (`cleanInternalHeaders`;
/// the first three only for edge requests, which every request here is).
const INTERNAL_ONLY: &[&str] = &[
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Whether a request asks for a protocol upgrade (`Utility::isUpgrade`: a `Connection`
/// naming `upgrade` and an `Upgrade` header).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// `mutateRequestHeaders` for an edge request over TLS.
pub(crate) fn mutate_request_headers(headers: &mut HeaderMap, conn: Conn, upgrade: bool) {
    // Upgrade requests keep Connection and Upgrade, which go to the upstream verbatim.
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    // "Clean proxy headers."
    headers.remove("x-envoy-internal");
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    headers.remove(header::TRANSFER_ENCODING);
    // A Referer that is not one absolute URL is dropped.
    let referers: Vec<_> = headers.get_all(header::REFERER).iter().collect();
    if !referers.is_empty() {
        let valid = referers.len() == 1
            && referers[0]
                .to_str()
                .ok()
                .and_then(|r| url::Url::parse(r).ok())
                .is_some_and(|u| u.has_host());
        if !valid {
            headers.remove(header::REFERER);
        }
    }
    // `use_remote_address`: the peer is appended to x-forwarded-for, except that for a
    // loopback peer Envoy appends its own local address.
    let remote = conn.peer.ip();
    let appended = if remote.is_loopback() {
        conn.local.ip()
    } else {
        remote
    };
    super::ext_authz::append_xff(headers, appended);
    // No trusted hops: x-forwarded-proto is overwritten with the downstream's scheme.
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    // No address is internal, so every request is an edge request.
    for name in INTERNAL_ONLY {
        headers.remove(*name);
    }
    headers.insert(
        HeaderName::from_static("x-envoy-external-address"),
        ip_value(remote),
    );
    // "Generate x-request-id for all edge requests" (no `preserve_external_request_id`).
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert(HeaderName::from_static("x-request-id"), v);
    }
    // SANITIZE_SET without a client certificate: the client's XFCC is dropped.
    headers.remove("x-forwarded-client-cert");
}

fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// Istio's default path normalization (`BASE`, Envoy's `normalize_path: true`): RFC 3986
/// dot-segment removal on the path, the query untouched. (Envoy's canonicalizer also
/// normalizes percent-encodings; that part is not modelled.)
pub(crate) fn normalize_path(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut normalized = format!("/{}", out.join("/"));
    if trailing_slash && !normalized.ends_with('/') {
        normalized.push('/');
    }
    match query {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized,
    }
}

/// `mutateResponseHeaders` and the connection manager's encoder: hop-by-hop headers go
/// (Connection and Upgrade stay on an upgrade answer), `server` is overwritten, and the
/// `date` is the gateway's (hyper writes it when the response has none).
pub(crate) fn mutate_response_headers(headers: &mut HeaderMap, upgrade: bool) {
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    headers.remove(header::DATE);
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER_NAME));
}

/// A response Envoy makes itself (`sendLocalReply`): the headers `modify` names replace any
/// of the same name (each value kept, e.g. several `set-cookie`), a non-empty body gets its
/// length and `text/plain` unless a content type was set, an empty body has neither.
pub(crate) fn local_reply(
    status: StatusCode,
    body: Bytes,
    modify: Vec<(HeaderName, HeaderValue)>,
) -> Response<Body> {
    let mut headers = HeaderMap::new();
    for (name, _) in &modify {
        headers.remove(name);
    }
    for (name, value) in modify {
        headers.append(name, value);
    }
    // hyper writes the length of the body it is given.
    headers.remove(header::CONTENT_LENGTH);
    if body.is_empty() {
        headers.remove(header::CONTENT_TYPE);
    } else if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    mutate_response_headers(&mut headers, false);
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A whole body, as the gateway's body type.
pub(crate) fn full(body: Bytes) -> Body {
    Full::new(body).map_err(|never| match never {}).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(normalize_path("/a/b/../c"), "/a/c");
        assert_eq!(normalize_path("/a/./b/."), "/a/b/");
        assert_eq!(normalize_path("/../../x?y=/../z"), "/x?y=/../z");
        assert_eq!(normalize_path("/a/.."), "/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/a//b"), "/a//b");
    }

    #[test]
    fn edge_headers_are_set_and_internal_ones_dropped() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        h.insert("x-envoy-retry-on", HeaderValue::from_static("5xx"));
        h.insert("x-envoy-internal", HeaderValue::from_static("true"));
        h.insert("x-request-id", HeaderValue::from_static("client-chosen"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("referer", HeaderValue::from_static("/relative"));
        let conn = Conn {
            peer: SocketAddr::from(([10, 1, 2, 3], 5555)),
            local: SocketAddr::from(([127, 0, 0, 1], 443)),
        };
        mutate_request_headers(&mut h, conn, false);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4,10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-envoy-external-address"], "10.1.2.3");
        assert_ne!(h["x-request-id"], "client-chosen");
        for gone in [
            "x-envoy-retry-on",
            "x-envoy-internal",
            "connection",
            "referer",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
    }
}
