//! The `demo` command: the whole service on 127.0.0.1 with no cluster. It starts the
//! simulated cluster, a simulated Gitea with a few users and repositories, a token issuer
//! with a freshly generated key, and the real server; then prints tokens for two users and
//! an admin, a `curl` to paste and how to watch an instance come up.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use clap::Args;
use codeserver_service::{
    activity::IdleSettings,
    auth::AuthSettings,
    config::Secret,
    config::{CapacityArgs, IdleArgs, InstanceArgs},
    gate::{self, DEFAULT_CLIENT_ID, EXT_AUTHZ_PREFIX, GateSettings},
    gitea::GiteaSettings,
    http::ApiSettings,
    rate_limit::Rate,
    reconcile::Timeouts,
    serve::{self, Addresses, ServeError, Service},
};
use codeserver_sim::{
    Sim, SimError, SimOptions,
    codeserver::CodeServer,
    gateway::{CustomPolicy, ExtAuthzHttp, Gateway, GatewayConfig, Route},
    gitea::{SERVICE_TOKEN, SimGitea, SimGiteaError, default_repos},
    issuer::{DEFAULT_AUDIENCE, Issuer, IssuerError, OidcClient, TokenSpec},
};

/// BASE_DOMAIN's default; the demo uses `localhost` instead, which resolves by itself.
const DEFAULT_BASE_DOMAIN: &str = "devplatform.local";

/// How long the demo's tokens stay valid.
const TOKEN_LIFETIME_SECS: i64 = 12 * 3600;

