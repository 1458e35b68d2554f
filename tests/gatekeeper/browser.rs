//! A real browser (Debian's Chromium, driven through ChromeDriver over WebDriver) opens a
//! workspace through the gateway stand-in with TLS: alice logs in at the simulated issuer
//! and lands on her workspace, an expired workspace cookie is renewed without a new login,
//! logout ends the session, and bob's browser gets the 403 page. `make test` installs
//! Chromium and ChromeDriver (`make browser`).

use std::{process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::front::{DOMAIN, Front};

/// ChromeDriver on a free loopback port; stopped when dropped.
struct ChromeDriver {
    url: String,
    _child: Child,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (make browser installs Debian's chromium-driver)");
        // NB: ChromeDriver says when it listens; no polling.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("chromedriver exited before it started");
            if line.contains("started successfully") {
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ChromeDriver {
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
        }
    }

    /// A new browser with its own profile (cookies), resolving every workspace host and
    /// the API host to the gateway on loopback.
    async fn browser(&self) -> Client {
        let capabilities = json!({
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1"),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

/// The element `locator` finds, once the page shows it (after a navigation started by a
/// click, the old page may still be shown for a moment).
async fn element(browser: &Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(locator)
        .await
        .unwrap_or_else(|e| panic!("{locator:?}: {e}"))
}

async fn text(browser: &Client, id: &str) -> String {
    element(browser, Locator::Id(id))
        .await
        .text()
        .await
        .unwrap()
}

/// Waits for the page whose title heading is `title`.
async fn page_titled(browser: &Client, title: &str) {
    let xpath = format!("//h1[@id='title' and normalize-space()='{title}']");
    element(browser, Locator::XPath(&xpath)).await;
}

async fn click(browser: &Client, id: &str) {
    element(browser, Locator::Id(id))
        .await
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_opens_its_workspace_renews_and_logs_out_and_another_gets_403() {
    let front = Front::start().await;
    front.provision("alice").await;
    let driver = ChromeDriver::start().await;
    let url = front.workspace_url("alice", "/?folder=/home/coder/docs");

    // alice opens her URL, logs in, lands on her workspace.
    let alice = driver.browser().await;
    alice.goto(&url).await.unwrap();
    click(&alice, "login-alice").await;
    assert_eq!(text(&alice, "workspace").await, "Workspace code-alice");
    assert_eq!(alice.current_url().await.unwrap().as_str(), url);
    assert_eq!(front.issuer.logins(), 1);

    // An expired workspace cookie is renewed by redirects, with no new login. NB: a
    // browser drops a cookie at its Max-Age, so expiry is its absence here; an expired
    // cookie that is still sent is `contract::an_expired_workspace_cookie_is_renewed…`.
    let session = alice.get_named_cookie("__Host-cs-workspace").await.unwrap();
    assert!(session.http_only().unwrap_or(false) && session.secure().unwrap_or(false));
    assert_eq!(
        session.domain(),
        Some(format!("code-alice.{DOMAIN}").as_str())
    );
    alice.delete_cookie("__Host-cs-workspace").await.unwrap();
    alice.goto(&url).await.unwrap();
    assert_eq!(text(&alice, "workspace").await, "Workspace code-alice");
    assert_eq!(
        front.issuer.authorization_requests(),
        1,
        "renewed without the issuer"
    );

    // Logout ends both sessions: the workspace asks for a login again.
    alice
        .goto(&front.workspace_url("alice", "/__codeserver_auth/logout"))
        .await
        .unwrap();
    click(&alice, "logout").await;
    page_titled(&alice, "Logged out").await;
    alice.goto(&url).await.unwrap();
    text(&alice, "login-alice").await;
    assert_eq!(front.issuer.authorization_requests(), 2);
    alice.close().await.unwrap();

    // bob logs in and is refused alice's workspace.
    let bob = driver.browser().await;
    bob.goto(&url).await.unwrap();
    click(&bob, "login-bob").await;
    page_titled(&bob, "Not yours or not found").await;
    assert!(
        front
            .code_server
            .requests()
            .iter()
            .all(|r| r.header("cookie").is_none_or(|c| !c.contains("__Host-cs"))),
        "code-server never saw a session cookie"
    );
    bob.close().await.unwrap();
}
