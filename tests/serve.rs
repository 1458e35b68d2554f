//! The binary's default command against the simulated cluster, Gitea and issuer: it becomes
//! ready, answers GraphQL and metrics, and exits cleanly on SIGTERM.

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use codeserver_service::sim::{
    Sim,
    gitea::{SERVICE_TOKEN, SimGitea},
    issuer::{DEFAULT_AUDIENCE, Issuer},
};
use serde_json::{Value, json};

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn serve_is_the_default_command_and_stops_on_sigterm() {
    codeserver_service::install_crypto();
    let sim = Sim::start().await.unwrap();
    let issuer = Arc::new(Issuer::start().await.unwrap());
    let gitea = SimGitea::start(issuer.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_yaml_ng::to_string(&sim.kubeconfig()).unwrap(),
    )
    .unwrap();
    let (port, metrics_port) = (free_port().await, free_port().await);

    let mut child = Command::new(env!("CARGO_BIN_EXE_codeserver-service"))
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
        .env("SHUTDOWN_TIMEOUT", "5")
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = client.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let token = issuer.token("alice", &[]).unwrap();
    let answer: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "mutation { provisionCodeServer(repoOwner: \"devteam\", repoName: \"docs\") { instance { id status } isNew } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["data"]["provisionCodeServer"]["instance"]["status"], "RUNNING",
        "{answer}"
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

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(status.success(), "{status}: {logs}");
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(!logs.contains(SERVICE_TOKEN), "GITEA_TOKEN is never logged");
    assert!(!logs.contains(&token), "the caller's token is never logged");
    for line in logs.lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
}
