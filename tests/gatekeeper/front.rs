//! The front door as a browser meets it: the simulated cluster, Gitea and OIDC issuer, the
//! service (API and check listener), the gateway stand-in with TLS and one CUSTOM policy
//! for the workspace hosts (configured as `k8s/` configures Istio), and a code-server
//! stand-in behind it.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use codeserver_service::{
    config::Secret,
    gate::{self, EXT_AUTHZ_PREFIX, GateSettings, Login, Principal, Seal, WorkspaceSession},
    metrics::Metrics,
    reconcile::Reconciler,
    serve,
    values::{Owner, Repo},
};
use codeserver_sim::{
    Sim,
    codeserver::CodeServer,
    gateway::{CustomPolicy, ExtAuthzHttp, Gateway, GatewayConfig, Route},
    gitea::SimGitea,
    issuer::{Issuer, TokenSpec},
    oidc::OidcClient,
};
use tokio::net::TcpListener;

use crate::world;

/// The workspaces' domain (BASE_DOMAIN).
pub const DOMAIN: &str = "devplatform.local";
/// The API's host.
pub const API_HOST: &str = "codeserver.devplatform.local";
/// The OIDC client of the login.
pub const CLIENT_ID: &str = "codeserver-service";
/// Its secret.
pub const CLIENT_SECRET: &str = "a-client-secret-for-the-tests";
/// The session keys: the first signs.
pub const KEYS: [&str; 2] = [
    "the-first-session-key-of-the-tests-0001",
    "the-older-session-key-of-the-tests-0002",
];

/// What the mesh config of `k8s/` gives the provider (`codeserver-workspaces`).
pub fn provider(service: SocketAddr) -> ExtAuthzHttp {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    ExtAuthzHttp {
        path_prefix: EXT_AUTHZ_PREFIX.to_owned(),
        timeout: Duration::from_secs(2),
        status_on_error: 503,
        include_request_headers_in_check: names(&gate::CHECK_HEADERS),
        headers_to_upstream_on_allow: names(&gate::UPSTREAM_ON_ALLOW),
        headers_to_downstream_on_allow: names(&gate::DOWNSTREAM_ON_ALLOW),
        headers_to_downstream_on_deny: names(&gate::DOWNSTREAM_ON_DENY),
        ..ExtAuthzHttp::new(service)
    }
}

/// Everything in front of and behind the gate.
pub struct Front {
    _sim: Sim,
    pub issuer: Arc<Issuer>,
    _gitea: SimGitea,
    pub reconciler: Arc<Reconciler>,
    pub gateway: Gateway,
    pub code_server: CodeServer,
    /// `https://codeserver.devplatform.local:<gateway port>`.
    pub public: String,
    /// A client that trusts the gateway, sends every host to it, follows no redirect and
    /// keeps no cookie.
    pub client: reqwest::Client,
    /// The service's metrics.
    pub metrics: Metrics,
    /// The check listener, for requests the gateway would never send.
    pub check_addr: SocketAddr,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// Options of [`Front::start`].
#[derive(Default)]
pub struct FrontOptions {
    /// ADMIN_WORKSPACE_ACCESS.
    pub admin_access: bool,
    /// The issuer's address instead of the simulated one (e.g. one that is down).
    pub issuer_url: Option<String>,
    /// WORKSPACE_SESSION_TTL.
    pub workspace_ttl: Option<Duration>,
}

impl Front {
    pub async fn start() -> Front {
        Self::start_with(FrontOptions::default()).await
    }

