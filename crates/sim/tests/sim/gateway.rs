//! The gateway stand-in (Envoy's HTTP ext_authz filter as Istio configures it for a CUSTOM
//! policy) in front of the code-server stand-in, driven over TLS by reqwest (and, where
//! reqwest would tidy the request, by a raw TLS client), with a tiny authorization service
//! written here.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use codeserver_sim::{
    codeserver::{CodeServer, RecordedRequest},
    gateway::{CustomPolicy, ExtAuthzHttp, Gateway, GatewayConfig, Route},
};
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use reqwest::{StatusCode, header};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const ALICE: &str = "code-alice.devplatform.test";
const PUBLIC: &str = "public.devplatform.test";
const APEX: &str = "devplatform.test";
const WS: &str = "ws.devplatform.test";
/// Resolved to the gateway but outside its certificate.
const ELSEWHERE: &str = "code-alice.elsewhere.test";

const REFRESHED_COOKIE: &str = "_oauth2_proxy=refreshed; Path=/; Secure; HttpOnly";
const SIGN_IN: &str = "https://auth.devplatform.test/oauth2/start?rd=%2F";
const DENY_BODY: &str = "<a href=\"https://auth.devplatform.test/oauth2/start\">Found</a>";

/// A request the authorization service received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: http::HeaderMap,
}

impl Seen {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Aborts a task when dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An authorization service in the style of oauth2-proxy: it decides by the Authorization
/// header and answers with headers for the gateway to pass on.
struct Authz {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: Task,
}

impl Authz {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let recorded = recorded.clone();
                        async move { Ok::<_, Infallible>(decide(&recorded, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            _task: Task(task),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn decide(recorded: &Mutex<Vec<Seen>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    recorded.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        headers: req.headers().clone(),
    });
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let builder = Response::builder();
    let response = match auth {
        "Bearer allow" => builder
            .status(200)
            .header("x-auth-request-user", "alice")
            .header("x-auth-request-email", "alice@devplatform.test")
            .header("x-envoy-auth-headers-to-remove", "Cookie, authorization")
            .header("set-cookie", REFRESHED_COOKIE)
            .header("x-not-listed", "nope")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"ok"))),
        "Bearer created" => builder
            .status(201)
            .body(Full::new(Bytes::from_static(b"created"))),
        "Bearer error" => builder
            .status(503)
            .body(Full::new(Bytes::from_static(b"down"))),
        "Bearer unauthorized" => builder
            .status(401)
            .header("www-authenticate", "Bearer realm=\"devplatform\"")
            .body(Full::new(Bytes::from_static(b"no"))),
        _ => builder
            .status(302)
            .header("location", SIGN_IN)
            .header("set-cookie", "_oauth2_proxy_csrf=x; Path=/")
            .header("set-cookie", "_other=y; Path=/")
            .header("x-deny-extra", "1")
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(DENY_BODY.as_bytes()))),
    };
    response.unwrap()
}

/// A code-server, an authorization service and a gateway in front.
struct Fixture {
    gateway: Gateway,
    code: CodeServer,
    authz: Authz,
    client: reqwest::Client,
}

impl Fixture {
    /// The default: `*.devplatform.test` routed to code-server, alice's host (with any
    /// port) under the CUSTOM policy, Istio's provider defaults; `change` adjusts it.
    async fn start(change: impl FnOnce(&mut GatewayConfig)) -> Self {
        let code = CodeServer::start().await.unwrap();
        let authz = Authz::start().await;
        let mut config = GatewayConfig {
            certificate_names: vec!["*.devplatform.test".into(), APEX.into()],
            routes: vec![Route {
                hosts: vec!["*.devplatform.test".into()],
                upstream: code.addr(),
            }],
            custom_policy: Some(CustomPolicy {
                hosts: vec![ALICE.into(), format!("{ALICE}:*")],
                not_hosts: vec![],
                provider: ExtAuthzHttp::new(authz.addr),
            }),
            listen_port: None,
        };
        change(&mut config);
        let gateway = Gateway::start(config).await.unwrap();
        let client = client(&gateway, true);
        Self {
            gateway,
            code,
            authz,
            client,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.gateway.port())
    }

