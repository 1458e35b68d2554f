//! The binary's default command against the simulated cluster, Gitea and issuer: it becomes
//! ready, answers GraphQL and metrics, and exits cleanly on SIGTERM.

#[path = "support/eventually.rs"]
mod eventually;
#[path = "support/serving.rs"]
mod serving;

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::Arc,
    time::Duration,
};

use codeserver_sim::{
    Sim,
    gitea::{SERVICE_TOKEN, SimGitea},
    issuer::{DEFAULT_AUDIENCE, Issuer},
};
use serde_json::{Value, json};

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A kubeconfig file for `sim`, in a directory that lives as long as the returned guard.
fn kubeconfig_file(sim: &Sim) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_yaml_ng::to_string(&sim.kubeconfig()).unwrap(),
    )
    .unwrap();
    (dir, kubeconfig)
}

/// The binary with no environment but `envs`, Gitea's settings and a kubeconfig that
/// does not exist; it must refuse to start. Its output.
fn refused_start(envs: &[(&str, &str)]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_codeserver-service"))
        .env_clear()
        .env("GITEA_URL", "http://127.0.0.1:9")
        .env("GITEA_TOKEN", "t")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(!output.status.success());
    output
}

#[tokio::test]
async fn serve_is_the_default_command_and_stops_on_sigterm() {
    codeserver_service::install_crypto();
    let sim = Sim::start().await.unwrap();
    let issuer = Arc::new(Issuer::start().await.unwrap());
    let gitea = SimGitea::start(issuer.clone()).await.unwrap();
    let (_dir, kubeconfig) = kubeconfig_file(&sim);
    let (port, metrics_port) = (free_port().await, free_port().await);

    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_codeserver-service"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("METRICS_PORT", metrics_port.to_string())
        .env("KUBECONFIG", &kubeconfig)
        .env("GITEA_URL", gitea.url())
        .env("GITEA_TOKEN", SERVICE_TOKEN)
        .env("JWKS_URL", issuer.jwks_url())
        .env("JWT_ISSUER", issuer.issuer_url())
        .env("JWT_AUDIENCE", DEFAULT_AUDIENCE)
        .env("CODESERVER_TIMEOUT", "10")
        .env("ENVIRONMENT", "production")
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("METRICS_BIND_ADDRESS", "127.0.0.1")
        .env("SHUTDOWN_TIMEOUT", "5")
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually::until_status(
        &client,
        &format!("{base}/ready"),
        200,
        Duration::from_secs(30),
    )
    .await;

    let token = issuer.token("alice", &[]).unwrap();
    let (_, answer) = serving::post_graphql(
        &client,
        &base,
        Some(&token),
        &json!({"query": "mutation { provisionCodeServer(repoOwner: \"devteam\", repoName: \"docs\") { instance { id status } isNew } }"}),
    )
    .await;
    assert_eq!(
        answer["data"]["provisionCodeServer"]["instance"]["status"], "RUNNING",
        "{answer}"
    );
    // A forged token naming a 12 KB key id: refused, and the id is not logged whole.
    let forged = {
        use base64::Engine;
        let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let header = format!(
            r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#,
            "k".repeat(12_000)
        );
        format!("{}.{}.c2ln", b64(&header), b64(r#"{"sub":"mallory"}"#))
    };
    let (_, refused) = serving::post_graphql(
        &client,
        &base,
        Some(&forged),
        &json!({"query": "{ myCodeServers { id } }"}),
    )
    .await;
    assert_eq!(refused["errors"][0]["message"], "unauthorized", "{refused}");

    // Production: no GraphiQL page, no introspection.
    let page = client.get(format!("{base}/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    let (_, introspection) = serving::post_graphql(
        &client,
        &base,
        None,
        &json!({"query": "{ __schema { types { name } } }"}),
    )
    .await;
    assert_eq!(
        introspection["errors"][0]["extensions"]["code"], "INTROSPECTION_DISABLED",
        "{introspection}"
    );
    let metrics = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("codeserver_provision_duration_seconds_count{result=\"ok\"} 1"));
    assert!(
        metrics.contains(
            "codeserver_kube_requests_total{resource=\"pods\",result=\"ok\",verb=\"patch\"} 1"
        ),
        "{metrics}"
    );

    let pid = child.id().expect("the server runs").to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("an exit after SIGTERM")
        .unwrap();
    let status = output.status;
    let logs = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(status.success(), "{status}: {logs}");
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(logs.contains("caller not authenticated"), "{logs}");
    assert!(
        logs.contains(&"k".repeat(100)) && !logs.contains(&"k".repeat(201)),
        "the forged kid is logged cut to 200 characters"
    );
    assert!(
        logs.contains(&format!("\"api_addr\":\"127.0.0.1:{port}\""))
            && logs.contains(&format!("\"metrics_addr\":\"127.0.0.1:{metrics_port}\"")),
        "BIND_ADDRESS and METRICS_BIND_ADDRESS are used: {logs}"
    );
    assert!(!logs.contains("admin-token-never-logged"));
    assert!(!logs.contains(SERVICE_TOKEN), "GITEA_TOKEN is never logged");
    assert!(!logs.contains(&token), "the caller's token is never logged");
    for line in logs.lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
}

#[test]
fn a_short_jwt_secret_is_refused_at_start_with_one_line() {
    let output = refused_start(&[
        ("JWT_SECRET", "short-secret-never-shown"),
        ("LOG_LEVEL", "info"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = stderr.trim();
    assert_eq!(line.lines().count(), 1, "{stderr}");
    assert!(
        line.contains("JWT_SECRET is 24 bytes long; at least 32 bytes are required"),
        "{line}"
    );
    assert!(!stderr.contains("never-shown") && !stdout.contains("never-shown"));
}

#[test]
fn a_request_timeout_shorter_than_provisioning_is_refused_at_start() {
    let output = refused_start(&[("CODESERVER_TIMEOUT", "300"), ("REQUEST_TIMEOUT", "300")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("REQUEST_TIMEOUT (300s) must be longer than CODESERVER_TIMEOUT (300s)"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_limits_and_listen_settings() {
    let output = Command::new(env!("CARGO_BIN_EXE_codeserver-service"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for setting in [
        "BIND_ADDRESS",
        "METRICS_BIND_ADDRESS",
        "GRAPHIQL",
        "GRAPHQL_INTROSPECTION",
        "GRAPHQL_MAX_QUERY_SIZE",
        "GRAPHQL_MAX_ROOT_FIELDS",
        "GRAPHQL_MAX_MUTATIONS",
        "MAX_REQUESTS_PER_CALLER",
        "REQUEST_TIMEOUT",
        "HEADER_READ_TIMEOUT",
    ] {
        assert!(help.contains(setting), "--help lacks {setting}");
    }
}
