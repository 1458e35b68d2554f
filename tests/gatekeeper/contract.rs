//! What the check answers, and what reaches code-server.

use reqwest::header;
use serde_json::Value;

use crate::{
    browse::{Jar, follow, host_of, location, navigate},
    front::{API_HOST, Front, FrontOptions, epoch},
};

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_the_login_and_a_client_gets_401() {
    let front = Front::start().await;
    front.provision("alice").await;
    let url = front.workspace_url("alice", "/some/file?x=1");
    let mut jar = Jar::default();
    let answer = navigate(&front, &mut jar, &url).await;
    assert_eq!(answer.status(), 302);
    let login = url::Url::parse(&location(&answer)).unwrap();
    assert_eq!(login.host_str(), Some(API_HOST));
    assert_eq!(login.path(), "/auth/login");
    let query: std::collections::BTreeMap<_, _> = login.query_pairs().into_owned().collect();
    assert_eq!(query["rd"], url);
    assert_eq!(query["h"].len(), 43);
    let host = host_of(&url);
    let (name, _) = jar
        .get_prefixed(&host, "__Host-cs-handoff-")
        .expect("the hand-off secret is kept by the workspace host");
    assert!(
        query["h"].starts_with(&name["__Host-cs-handoff-".len()..]),
        "{name}"
    );

    // NB: not a browser navigation: 401 with a JSON body and a challenge.
    let answer = front.client.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(
        answer.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"workspaces\""
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    let answer = front
        .client
        .post(&url)
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        401,
        "a POST is never redirected to a login"
    );
    assert!(
        front.code_server.requests().is_empty(),
        "nothing reached code-server"
    );
}

#[tokio::test]
async fn the_owner_logs_in_once_and_code_server_never_sees_the_session_or_a_token() {
    let front = Front::start().await;
    front.provision("alice").await;
    let url = front.workspace_url("alice", "/?folder=/home/coder");
    let mut jar = Jar::default();
    let (visited, page) = follow(&front, &mut jar, &url, "alice").await;
    assert_eq!(page.status(), 200, "{visited:#?}");
    assert_eq!(
        visited.last().unwrap(),
        &url,
        "back where the login started: {visited:#?}"
    );
    assert!(
        visited.iter().any(|u| u.contains("/auth/callback")),
        "{visited:#?}"
    );
    assert!(
        visited
            .iter()
            .any(|u| u.contains("/__codeserver_auth/ticket?t=")),
        "{visited:#?}"
    );
    assert!(page.text().await.unwrap().contains("Workspace code-alice"));
    assert_eq!(front.issuer.logins(), 1);
    let checks = |decision: &str| {
        front
            .metrics
            .workspace_checks
            .with_label_values(&[decision])
            .get()
    };
    assert_eq!(
        (checks("login"), checks("handoff"), checks("allowed")),
        (1, 1, 1),
        "{visited:#?}"
    );
    assert_eq!(
        front
            .metrics
            .workspace_logins
            .with_label_values(&["ok"])
            .get(),
        1
    );
    let host = host_of(&url);
    assert!(jar.get(&host, "__Host-cs-workspace").is_some());
    assert!(
        jar.get_prefixed(&host, "__Host-cs-handoff").is_none(),
        "the hand-off secret is spent"
    );
    assert!(jar.get(API_HOST, "__Host-cs-session").is_some());

    // NB: what reached code-server: no session cookie, no token; its own cookies pass.
    jar.set(&host, "vscode-tkn", "theirs");
    let answer = navigate(&front, &mut jar, &url).await;
    assert_eq!(answer.status(), 200);
    let seen = front.code_server.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.header("cookie"), Some("vscode-tkn=theirs"), "{last:?}");
    for request in &seen {
        assert!(request.header("authorization").is_none(), "{request:?}");
        assert!(
            request
                .header_values("cookie")
                .iter()
                .all(|c| !c.contains("__Host-cs")),
            "{request:?}"
        );
    }
    // NB: the header list the gateway was told to remove, straight from the check.
    let check = front
        .check("/ext-authz/", &host, &front.token("alice"))
        .await;
    assert_eq!(check.status(), 200);
    assert_eq!(
        check.headers()["x-envoy-auth-headers-to-remove"],
        "authorization,cookie"
    );
}

#[tokio::test]
async fn a_bearer_token_opens_the_owners_workspace_for_cli_tools() {
    let front = Front::start().await;
    front.provision("alice").await;
    let url = front.workspace_url("alice", "/healthz");
    let answer = front.get_as(&url, &front.token("alice")).await;
    assert_eq!(answer.status(), 200);
    let last = front.code_server.requests().pop().unwrap();
    assert_eq!(last.path, "/healthz");
    assert!(last.header("authorization").is_none(), "{last:?}");
    assert!(last.header("cookie").is_none(), "{last:?}");
}