/// Arguments of `demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Port of the demo's GraphQL API on 127.0.0.1.
    #[arg(
        long = "port",
        env = "PORT",
        value_name = "PORT",
        default_value_t = 8082
    )]
    pub port: u16,
    /// Port of the demo's metrics endpoint on 127.0.0.1.
    #[arg(
        long = "metrics-port",
        env = "METRICS_PORT",
        value_name = "METRICS_PORT",
        default_value_t = 9092
    )]
    pub metrics_port: u16,
    /// Port of the demo's gateway (HTTPS) on 127.0.0.1: the API host and the workspace
    /// hosts, as a browser opens them.
    #[arg(
        long = "gateway-port",
        env = "GATEWAY_PORT",
        value_name = "GATEWAY_PORT",
        default_value_t = 8443
    )]
    pub gateway_port: u16,
    /// Port of the demo's ext_authz check listener on 127.0.0.1 (the gateway asks it).
    #[arg(
        long = "ext-authz-port",
        env = "EXT_AUTHZ_PORT",
        value_name = "EXT_AUTHZ_PORT",
        default_value_t = 8083
    )]
    pub ext_authz_port: u16,
    /// Where the demo's JSON logs go (appended), so that the banner stays on screen;
    /// `codeserver-demo.log` in the system's temporary directory when unset.
    #[arg(long = "log-file", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Instance settings (templates, values, sizes) for the demo's instances.
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Idle culling (HEALTHZ_URL is the simulated code-servers' in the demo).
    #[command(flatten)]
    pub idle: IdleArgs,
    /// Capacity limits.
    #[command(flatten)]
    pub capacity: CapacityArgs,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulated cluster did not start.
    #[error("failed to start the simulated cluster")]
    Cluster(#[source] Box<SimError>),
    /// The token issuer did not start or could not mint.
    #[error("failed to start the token issuer")]
    Issuer(#[source] IssuerError),
    /// The simulated Gitea did not start.
    #[error("failed to start the simulated Gitea")]
    Gitea(#[source] SimGiteaError),
    /// The gateway or the code-server stand-in did not start.
    #[error("failed to start the demo's gateway on 127.0.0.1:{port}")]
    Gateway {
        /// The gateway's port.
        port: u16,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The service did not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The log level of the demo's log file.
pub const LOG_LEVEL: &str = "info,warp::server=off";

/// The file the demo's logs go to: `--log-file`, else `codeserver-demo.log` in the
/// system's temporary directory.
pub fn log_file(args: &DemoArgs) -> PathBuf {
    args.log_file
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("codeserver-demo.log"))
}

/// Runs the demo until Ctrl-C: the simulated cluster, Gitea and issuer, then the service
/// exactly as `serve` builds it, on their addresses. Logging is set up by the caller (see
/// [`log_file`]).
pub async fn demo(args: &DemoArgs) -> Result<(), DemoError> {
    codeserver_service::install_crypto();
    let sim = Sim::start_with(SimOptions::realistic())
        .await
        .map_err(|e| DemoError::Cluster(Box::new(e)))?;
    let issuer = Arc::new(Issuer::start().await.map_err(DemoError::Issuer)?);
    let gitea = SimGitea::start(issuer.clone())
        .await
        .map_err(DemoError::Gitea)?;
    // NB: the simulated code-servers answer /healthz with no use since they started, so
    // an instance left alone stops after IDLE_TIMEOUT.
    let code_servers = sim
        .code_servers()
        .await
        .map_err(|e| DemoError::Cluster(Box::new(e)))?;
    // NB: the access policies name owners as <issuer>/<sub>; the demo's issuer is the
    // simulated one.
    let mut instance = args.instance.settings();
    instance.jwt_issuer = Some(issuer.issuer_url());
    // NB: browsers and curl resolve every `*.localhost` name to 127.0.0.1 (RFC 6761), so a
    // newcomer opens https://code-alice.localhost:8443 with no DNS or hosts-file change.
    if instance.base_domain == DEFAULT_BASE_DOMAIN {
        instance.base_domain = "localhost".to_owned();
    }
    let front = front(args, &issuer, &instance.base_domain).await?;
    let started = serve::start(Service {
        kube: sim.config(),
        kube_rate: Rate::default(),
        instance,
        timeouts: Timeouts {
            ready: Duration::from_secs(60),
            ..Timeouts::default()
        },
        auth: AuthSettings::issued_by(&issuer.jwks_url(), &issuer.issuer_url(), DEFAULT_AUDIENCE),
        gitea: GiteaSettings::sudo(&gitea.url(), SERVICE_TOKEN),
        api: ApiSettings::default(),
        idle: IdleSettings {
            healthz_url: code_servers.url_template(),
            ..args.idle.settings()
        },
        capacity: args.capacity.settings(),
        // NB: the seed's immediate delete, as `serve` without DELETE_RETENTION.
        delete_retention: Duration::ZERO,
        gate: front.gate.clone(),
        addrs: Addresses {
            api: format!("127.0.0.1:{}", args.port),
            metrics: format!("127.0.0.1:{}", args.metrics_port),
            ext_authz: format!("127.0.0.1:{}", args.ext_authz_port),
        },
        grace: Duration::from_secs(5),
    })
    .await?;
    let token = |user: &str, roles: &[&str]| {
        issuer
            .mint(
                &TokenSpec::new(user)
                    .roles(roles)
                    .expires_in(TOKEN_LIFETIME_SECS),
            )
            .map_err(DemoError::Issuer)
    };
    let tokens = [
        ("alice", token("alice", &[])?),
        ("bob", token("bob", &[])?),
        ("admin", token("admin", &["admin"])?),
    ];
    println!(
        "{}",
        banner(
            args,
            &sim.url(),
            &gitea.url(),
            &issuer.jwks_url(),
            &tokens,
            &front.door
        )
    );
    started.run().await?;
    drop(code_servers);
    drop(front);
    Ok(())
}

/// The demo's front door: a gateway with TLS that routes the API host to the API and the
/// workspace hosts to a code-server stand-in, asking the service about every workspace
/// request (one CUSTOM policy, as `k8s/` sets Istio up), and the issuer's login client.
struct Front {
    _gateway: Gateway,
    _code_server: CodeServer,
    gate: GateSettings,
    door: Door,
}

/// Where the demo's front door is, for the banner.
struct Door {
    /// The gateway's port.
    port: u16,
    /// The workspaces' domain.
    base_domain: String,
    /// The API's public URL (through the gateway).
    public: String,
}

async fn front(args: &DemoArgs, issuer: &Issuer, base_domain: &str) -> Result<Front, DemoError> {
    let gateway_error = |source: Box<dyn std::error::Error + Send + Sync>| DemoError::Gateway {
        port: args.gateway_port,
        source,
    };
    let code_server = CodeServer::start()
        .await
        .map_err(|e| gateway_error(Box::new(e)))?;
    let api_host = format!("codeserver.{base_domain}");
    let loopback = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let gateway = Gateway::start(GatewayConfig {
        certificate_names: vec![api_host.clone(), format!("*.{base_domain}")],
        routes: vec![
            Route {
                hosts: vec![api_host.clone()],
                upstream: loopback(args.port),
            },
            Route {
                hosts: vec![format!("*.{base_domain}")],
                upstream: code_server.addr(),
            },
        ],
        custom_policy: Some(CustomPolicy {
            hosts: vec!["code-*".to_owned()],
            not_hosts: Vec::new(),
            provider: ExtAuthzHttp {
                path_prefix: EXT_AUTHZ_PREFIX.to_owned(),
                timeout: Duration::from_secs(2),
                status_on_error: 503,
                include_request_headers_in_check: names(&gate::CHECK_HEADERS),
                headers_to_upstream_on_allow: names(&gate::UPSTREAM_ON_ALLOW),
                headers_to_downstream_on_allow: names(&gate::DOWNSTREAM_ON_ALLOW),
                headers_to_downstream_on_deny: names(&gate::DOWNSTREAM_ON_DENY),
                ..ExtAuthzHttp::new(loopback(args.ext_authz_port))
            },
        }),
        listen_port: Some(args.gateway_port),
    })
    .await
    .map_err(|e| gateway_error(Box::new(e)))?;
    let public = format!("https://{api_host}:{}", gateway.port());
    let secret = random_hex();
    issuer.register_client(OidcClient {
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        client_secret: secret.clone(),
        redirect_uris: vec![format!("{public}/auth/callback")],
    });
    issuer.set_login_users(vec![
        TokenSpec::new("alice").expires_in(TOKEN_LIFETIME_SECS),
        TokenSpec::new("bob").expires_in(TOKEN_LIFETIME_SECS),
        TokenSpec::new("admin")
            .roles(&["admin"])
            .expires_in(TOKEN_LIFETIME_SECS),
    ]);
    let gate = GateSettings {
        public_url: public.parse().ok(),
        issuer: Some(issuer.issuer_url()),
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        client_secret: Some(Secret::new(secret)),
        session_keys: vec![Secret::new(random_hex())],
        base_domain: base_domain.to_owned(),
        ..GateSettings::default()
    };
    Ok(Front {
        door: Door {
            port: gateway.port(),
            base_domain: base_domain.to_owned(),
            public,
        },
        _gateway: gateway,
        _code_server: code_server,
        gate,
    })
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// 32 random bytes in hex: the demo's session key and client secret, new at every start.
fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the demo prints: where everything runs, the tokens and a first request.
fn banner(
    args: &DemoArgs,
    cluster: &str,
    gitea: &str,
    jwks: &str,
    tokens: &[(&str, String)],
    door: &Door,
) -> String {
    let api = format!("http://127.0.0.1:{}", args.port);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "codeserver-service demo: everything runs on 127.0.0.1\n"
    );
    let _ = writeln!(
        out,
        "  GraphQL API     {api}/graphql   (GraphiQL in a browser)"
    );
    let _ = writeln!(
        out,
        "  metrics         http://127.0.0.1:{}/metrics",
        args.metrics_port
    );
    let _ = writeln!(out, "  cluster (sim)   {cluster}");
    let _ = writeln!(out, "  Gitea (sim)     {gitea}");
    let _ = writeln!(out, "  JWKS            {jwks}");
    let _ = writeln!(
        out,
        "  logs (JSON)     {}   (warnings also on stderr)\n",
        log_file(args).display()
    );
    let _ = writeln!(out, "Repositories:");
    for repo in default_repos() {
        let visibility = if repo.private { "private" } else { "public" };
        let with = if repo.collaborators.is_empty() {
            String::new()
        } else {
            format!(", collaborators: {}", repo.collaborators.join(", "))
        };
        let _ = writeln!(out, "  {}/{} ({visibility}{with})", repo.owner, repo.name);
    }
    let _ = writeln!(out, "\nTokens (valid 12 hours; admin has the admin role):");
    for (user, token) in tokens {
        let _ = writeln!(out, "  export {}_TOKEN={token}", user.to_uppercase());
    }
    let query = r#"{"query":"mutation { provisionCodeServer(repoOwner: \"devteam\", repoName: \"backend-api\") { instance { id url status } message isNew } }"}"#;
    let _ = writeln!(out, "\nProvision alice's workspace:\n");
    let _ = writeln!(
        out,
        "  curl -s {api}/graphql -H \"Authorization: Bearer $ALICE_TOKEN\" -H 'Content-Type: application/json' \\\n    -d '{query}'"
    );
    let ws = api.replacen("http", "ws", 1);
    let _ = writeln!(
        out,
        "\nWatch one come up: provision with `wait: false` (it answers PENDING at once), then\n\
         subscribe to its id over graphql-transport-ws (here with websocat); PHASE, CLONE and\n\
         EVENT items follow until RUNNING:\n"
    );
    let _ = writeln!(
        out,
        r#"  ID='<instance id>'; printf '%s\n' '{{"type":"connection_init","payload":{{"token":"'"$ALICE_TOKEN"'"}}}}' '{{"id":"1","type":"subscribe","payload":{{"query":"subscription {{ codeServerEvents(id: \"'"$ID"'\") {{ kind status message at }} }}"}}}}' | websocat -n --protocol graphql-transport-ws {ws}/graphql"#
    );
    let port = door.port;
    let _ = writeln!(
        out,
        "\nOpen alice's workspace in a browser (after provisioning it):\n\n  https://code-alice.{domain}:{port}/\n\n\
         Every *.{domain} name resolves to 127.0.0.1 by itself (browsers and curl do this for\n\
         .localhost), and the gateway on port {port} serves a self-signed certificate: accept\n\
         the browser's warning (or curl -k). You log in at the demo's identity provider by\n\
         choosing a user (alice, bob or admin; no password); the service checks every request\n\
         and only alice reaches her workspace (bob gets \"not yours or not found\"). Log out at\n\
         {public}/auth/logout. Without a browser:\n\n\
         \x20 curl -sk -o /dev/null -w '%{{http_code}} %{{redirect_url}}\\n' -H 'Accept: text/html' https://code-alice.{domain}:{port}/\n\
         \x20 curl -sk -H \"Authorization: Bearer $ALICE_TOKEN\" https://code-alice.{domain}:{port}/",
        domain = door.base_domain,
        public = door.public,
    );
    let _ = writeln!(
        out,
        "\nIdle stop: instances nobody uses stop after IDLE_TIMEOUT={}s (PVC kept), showing\n\
         idleStopAt for the last IDLE_WARNING={}s; checked every {}s. For a short run:\n\
         \n  IDLE_TIMEOUT=60 IDLE_WARNING=45 IDLE_CHECK_INTERVAL=5 MAX_RUNNING_INSTANCES=2 make demo\n\
         \nthen ask for {{ myCodeServers {{ id status lastAccessedAt idleStopAt }} }}.",
        args.idle.idle_timeout, args.idle.idle_warning, args.idle.idle_check_interval
    );
    if args.capacity.max_running_instances > 0 {
        let _ = writeln!(
            out,
            "Capacity: at most {} instances run at once; one more is refused (CAPACITY_REACHED).",
            args.capacity.max_running_instances
        );
    }
    let _ = writeln!(out, "\nPress Ctrl-C to stop.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_has_the_addresses_tokens_and_a_curl_to_paste() {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([
            "codeserver-demo",
            "demo",
            "--port",
            "18082",
            "--metrics-port",
            "19092",
        ])
        .unwrap();
        let crate::Command::Demo(args) = cli.command else {
            panic!("not the demo command");
        };
        let tokens = [("alice", "a.b.c".to_owned()), ("admin", "d.e.f".to_owned())];
        let text = banner(
            &args,
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:3/certs",
            &tokens,
            &Door {
                port: 18443,
                base_domain: "localhost".to_owned(),
                public: "https://codeserver.localhost:18443".to_owned(),
            },
        );
        assert!(text.contains("http://127.0.0.1:18082/graphql"));
        assert!(text.contains("http://127.0.0.1:19092/metrics"));
        assert!(text.contains("export ALICE_TOKEN=a.b.c"));
        assert!(text.contains("export ADMIN_TOKEN=d.e.f"));
        assert!(text.contains("curl -s http://127.0.0.1:18082/graphql"));
        assert!(text.contains("provisionCodeServer"));
        assert!(text.contains(
            "| websocat -n --protocol graphql-transport-ws ws://127.0.0.1:18082/graphql"
        ));
        assert!(text.contains(r#"codeServerEvents(id: \"'"$ID"'\")"#));
        assert!(text.contains("devteam/backend-api (private, collaborators: alice, bob)"));
        assert!(!text.contains("0.0.0.0"), "everything stays on loopback");
        assert!(
            text.contains("https://code-alice.localhost:18443/"),
            "{text}"
        );
        assert!(
            text.contains("https://codeserver.localhost:18443/auth/logout"),
            "{text}"
        );
        assert!(
            text.contains(&format!("logs (JSON)     {}", log_file(&args).display())),
            "{text}"
        );
    }
}
