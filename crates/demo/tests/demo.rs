//! The `demo` command as a new user runs it: the banner (addresses, tokens) alone on
//! stdout, the service's JSON logs in the file the banner names.

#[path = "../../../tests/support/eventually.rs"]
mod eventually;

use std::{process::Stdio, time::Duration};

use tokio::io::{AsyncBufReadExt, BufReader};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_demo_keeps_its_logs_off_the_banner() {
    codeserver_service::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("demo.log");
    let (port, metrics_port) = (free_port(), free_port());
    let (gateway_port, check_port) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_codeserver-demo"))
        .args(["demo", "--port", &port.to_string()])
        .args(["--metrics-port", &metrics_port.to_string()])
        .args(["--log-file", log.to_str().unwrap()])
        .args(["--gateway-port", &gateway_port.to_string()])
        .args(["--ext-authz-port", &check_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let read_banner = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let last = line.contains("Press Ctrl-C to stop.");
            banner.push(line);
            if last {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_banner)
        .await
        .expect("the demo prints its banner");
    let text = banner.join("\n");
    assert!(
        text.contains(&format!("logs (JSON)     {}", log.display())),
        "{text}"
    );
    // A GraphQL request is logged; the answer proves the server runs.
    let graphql = format!("http://127.0.0.1:{port}/graphql");
    let client = reqwest::Client::new();
    eventually::eventually(
        &format!("the demo serves {graphql}"),
        Duration::from_secs(5),
        || async {
            client
                .post(&graphql)
                .header("content-type", "application/json")
                .body(r#"{"query":"{ health }"}"#)
                .send()
                .await
                .ok()
        },
    )
    .await;
    eventually::eventually(
        &format!("JSON logs of the request in {}", log.display()),
        Duration::from_secs(5),
        || async {
            let logged = std::fs::read_to_string(&log).unwrap_or_default();
            logged
                .lines()
                .any(|l| l.starts_with('{') && l.contains("graphql request"))
                .then_some(())
        },
    )
    .await;
    // The workspace URL the banner gives goes through the gateway to the login.
    let workspace = format!("https://code-alice.localhost:{gateway_port}/");
    assert!(text.contains(&workspace), "{text}");
    let browser = reqwest::Client::builder()
        .resolve(
            "code-alice.localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], gateway_port)),
        )
        // NB: the demo's gateway serves a certificate it made at start.
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser
        .get(&workspace)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let to = answer.headers()["location"].to_str().unwrap();
    assert!(
        to.starts_with(&format!(
            "https://codeserver.localhost:{gateway_port}/auth/login?rd="
        )),
        "{to}"
    );
    child.start_kill().unwrap();
    while let Some(line) = lines.next_line().await.unwrap() {
        banner.push(line);
    }
    let _ = child.wait().await;
    assert!(
        !banner.iter().any(|l| l.trim_start().starts_with('{')),
        "no log line on stdout: {banner:?}"
    );
}
