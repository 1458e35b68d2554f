//! One request through the gateway: the connection manager's edge changes, the CUSTOM
//! policy's ext_authz check, the route, and the upstream exchange (WebSocket upgrades
//! included), in Envoy's filter order (ext_authz runs before the router, so a checked host
//! with no route is checked first and then answered `404`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use super::{
    GatewayConfig, GatewayError,
    edge::{self, Body, Conn},
    ext_authz::{Outcome, Provider},
    hosts::{PolicyHosts, RouteTable},
};

/// Envoy's local reply when the upstream cannot be reached (`UF`, 503).
const UPSTREAM_CONNECT_ERROR: &str = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";
/// Envoy's local reply when the upstream resets before answering (`UC`, 503).
const UPSTREAM_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

/// The CUSTOM policy, compiled.
#[derive(Debug)]
struct Policy {
    hosts: PolicyHosts,
    provider: Provider,
}

/// Everything a request needs, shared by the connections.
#[derive(Debug)]
pub(crate) struct State {
    routes: RouteTable,
    policy: Option<Policy>,
    pub(crate) checks: Arc<AtomicUsize>,
}

impl State {
    pub(crate) fn new(config: &GatewayConfig) -> Result<Self, GatewayError> {
        let policy = match &config.custom_policy {
            Some(p) => Some(Policy {
                hosts: PolicyHosts::new(&p.hosts, &p.not_hosts),
                provider: Provider::new(&p.provider).map_err(GatewayError::Config)?,
            }),
            None => None,
        };
        Ok(Self {
            routes: RouteTable::new(&config.routes),
            policy,
            checks: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// The request's `:authority`: the host of an absolute-form target, else the Host header.
fn authority(req: &Request<Incoming>) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str().to_string());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// Handles one request.
pub(crate) async fn handle(
    state: Arc<State>,
    conn: Conn,
    shutdown: watch::Receiver<()>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    // HTTP/1.1 without a Host: 400 (`MissingHost`), with no body.
    let Some(authority) = authority(&req) else {
        return edge::local_reply(StatusCode::BAD_REQUEST, Bytes::new(), Vec::new());
    };
    let upgrade = edge::is_upgrade(req.headers());
    let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let path = edge::normalize_path(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    edge::mutate_request_headers(&mut parts.headers, conn, upgrade);

    let mut response_headers_to_add = Vec::new();
    if let Some(policy) = state
        .policy
        .as_ref()
        .filter(|p| p.hosts.matches(&authority))
    {
        state.checks.fetch_add(1, Ordering::SeqCst);
        let outcome = policy
            .provider
            .check(
                &parts.method,
                &path,
                &authority,
                &parts.headers,
                conn.local.ip(),
            )
            .await;
        match outcome {
            // ext_authz.cc `onComplete`, CheckStatus::OK: set (overriding), then remove
            // (never a `:`-header or Host, `isRemovableHeader`), and keep the response
            // headers to add for `encodeHeaders`.
            Outcome::Ok(allowed) => {
                for (name, value) in allowed.headers_to_set {
                    parts.headers.insert(name, value);
                }
                for name in allowed.headers_to_remove {
                    if name != header::HOST {
                        parts.headers.remove(name);
                    }
                }
                response_headers_to_add = allowed.response_headers_to_add;
            }
            // CheckStatus::Denied: a local reply with the service's status and body.
            Outcome::Denied {
                status,
                headers,
                body,
            } => return edge::local_reply(status, body, headers),
            // CheckStatus::Error: on with the request when failing open, else
            // `status_on_error` with no body.
            Outcome::Error(e) => {
                tracing::debug!(error = %e, "ext_authz check failed");
                if !policy.provider.fail_open() {
                    return edge::local_reply(
                        policy.provider.status_on_error(),
                        Bytes::new(),
                        Vec::new(),
                    );
                }
            }
        }
    }

    // The router: no virtual host for the authority is `NR`, 404 with no body.
    let Some(upstream) = state.routes.find(&authority) else {
        return edge::local_reply(StatusCode::NOT_FOUND, Bytes::new(), Vec::new());
    };
    // Istio's gateway routes set `include_request_attempt_count`.
    parts.headers.insert(
        HeaderName::from_static("x-envoy-attempt-count"),
        HeaderValue::from_static("1"),
    );
    parts.uri = match path.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => return edge::local_reply(StatusCode::BAD_REQUEST, Bytes::new(), Vec::new()),
    };
    parts.version = http::Version::HTTP_11;
    let request = Request::from_parts(parts, body);

    let started = Instant::now();
    let stream = match tokio::net::TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, %upstream, "upstream connect failed");
            return upstream_error(UPSTREAM_CONNECT_ERROR);
        }
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(_) => return upstream_error(UPSTREAM_CONNECT_ERROR),
        };
    let mut conn_shutdown = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = connection.with_upgrades() => {}
            _ = conn_shutdown.changed() => {}
        }
    });
    let mut response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, %upstream, "upstream exchange failed");
            return upstream_error(UPSTREAM_RESET);
        }
    };

    let switched = upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switched && let Some(downstream) = downstream_upgrade {
        let upstream_io = hyper::upgrade::on(&mut response);
        let mut tunnel_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let (Ok(down), Ok(up)) = tokio::join!(downstream, upstream_io) else {
                return;
            };
            let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                _ = tunnel_shutdown.changed() => {}
            }
        });
    }

    let (mut rparts, rbody) = response.into_parts();
    edge::mutate_response_headers(&mut rparts.headers, switched);
    // The router's `x-envoy-upstream-service-time` (Envoy headers are not suppressed).
    rparts.headers.insert(
        HeaderName::from_static("x-envoy-upstream-service-time"),
        HeaderValue::from(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
    );
    // ext_authz.cc `encodeHeaders`: `allowed_client_headers_on_success` are added (`addCopy`),
    // next to what the upstream sent.
    for (name, value) in response_headers_to_add {
        rparts.headers.append(name, value);
    }
    Response::from_parts(rparts, rbody.boxed())
}

fn upstream_error(text: &'static str) -> Response<Body> {
    edge::local_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        Bytes::from_static(text.as_bytes()),
        Vec::new(),
    )
}
