//! A stand-in for an Istio ingress gateway (Envoy) with the HTTP external authorization
//! filter, on 127.0.0.1 over TLS: what a browser (or a test's HTTP client) goes through to
//! reach `https://code-<name>.<BASE_DOMAIN>`.
//!
//! It behaves as Envoy does when Istio configures it from a mesh config
//! `extensionProviders[].envoyExtAuthzHttp` ([`ExtAuthzHttp`]) and one `AuthorizationPolicy`
//! with `action: CUSTOM` ([`CustomPolicy`]):
//!
//! - Requests whose `:authority` matches the policy's `hosts`/`notHosts` (Istio's matching:
//!   case-insensitive exact, `prefix*`, `*suffix`, **port included**, see `hosts.rs`) are sent
//!   to the authorization service first: same method, `path_prefix` + path and query, the
//!   original Host, `Authorization` and the headers listed in
//!   `include_request_headers_in_check`, `Content-Length: 0`, plus what Envoy's async client
//!   adds (`x-envoy-internal: true`, its address appended to `x-forwarded-for`,
//!   `x-envoy-expected-rq-timeout-ms`).
//! - `200` lets the request through: the answer's headers matching
//!   `headers_to_upstream_on_allow` are set on it, those it lists in
//!   `x-envoy-auth-headers-to-remove` are removed from it, and those matching
//!   `headers_to_downstream_on_allow` are added to the response. Any other status below 500
//!   (`201`, `302`, `401`, ...) is a denial: the client gets that status and body with the
//!   headers matching `headers_to_downstream_on_deny` (plus `Location`, `WWW-Authenticate`;
//!   every header but Host when the list is empty). A 5xx, a refused connection or a
//!   timeout is an error: `status_on_error` (403 unless set) unless `fail_open`.
//! - Routes pick the upstream by host (port ignored); none is `404`. Every request gets the
//!   edge headers of an Envoy with `use_remote_address` (`x-forwarded-for`,
//!   `x-forwarded-proto: https`, `x-request-id`, `x-envoy-external-address`), every
//!   response `server: istio-envoy`.
//!
//! Each behaviour cites its source next to its code. Not modelled: HTTP/2 and HTTP/3 (ALPN
//! offers `http/1.1` only), request bodies in the check (`includeRequestBodyInCheck`),
//! `includeAdditionalHeadersInCheck`, retries, Envoy's percent-encoding normalization,
//! Istio's peer metadata headers, access logs and stats.
//!
//! ```text
//! let gateway = Gateway::start(GatewayConfig {
//!     certificate_names: vec!["*.devplatform.test".into()],
//!     routes: vec![Route { hosts: vec!["*.devplatform.test".into()], upstream: code_server.addr() }],
//!     custom_policy: Some(CustomPolicy {
//!         hosts: vec!["code-*".into()], // any port: Istio matches the whole authority
//!         not_hosts: vec![],
//!         provider: ExtAuthzHttp::new(authz_addr),
//!     }),
//!     listen_port: None,
//! }).await?;
//! // https://code-alice.devplatform.test:{gateway.port()}/ resolved to 127.0.0.1,
//! // trusting gateway.certificate_pem()
//! ```

mod edge;
mod ext_authz;
mod hosts;
mod proxy;
mod tls;

use std::{
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

/// Istio's `timeout` of an `envoyExtAuthzHttp` provider when none is given: 600 s
/// (`extauthz.go` `timeoutOrDefault`; Envoy's own default, 200 ms, never applies).
pub const ISTIO_DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The status of a failed check when `statusOnError` is not set: Envoy's default
/// `status_on_error`, 403 Forbidden (`ext_authz.proto`; Istio leaves the field unset).
pub const DEFAULT_STATUS_ON_ERROR: u16 = 403;

/// What the gateway serves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Certificate names: the gateway serves a self-signed certificate (made at start with
    /// rcgen) for these DNS names, e.g. `["*.devplatform.test", "devplatform.test"]`.
    pub certificate_names: Vec<String>,
    /// Routes, first match wins among equal domains: host match -> upstream (plain HTTP on
    /// loopback). Envoy's virtual host order applies across domains: exact, then the longest
    /// `*suffix`, then the longest `prefix*`, then `*`; the port of the request is ignored.
    pub routes: Vec<Route>,
    /// The CUSTOM policy: which hosts are checked, and the provider.
    pub custom_policy: Option<CustomPolicy>,
    /// The port to listen on, on 127.0.0.1; a free one when `None`.
    pub listen_port: Option<u16>,
}

/// A route: a `Gateway`/`VirtualService` host list and the Service behind it.
#[derive(Debug, Clone)]
pub struct Route {
    /// Istio-style hosts: exact (`code-alice.devplatform.test`), `*.suffix`, or `*`.
    pub hosts: Vec<String>,
    /// The upstream, plain HTTP/1.1.
    pub upstream: SocketAddr,
}

/// An `AuthorizationPolicy` with `action: CUSTOM` and one rule `to.operation.hosts`/`notHosts`.
#[derive(Debug, Clone)]
pub struct CustomPolicy {
    /// `to.operation.hosts`: any of them (any host when empty). Matched against the whole
    /// Host header, port included, ignoring case; exact, `prefix*` or `*suffix`.
    pub hosts: Vec<String>,
    /// `to.operation.notHosts`: none of them.
    pub not_hosts: Vec<String>,
    /// `provider.name`, resolved: the mesh config's extension provider.
    pub provider: ExtAuthzHttp,
}