    pub async fn start_with(options: FrontOptions) -> Front {
        codeserver_service::install_crypto();
        let sim = Sim::start().await.unwrap();
        let issuer = Arc::new(Issuer::start().await.unwrap());
        let gitea = SimGitea::start(issuer.clone()).await.unwrap();
        let code_server = CodeServer::start().await.unwrap();
        let api_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let check_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let gateway = Gateway::start(GatewayConfig {
            certificate_names: vec![format!("*.{DOMAIN}")],
            routes: vec![
                Route {
                    hosts: vec![API_HOST.to_owned()],
                    upstream: api_listener.local_addr().unwrap(),
                },
                Route {
                    hosts: vec![format!("*.{DOMAIN}")],
                    upstream: code_server.addr(),
                },
            ],
            custom_policy: Some(CustomPolicy {
                // NB: as k8s/ writes it: a prefix, so that `Host: code-x…:443` (any port,
                // any case) is checked too; Istio matches policy hosts against the whole
                // authority, port included.
                hosts: vec!["code-*".to_owned()],
                not_hosts: Vec::new(),
                provider: provider(check_listener.local_addr().unwrap()),
            }),
            listen_port: None,
        })
        .await
        .unwrap();
        let check_addr = check_listener.local_addr().unwrap();
        let public = format!("https://{API_HOST}:{}", gateway.port());
        issuer.register_client(OidcClient {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_uris: vec![format!("{public}/auth/callback")],
        });
        issuer.set_login_users(vec![
            TokenSpec::new("alice"),
            TokenSpec::new("bob"),
            TokenSpec::new("root").roles(&["admin"]),
        ]);
        let reconciler = world::reconciler(&sim)
            .jwt_issuer(&issuer.issuer_url())
            .build();
        let metrics = Metrics::new().unwrap();
        let mut parts = world::serving::simulated_parts(
            reconciler.clone(),
            &issuer,
            &gitea.url(),
            metrics.clone(),
        );
        parts.gate = GateSettings {
            public_url: Some(public.parse().unwrap()),
            issuer: Some(options.issuer_url.unwrap_or_else(|| issuer.issuer_url())),
            client_id: CLIENT_ID.to_owned(),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            session_keys: KEYS.iter().map(|k| Secret::new(*k)).collect(),
            admin_access: options.admin_access,
            base_domain: DOMAIN.to_owned(),
            workspace_ttl: options.workspace_ttl.unwrap_or(Duration::from_secs(3600)),
            discovery_backoff: (Duration::from_millis(20), Duration::from_millis(200)),
            ..GateSettings::default()
        };
        let routes = serve::assemble(parts).unwrap();
        let stops = vec![
            world::serving::serve_on(api_listener, routes.api, routes.server),
            world::serving::serve_on(check_listener, routes.ext_authz, routes.server),
        ];
        world::caches_settled(&sim, &reconciler).await;
        let client = client(&gateway);
        Front {
            _sim: sim,
            issuer,
            _gitea: gitea,
            reconciler,
            gateway,
            code_server,
            public,
            client,
            check_addr,
            metrics,
            _stops: stops,
        }
    }

    /// Stops the check listener: the gateway can no longer ask the service.
    pub async fn stop_checks(&mut self) {
        let check = self._stops.pop().unwrap();
        check.send(()).unwrap();
        // NB: the listener is closed once a connection attempt is refused.
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.check_addr)
                .await
                .is_err()
            {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the check listener did not stop");
    }

    /// GET `url` through the gateway with `token` as the bearer.
    pub async fn get_as(&self, url: &str, token: &str) -> reqwest::Response {
        self.client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A check request straight to the check listener: `path` (after the listener's
    /// root), with `host` and `token`.
    pub async fn check(&self, path: &str, host: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{}{path}", self.check_addr))
            .header(reqwest::header::HOST, host)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `https://code-<safe>.devplatform.local:<port><path>`.
    pub fn workspace_url(&self, safe: &str, path: &str) -> String {
        format!("https://code-{safe}.{DOMAIN}:{}{path}", self.gateway.port())
    }

    /// Provisions `user`'s instance (sub `sub-<user>`, as the issuer's tokens say).
    pub async fn provision(&self, user: &str) {
        let owner = Owner {
            sub: Some(format!("sub-{user}")),
            ..Owner::new(user)
        };
        let repo = Repo::new("devteam", "docs", "http://gitea:3000/devteam/docs.git").unwrap();
        self.reconciler.provision(&owner, repo).await.unwrap();
    }

    /// A bearer token of `user`.
    pub fn token(&self, user: &str) -> String {
        self.issuer.token(user, &[]).unwrap()
    }

    /// The session keys as the service has them.
    pub fn seal(&self) -> Seal {
        let keys: Vec<Secret> = KEYS.iter().map(|k| Secret::new(*k)).collect();
        Seal::new(&keys).unwrap().unwrap()
    }

    /// A workspace cookie for `user` on `host`, sealed with the service's keys, that
    /// expires at `exp`.
    pub fn workspace_cookie(&self, user: &str, host: &str, exp: u64) -> String {
        self.seal()
            .seal(&WorkspaceSession::new(
                principal(user),
                host.to_owned(),
                exp,
            ))
            .unwrap()
    }

    /// A login cookie of the API host for `user`, expiring at `exp`.
    pub fn login_cookie(&self, user: &str, exp: u64) -> String {
        self.seal().seal(&Login::new(principal(user), exp)).unwrap()
    }
}

/// Who `user` is to the gate (the issuer's `sub-<user>`).
pub fn principal(user: &str) -> Principal {
    Principal {
        sub: format!("sub-{user}"),
        uid: user.to_owned(),
        adm: user == "root",
    }
}

/// Seconds since the epoch, `offset` from now.
pub fn epoch(offset: i64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now.checked_add_signed(offset).unwrap()
}

/// Every name resolves to the loopback address: the gateway stand-in is there.
struct Loopback;

impl reqwest::dns::Resolve for Loopback {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            let addrs: reqwest::dns::Addrs =
                Box::new(std::iter::once(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))));
            Ok(addrs)
        })
    }
}

fn client(gateway: &Gateway) -> reqwest::Client {
    let certificate = reqwest::Certificate::from_pem(gateway.certificate_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(certificate)
        .dns_resolver(Arc::new(Loopback))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