    fn get(&self, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(host, path))
    }

    fn last_upstream(&self) -> RecordedRequest {
        self.code
            .requests()
            .pop()
            .expect("a request reached code-server")
    }

    fn last_check(&self) -> Seen {
        self.authz
            .seen()
            .pop()
            .expect("a check reached the service")
    }
}

fn provider(config: &mut GatewayConfig) -> &mut ExtAuthzHttp {
    &mut config.custom_policy.as_mut().unwrap().provider
}

/// A client that resolves the test hosts to the gateway, does not follow redirects and
/// trusts the gateway's certificate when `trust` is set.
fn client(gateway: &Gateway, trust: bool) -> reqwest::Client {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if trust {
        let cert = reqwest::Certificate::from_pem(gateway.certificate_pem().as_bytes()).unwrap();
        builder = builder.tls_certs_only([cert]);
    }
    for host in [ALICE, PUBLIC, APEX, WS, ELSEWHERE] {
        builder = builder.resolve(host, gateway.addr());
    }
    builder.build().unwrap()
}

async fn text(response: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn values<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_check_request_is_the_original_request_with_envoys_headers() {
    let fx = Fixture::start(|c| {
        let p = provider(c);
        p.path_prefix = "/oauth2/auth".into();
        p.include_request_headers_in_check = vec!["Cookie".into(), "x-forwarded-*".into()];
    })
    .await;
    let response = fx
        .get(ALICE, "/some/path?q=1&r=%2F")
        .header("authorization", "Bearer allow")
        .header("cookie", "_oauth2_proxy=abc")
        .header("x-custom", "not sent")
        .header("user-agent", "test-agent")
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let check = fx.last_check();
    assert_eq!(check.method, "GET");
    assert_eq!(check.uri, "/oauth2/auth/some/path?q=1&r=%2F");
    let host = format!("{ALICE}:{}", fx.gateway.port());
    assert_eq!(check.get("host"), Some(host.as_str()));
    // Authorization is always sent by Envoy's HTTP client, listed or not.
    assert_eq!(check.get("authorization"), Some("Bearer allow"));
    assert_eq!(check.get("cookie"), Some("_oauth2_proxy=abc"));
    assert_eq!(check.get("content-length"), Some("0"));
    // The edge's x-forwarded-* (listed here), then the async client's own address.
    assert_eq!(check.get("x-forwarded-proto"), Some("https"));
    assert_eq!(check.get("x-forwarded-for"), Some("127.0.0.1,127.0.0.1"));
    assert_eq!(check.get("x-envoy-internal"), Some("true"));
    assert_eq!(check.get("x-envoy-expected-rq-timeout-ms"), Some("600000"));
    for absent in ["x-custom", "user-agent", "accept", "x-request-id"] {
        assert_eq!(check.get(absent), None, "{absent} was sent in the check");
    }

    // A POST is checked as a POST, without its body.
    let response = fx
        .client
        .post(fx.url(ALICE, "/upload"))
        .header("authorization", "Bearer allow")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let check = fx.last_check();
    assert_eq!(check.method, "POST");
    assert_eq!(check.uri, "/oauth2/auth/upload");
    assert_eq!(check.get("content-length"), Some("0"));
    assert_eq!(fx.last_upstream().header("content-length"), Some("5"));
    assert_eq!(fx.gateway.checks(), 2);
}

#[tokio::test]
async fn an_allowing_answer_sets_removes_and_adds_headers() {
    let fx = Fixture::start(|c| {
        let p = provider(c);
        p.headers_to_upstream_on_allow = vec!["x-auth-request-*".into()];
        p.headers_to_downstream_on_allow = vec!["set-cookie".into()];
    })
    .await;
    let response = fx
        .get(ALICE, "/workspace?folder=/home/coder")
        .header("authorization", "Bearer allow")
        .header("cookie", "_oauth2_proxy=abc")
        .header("x-auth-request-user", "mallory")
        .header("x-envoy-internal", "true")
        .header("x-envoy-retry-on", "5xx")
        .header("x-request-id", "chosen-by-the-client")
        .send()
        .await
        .unwrap();
    let (status, headers, body) = text(response).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<title>code-server</title>"), "{body}");
    assert!(
        body.contains("<h1 id=\"workspace\">Workspace code-alice</h1>"),
        "{body}"
    );
    // headersToDownstreamOnAllow: added to the response; nothing else of the answer.
    assert_eq!(values(&headers, "set-cookie"), [REFRESHED_COOKIE]);
    assert!(headers.get("x-not-listed").is_none());
    assert!(headers.get("x-auth-request-user").is_none());
    assert_eq!(values(&headers, "server"), ["istio-envoy"]);
    assert!(headers.get("x-envoy-upstream-service-time").is_some());
    assert!(headers.get("date").is_some());

    let up = fx.last_upstream();
    assert_eq!(up.host, format!("{ALICE}:{}", fx.gateway.port()));
    assert_eq!(up.path, "/workspace?folder=/home/coder");
    // headersToUpstreamOnAllow: set, replacing what the client sent.
    assert_eq!(up.header_values("x-auth-request-user"), ["alice"]);
    assert_eq!(
        up.header("x-auth-request-email"),
        Some("alice@devplatform.test")
    );
    // x-envoy-auth-headers-to-remove: gone, and the header itself never forwarded.
    for absent in [
        "cookie",
        "authorization",
        "x-envoy-auth-headers-to-remove",
        "x-not-listed",
        "set-cookie",
        "x-envoy-internal",
        "x-envoy-retry-on",
    ] {
        assert!(up.header(absent).is_none(), "{absent} reached code-server");
    }
    // The edge headers.
    assert_eq!(up.header("x-forwarded-proto"), Some("https"));
    assert_eq!(up.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(up.header("x-envoy-external-address"), Some("127.0.0.1"));
    assert_eq!(up.header("x-envoy-attempt-count"), Some("1"));
    let request_id = up.header("x-request-id").unwrap();
    assert_ne!(request_id, "chosen-by-the-client");
    assert_eq!(request_id.len(), 36);
}

#[tokio::test]
async fn a_denying_answer_reaches_the_client_with_the_allowed_headers_only() {
    let fx = Fixture::start(|c| {
        provider(c).headers_to_downstream_on_deny = vec!["set-cookie".into()];
    })
    .await;
    // oauth2-proxy's redirect to sign in.
    let (status, headers, body) = text(fx.get(ALICE, "/").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(values(&headers, "location"), [SIGN_IN]);
    assert_eq!(
        values(&headers, "set-cookie"),
        ["_oauth2_proxy_csrf=x; Path=/", "_other=y; Path=/"]
    );
    assert!(headers.get("x-deny-extra").is_none());
    // The service's content type is not listed: Envoy's local reply is text/plain.
    assert_eq!(values(&headers, "content-type"), ["text/plain"]);
    assert_eq!(values(&headers, "server"), ["istio-envoy"]);
    assert_eq!(body, DENY_BODY);

    // WWW-Authenticate is passed without being listed.
    let (status, headers, body) = text(
        fx.get(ALICE, "/")
            .header("authorization", "Bearer unauthorized")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        values(&headers, "www-authenticate"),
        ["Bearer realm=\"devplatform\""]
    );
    assert_eq!(body, "no");

    // Only 200 allows: a 201 is a denial with the service's status and body.
    let (status, _, body) = text(
        fx.get(ALICE, "/")
            .header("authorization", "Bearer created")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, "created");

    assert!(fx.code.requests().is_empty(), "a denied request went up");
    assert_eq!(fx.gateway.checks(), 3);
}

#[tokio::test]
async fn with_no_deny_list_every_header_but_host_reaches_the_client() {
    let fx = Fixture::start(|_| {}).await;
    let (status, headers, body) = text(fx.get(ALICE, "/").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(values(&headers, "x-deny-extra"), ["1"]);
    assert_eq!(values(&headers, "content-type"), ["text/html"]);
    assert_eq!(values(&headers, "set-cookie").len(), 2);
    assert_eq!(values(&headers, "location"), [SIGN_IN]);
    assert_eq!(values(&headers, "server"), ["istio-envoy"]);
    assert_eq!(body, DENY_BODY);
}

#[tokio::test]
async fn a_failing_service_answers_status_on_error_unless_failing_open() {
    // A 5xx from the service is an error, not a denial: 403 with no body by default.
    let fx = Fixture::start(|_| {}).await;
    let (status, headers, body) = text(
        fx.get(ALICE, "/")
            .header("authorization", "Bearer error")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "");
    assert!(headers.get("content-type").is_none());
    assert!(fx.code.requests().is_empty());

    let fx = Fixture::start(|c| provider(c).status_on_error = 401).await;
    let response = fx
        .get(ALICE, "/")
        .header("authorization", "Bearer error")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let fx = Fixture::start(|c| provider(c).fail_open = true).await;
    let response = fx
        .get(ALICE, "/")
        .header("authorization", "Bearer error")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Failing open changes nothing on the request.
    assert_eq!(
        fx.last_upstream().header("authorization"),
        Some("Bearer error")
    );
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn an_unreachable_service_answers_status_on_error_unless_failing_open() {
    let down = closed_port().await;
    let fx = Fixture::start(|c| provider(c).service = down).await;
    let (status, _, body) = text(fx.get(ALICE, "/").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "");
    assert_eq!(fx.gateway.checks(), 1);
    assert!(fx.code.requests().is_empty());

    let fx = Fixture::start(|c| {
        provider(c).service = down;
        provider(c).fail_open = true;
    })
    .await;
    let response = fx.get(ALICE, "/").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fx.code.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_service_times_out_into_status_on_error() {
    // It accepts the connection and never answers; the paused clock runs to the timeout
    // as soon as everything waits.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    let holder = Task(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    }));
    let fx = Fixture::start(|c| {
        let p = provider(c);
        p.service = silent;
        p.timeout = Duration::from_secs(2);
        p.status_on_error = 504;
    })
    .await;
    let response = fx.get(ALICE, "/").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(fx.code.requests().is_empty());
    drop(holder);
}

#[tokio::test]
async fn only_hosts_under_the_policy_are_checked() {
    let fx = Fixture::start(|_| {}).await;
    // Routed, not under the policy: straight through.
    let response = fx.get(PUBLIC, "/").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fx.gateway.checks(), 0);
    assert!(fx.authz.seen().is_empty());
    assert_eq!(fx.last_upstream().path, "/");

    // Hosts match ignoring case, and the exact entry matches a Host without a port.
    for host in [
        format!("CODE-Alice.DevPlatform.test:{}", fx.gateway.port()),
        ALICE.to_string(),
    ] {
        let response = fx
            .get(ALICE, "/")
            .header(header::HOST, host.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{host}");
        assert_eq!(fx.last_check().get("host"), Some(host.as_str()));
    }
    assert_eq!(fx.gateway.checks(), 2);

    // Istio compares the whole Host, port included: an exact entry alone does not cover
    // `host:port`, and the request is not checked at all.
    let fx = Fixture::start(|c| c.custom_policy.as_mut().unwrap().hosts = vec![ALICE.into()]).await;
    let response = fx.get(ALICE, "/").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fx.gateway.checks(), 0);

    // notHosts: everything but the public host.
    let fx = Fixture::start(|c| {
        let policy = c.custom_policy.as_mut().unwrap();
        policy.hosts = vec![];
        policy.not_hosts = vec![format!("{PUBLIC}:*")];
    })
    .await;
    assert_eq!(
        fx.get(PUBLIC, "/").send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(fx.gateway.checks(), 0);
    assert_eq!(
        fx.get(ALICE, "/").send().await.unwrap().status(),
        StatusCode::FOUND
    );
    assert_eq!(fx.gateway.checks(), 1);
}

#[tokio::test]
async fn a_host_without_a_route_is_404() {
    // `*.devplatform.test` does not cover the apex.
    let fx = Fixture::start(|_| {}).await;
    let (status, headers, body) = text(fx.get(APEX, "/").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "");
    assert_eq!(values(&headers, "server"), ["istio-envoy"]);
    assert_eq!(fx.gateway.checks(), 0);

    // ext_authz runs before the router: a checked host with no route is checked, then 404.
    let fx = Fixture::start(|c| c.routes[0].hosts = vec![PUBLIC.into()]).await;
    let response = fx
        .get(ALICE, "/")
        .header("authorization", "Bearer allow")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(fx.gateway.checks(), 1);
    assert!(fx.code.requests().is_empty());
}

#[tokio::test]
async fn an_unreachable_upstream_is_503() {
    let down = closed_port().await;
    let fx = Fixture::start(|c| c.routes[0].upstream = down).await;
    let (status, headers, body) = text(fx.get(PUBLIC, "/").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("upstream connect error"), "{body}");
    assert_eq!(values(&headers, "content-type"), ["text/plain"]);
}

/// A raw TLS connection to the gateway for `sni`, offering h2 and http/1.1.
async fn raw_tls(
    gateway: &Gateway,
    sni: &str,
) -> (tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(gateway.certificate_pem().as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(gateway.addr()).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (tls, alpn)
}

/// Reads until the end of a response head.
async fn read_head(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "connection closed in the head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn tls_serves_the_certificate_for_its_names_with_http_1_1() {
    let fx = Fixture::start(|_| {}).await;
    let (_, alpn) = raw_tls(&fx.gateway, ALICE).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(
        fx.get(APEX, "/").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // A name outside the certificate fails the handshake.
    let error = fx.get(ELSEWHERE, "/").send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    // So does a client that does not trust the certificate.
    let untrusting = client(&fx.gateway, false);
    let error = untrusting
        .get(fx.url(PUBLIC, "/"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    assert!(fx.code.requests().is_empty());
}

#[tokio::test]
async fn paths_are_normalized_before_the_check_and_the_route() {
    let fx = Fixture::start(|c| provider(c).path_prefix = "/check".into()).await;
    // reqwest would remove the dot segments itself; a raw request keeps them.
    let (mut tls, _) = raw_tls(&fx.gateway, ALICE).await;
    let request = format!(
        "GET /a/b/../c/./d?x=/../y HTTP/1.1\r\nHost: {ALICE}:{}\r\nAuthorization: Bearer allow\r\nConnection: close\r\n\r\n",
        fx.gateway.port()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(fx.last_check().uri, "/check/a/c/d?x=/../y");
    assert_eq!(fx.last_upstream().path, "/a/c/d?x=/../y");
}

#[tokio::test]
async fn websocket_upgrades_pass_through_after_the_check() {
    // An upstream that switches protocols and then echoes bytes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = listener.local_addr().unwrap();
    let upstream_head = Arc::new(Mutex::new(String::new()));
    let seen_head = upstream_head.clone();
    let _echo = Task(tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let head = read_head(&mut stream).await;
        *seen_head.lock().unwrap() = head;
        stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            )
            .await
            .unwrap();
        let (mut r, mut w) = stream.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    }));
    let fx = Fixture::start(|c| {
        c.routes.insert(
            0,
            Route {
                hosts: vec![WS.into()],
                upstream: echo,
            },
        );
        c.custom_policy.as_mut().unwrap().hosts = vec![format!("{WS}:*")];
    })
    .await;
    let (mut tls, _) = raw_tls(&fx.gateway, WS).await;
    let request = format!(
        "GET /stable/ws HTTP/1.1\r\nHost: {WS}:{}\r\nAuthorization: Bearer allow\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        fx.gateway.port()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    tls.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");
    assert_eq!(fx.gateway.checks(), 1);
    let upstream_head = upstream_head.lock().unwrap().to_ascii_lowercase();
    assert!(
        upstream_head.contains("upgrade: websocket"),
        "{upstream_head}"
    );
    assert!(!upstream_head.contains("authorization"), "{upstream_head}");
}