/// Mirrors Istio's `MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationHttpProvider`.
/// Header lists take exact names, `prefix*` and `*suffix`, matched ignoring case; a lone `*`
/// is refused, as Istio refuses it.
#[derive(Debug, Clone)]
pub struct ExtAuthzHttp {
    /// `service` and `port`: where the authorization service listens (plain HTTP).
    pub service: SocketAddr,
    /// `pathPrefix`: prepended to the original path in the check request; empty or
    /// starting with `/`.
    pub path_prefix: String,
    /// `timeout` of the whole check ([`ISTIO_DEFAULT_TIMEOUT`] when Istio's is unset).
    pub timeout: Duration,
    /// `failOpen`: let requests through when the service fails or cannot be reached.
    pub fail_open: bool,
    /// `statusOnError`: the status sent to the client when the check fails and
    /// `fail_open` is false; outside 100..=511 (e.g. 0, unset) it is 403.
    pub status_on_error: u16,
    /// `includeRequestHeadersInCheck`: headers sent in the check besides Host, Method,
    /// Path, Content-Length and Authorization, which Envoy always sends.
    pub include_request_headers_in_check: Vec<String>,
    /// `headersToUpstreamOnAllow`: headers of an allowing answer set on the upstream
    /// request, replacing the client's.
    pub headers_to_upstream_on_allow: Vec<String>,
    /// `headersToDownstreamOnAllow`: headers of an allowing answer added to the response.
    pub headers_to_downstream_on_allow: Vec<String>,
    /// `headersToDownstreamOnDeny`: headers of a denying answer sent to the client (with
    /// `Location`, `WWW-Authenticate` and `Content-Length` always); every header but Host
    /// when empty.
    pub headers_to_downstream_on_deny: Vec<String>,
}

impl ExtAuthzHttp {
    /// A provider for `service` with Istio's defaults: no path prefix, a 600 s timeout,
    /// failing closed with 403, no extra header in the check and no header passed on.
    pub fn new(service: SocketAddr) -> Self {
        Self {
            service,
            path_prefix: String::new(),
            timeout: ISTIO_DEFAULT_TIMEOUT,
            fail_open: false,
            status_on_error: DEFAULT_STATUS_ON_ERROR,
            include_request_headers_in_check: Vec::new(),
            headers_to_upstream_on_allow: Vec::new(),
            headers_to_downstream_on_allow: Vec::new(),
            headers_to_downstream_on_deny: Vec::new(),
        }
    }
}

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listener could not be bound on 127.0.0.1.
    #[error("failed to listen on 127.0.0.1")]
    Bind(#[source] std::io::Error),
    /// The certificate or its key could not be made.
    #[error("failed to make the gateway certificate")]
    Certificate(#[source] rcgen::Error),
    /// rustls refused the configuration.
    #[error("failed to configure TLS")]
    Tls(#[source] rustls::Error),
    /// The configuration is one Istio would refuse (a lone `*` in a header list, a path
    /// prefix not starting with `/`, no certificate name).
    #[error("invalid gateway configuration: {0}")]
    Config(String),
}

/// A running gateway on 127.0.0.1 (HTTPS, HTTP/1.1). Dropping it stops it, its
/// connections and any WebSocket tunnels.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    certificate_pem: String,
    state: Arc<proxy::State>,
    /// Dropped with the gateway: every task of the gateway waits on it.
    _shutdown: watch::Sender<()>,
}

impl Gateway {
    /// Makes the certificate, binds its port (or a free one) on 127.0.0.1 and starts
    /// serving.
    pub async fn start(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        let identity = tls::identity(&config.certificate_names)?;
        let state = Arc::new(proxy::State::new(&config)?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.listen_port.unwrap_or(0)))
            .await
            .map_err(GatewayError::Bind)?;
        let addr = listener.local_addr().map_err(GatewayError::Bind)?;
        let (shutdown, rx) = watch::channel(());
        tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(identity.config),
            state.clone(),
            rx,
        ));
        Ok(Gateway {
            addr,
            certificate_pem: identity.certificate_pem,
            state,
            _shutdown: shutdown,
        })
    }

    /// The HTTPS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The listening address, 127.0.0.1:[`Gateway::port`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The served certificate, PEM: for `reqwest::Certificate::from_pem`; Chromium can be
    /// told to ignore certificate errors instead.
    pub fn certificate_pem(&self) -> String {
        self.certificate_pem.clone()
    }

    /// Check requests the gateway sent (or tried to send) to the authorization service.
    pub fn checks(&self) -> usize {
        self.state.checks.load(Ordering::SeqCst)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<proxy::State>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            // Err once the Gateway (the sender) is dropped.
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        acceptor.clone(),
                        state.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => tracing::debug!(error = %e, "gateway accept failed"),
            },
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<proxy::State>,
    mut shutdown: watch::Receiver<()>,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let conn = edge::Conn { peer, local };
    let rx = shutdown.clone();
    let served = async move {
        let tls = match acceptor.accept(stream).await {
            Ok(tls) => tls,
            Err(e) => {
                tracing::debug!(error = %e, %peer, "gateway TLS handshake failed");
                return;
            }
        };
        let service = service_fn(move |req| {
            let state = state.clone();
            let rx = rx.clone();
            async move { Ok::<_, Infallible>(proxy::handle(state, conn, rx, req).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades();
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, %peer, "gateway connection ended with an error");
        }
    };
    tokio::select! {
        _ = served => {}
        _ = shutdown.changed() => {}
    }
}