#[tokio::test]
async fn anyone_else_gets_the_same_403_page_for_another_users_and_a_missing_workspace() {
    let front = Front::start().await;
    front.provision("alice").await;
    let bob = front.token("bob");
    let mut bodies = Vec::new();
    for safe in ["alice", "nobody"] {
        let answer = front.get_as(&front.workspace_url(safe, "/"), &bob).await;
        assert_eq!(answer.status(), 403);
        bodies.push(answer.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    assert!(
        bodies[0].contains("not yours or not found"),
        "{}",
        bodies[0]
    );
    assert!(front.code_server.requests().is_empty());
}

#[tokio::test]
async fn admins_open_other_workspaces_only_when_allowed() {
    for allowed in [false, true] {
        let front = Front::start_with(FrontOptions {
            admin_access: allowed,
            ..FrontOptions::default()
        })
        .await;
        front.provision("alice").await;
        let root = front.issuer.token("root", &["admin"]).unwrap();
        let answer = front
            .get_as(&front.workspace_url("alice", "/"), &root)
            .await;
        assert_eq!(answer.status(), if allowed { 200 } else { 403 });
    }
}

#[tokio::test]
async fn a_workspace_being_deleted_or_deleted_is_closed() {
    let front = Front::start().await;
    front.provision("alice").await;
    let alice = front.token("alice");
    let url = front.workspace_url("alice", "/");
    let open = front.get_as(&url, &alice).await;
    assert_eq!(open.status(), 200);
    let owner = codeserver_service::values::Owner {
        sub: Some("sub-alice".into()),
        ..codeserver_service::values::Owner::new("alice")
    };
    front
        .reconciler
        .delete(&owner, "code-server-alice")
        .await
        .unwrap();
    let closed = front.get_as(&url, &alice).await;
    assert_eq!(closed.status(), 403);
}

#[tokio::test]
async fn an_expired_workspace_cookie_is_renewed_without_a_new_login() {
    let front = Front::start().await;
    front.provision("alice").await;
    let url = front.workspace_url("alice", "/");
    let host = host_of(&url);
    let mut jar = Jar::default();
    jar.set(
        API_HOST,
        "__Host-cs-session",
        &front.login_cookie("alice", epoch(3600)),
    );
    jar.set(
        &host,
        "__Host-cs-workspace",
        &front.workspace_cookie("alice", &host, epoch(-1)),
    );
    let (visited, page) = follow(&front, &mut jar, &url, "alice").await;
    assert_eq!(page.status(), 200, "{visited:#?}");
    assert_eq!(
        front.issuer.authorization_requests(),
        0,
        "no new login at the issuer: {visited:#?}"
    );
    assert_eq!(
        visited.len(),
        4,
        "workspace, login, ticket, workspace: {visited:#?}"
    );
}

#[tokio::test]
async fn logout_ends_the_login_and_the_workspace_session() {
    let front = Front::start().await;
    front.provision("alice").await;
    let url = front.workspace_url("alice", "/");
    let mut jar = Jar::default();
    let (_, page) = follow(&front, &mut jar, &url, "alice").await;
    assert_eq!(page.status(), 200);
    let logout = format!("{}/auth/logout", front.public);
    let confirm = navigate(&front, &mut jar, &logout).await;
    assert_eq!(confirm.status(), 200);
    assert!(confirm.text().await.unwrap().contains("id=\"logout\""));
    let answer = front
        .client
        .post(&logout)
        .header(header::ORIGIN, &front.public)
        .header(header::COOKIE, jar.header(&logout).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    jar.keep(&logout, &answer);
    assert!(jar.get(API_HOST, "__Host-cs-session").is_none());
    let (visited, done) = follow(&front, &mut jar, &location(&answer), "alice").await;
    assert_eq!(done.status(), 200, "{visited:#?}");
    assert!(done.text().await.unwrap().contains("logged out"));
    assert!(
        jar.get(&host_of(&url), "__Host-cs-workspace").is_none(),
        "{visited:#?}"
    );
    let again = navigate(&front, &mut jar, &url).await;
    assert_eq!(
        again.status(),
        302,
        "logged out: the workspace asks for a login again"
    );
}

#[tokio::test]
async fn the_api_serves_while_the_issuer_is_down_and_logins_say_why_they_cannot_start() {
    let front = Front::start_with(FrontOptions {
        issuer_url: Some("http://127.0.0.1:1/realms/devplatform".into()),
        ..FrontOptions::default()
    })
    .await;
    front.provision("alice").await;
    let mut jar = Jar::default();
    let url = front.workspace_url("alice", "/");
    let to_login = navigate(&front, &mut jar, &url).await;
    let login = navigate(&front, &mut jar, &location(&to_login)).await;
    assert_eq!(login.status(), 503);
    assert!(
        login
            .text()
            .await
            .unwrap()
            .contains("identity provider cannot be reached")
    );
    let ready: serde_json::Value = front
        .client
        .get(format!("{}/ready", front.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        ready["degraded"][0]
            .as_str()
            .unwrap()
            .starts_with("workspace login:"),
        "{ready}"
    );
    assert_eq!(
        front
            .get_as(&front.workspace_url("alice", "/"), &front.token("alice"))
            .await
            .status(),
        200,
        "bearer access does not need the issuer's discovery"
    );
}

#[tokio::test]
async fn logins_started_in_two_tabs_both_finish() {
    let front = Front::start().await;
    front.provision("alice").await;
    let mut jar = Jar::default();
    let first_tab = front.workspace_url("alice", "/first");
    let second_tab = front.workspace_url("alice", "/second");
    let first = location(&navigate(&front, &mut jar, &first_tab).await);
    let second = location(&navigate(&front, &mut jar, &second_tab).await);
    // NB: the second tab finishes first; the first tab's hand-off secret is still there.
    let (visited, page) = follow(&front, &mut jar, &second, "alice").await;
    assert_eq!(page.status(), 200, "{visited:#?}");
    assert_eq!(visited.last().unwrap(), &second_tab);
    let (visited, page) = follow(&front, &mut jar, &first, "alice").await;
    assert_eq!(page.status(), 200, "{visited:#?}");
    assert_eq!(visited.last().unwrap(), &first_tab);
    assert_eq!(
        front.issuer.logins(),
        1,
        "the second finished on the first's login"
    );
}
