//! The `demo` command: the whole service on 127.0.0.1 with no cluster. It starts the
//! simulated cluster, a simulated Gitea with a few users and repositories, a token issuer
//! with a freshly generated key, and the real server; then prints tokens for two users and
//! an admin, a `curl` to paste and how to watch an instance come up.

use std::{fmt::Write as _, path::PathBuf, sync::Arc, time::Duration};

use clap::Args;
use codeserver_service::{
    activity::IdleSettings,
    auth::AuthSettings,
    config::{CapacityArgs, IdleArgs, InstanceArgs},
    gate::GateSettings,
    gitea::GiteaSettings,
    http::ApiSettings,
    rate_limit::Rate,
    reconcile::Timeouts,
    serve::{self, Addresses, ServeError, Service},
};
use codeserver_sim::{
    Sim, SimError, SimOptions,
    gitea::{SERVICE_TOKEN, SimGitea, SimGiteaError, default_repos},
    issuer::{DEFAULT_AUDIENCE, Issuer, IssuerError, TokenSpec},
};

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
        gate: GateSettings::default(),
        addrs: Addresses {
            api: format!("127.0.0.1:{}", args.port),
            metrics: format!("127.0.0.1:{}", args.metrics_port),
            ext_authz: "127.0.0.1:0".to_owned(),
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
        banner(args, &sim.url(), &gitea.url(), &issuer.jwks_url(), &tokens)
    );
    started.run().await?;
    drop(code_servers);
    Ok(())
}

/// What the demo prints: where everything runs, the tokens and a first request.
fn banner(
    args: &DemoArgs,
    cluster: &str,
    gitea: &str,
    jwks: &str,
    tokens: &[(&str, String)],
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
            text.contains(&format!("logs (JSON)     {}", log_file(&args).display())),
            "{text}"
        );
    }
}
