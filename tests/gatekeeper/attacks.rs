//! The attacks on the gate and the login: forged, expired and other-host cookies; ticket
//! replay, a ticket for another host or another browser; open redirects; a `sub` with
//! `/`; cross-site requests to `/auth/*`; a very long Host.

use reqwest::header;

use crate::{
    browse::{Jar, follow, host_of, location, navigate},
    front::{API_HOST, Front, epoch},
};

/// Whether `jar`'s cookies open `url` (200 from code-server) or not.
async fn opens(front: &Front, jar: &mut Jar, url: &str) -> bool {
    let answer = navigate(front, jar, url).await;
    match answer.status().as_u16() {
        200 => true,
        302 | 401 | 403 => false,
        other => panic!("unexpected {other} for {url}"),
    }
}

#[tokio::test]
async fn forged_expired_and_other_host_cookies_open_nothing() {
    let front = Front::start().await;
    front.provision("alice").await;
    front.provision("bob").await;
    let alice_url = front.workspace_url("alice", "/");
    let bob_url = front.workspace_url("bob", "/");
    let alice_host = host_of(&alice_url);
    let bob_host = host_of(&bob_url);
    let valid = front.workspace_cookie("alice", &alice_host, epoch(600));
    let mut jar = Jar::default();
    jar.set(&alice_host, "__Host-cs-workspace", &valid);
    assert!(
        opens(&front, &mut jar, &alice_url).await,
        "the genuine cookie opens"
    );

    let cases = [
        (
            "forged signature",
            alice_host.clone(),
            format!("{}x", &valid[..valid.len() - 1]),
        ),
        (
            "signed with an unknown key",
            alice_host.clone(),
            codeserver_service::gate::Seal::new(&[codeserver_service::config::Secret::new(
                "an-attackers-key-of-at-least-32-bytes-00",
            )])
            .unwrap()
            .unwrap()
            .seal(&codeserver_service::gate::WorkspaceSession::new(
                crate::front::principal("alice"),
                alice_host.clone(),
                epoch(600),
            ))
            .unwrap(),
        ),
        (
            "expired",
            alice_host.clone(),
            front.workspace_cookie("alice", &alice_host, epoch(-5)),
        ),
        // NB: alice's genuine cookie of her host, copied to bob's host.
        ("another host's", bob_host.clone(), valid.clone()),
        // NB: a genuine cookie of bob's host naming alice (cannot be made without the key,
        // but the check must still refuse alice on bob's workspace).
        (
            "alice's on bob's host",
            bob_host.clone(),
            front.workspace_cookie("alice", &bob_host, epoch(600)),
        ),
        (
            "a login cookie as a workspace cookie",
            alice_host.clone(),
            front.login_cookie("alice", epoch(600)),
        ),
    ];
    for (what, host, value) in cases {
        let mut jar = Jar::default();
        jar.set(&host, "__Host-cs-workspace", &value);
        let url = if host == alice_host {
            &alice_url
        } else {
            &bob_url
        };
        assert!(!opens(&front, &mut jar, url).await, "{what}");
    }
    assert!(
        front
            .code_server
            .requests()
            .iter()
            .all(|r| r.host.starts_with("code-alice"))
    );
}

/// Runs the login as `user` up to the ticket: the ticket URL and the jar at that point.
async fn ticket_for(front: &Front, user: &str, url: &str) -> (String, Jar) {
    let mut jar = Jar::default();
    let mut next = url.to_owned();
    for _ in 0..8 {
        let answer = if next.starts_with(&front.issuer.issuer_url()) {
            crate::browse::login_at_issuer(front, &next, user).await
        } else {
            navigate(front, &mut jar, &next).await
        };
        next = location(&answer);
        if next.contains("/__codeserver_auth/ticket?") {
            return (next, jar);
        }
    }
    panic!("no ticket on the way from {url}");
}

#[tokio::test]
async fn a_ticket_works_once_in_the_browser_that_asked_and_on_its_host_only() {
    let front = Front::start().await;
    front.provision("alice").await;
    front.provision("bob").await;
    let url = front.workspace_url("alice", "/");
    let (ticket, jar) = ticket_for(&front, "alice", &url).await;
    let host = host_of(&url);

    // Another browser (no hand-off secret) cannot use it.
    let mut other = Jar::default();
    let answer = navigate(&front, &mut other, &ticket).await;
    assert_eq!(answer.status(), 403);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("Login link not valid")
    );

    // Another browser that guessed a hand-off secret cannot either (the cookie's name is
    // no secret; its value is).
    let (handoff, secret) = jar.get_prefixed(&host, "__Host-cs-handoff-").unwrap();
    let mut guess = Jar::default();
    guess.set(
        &host,
        &handoff,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    assert_eq!(navigate(&front, &mut guess, &ticket).await.status(), 403);

    // The same ticket on bob's host: refused.
    let bob_ticket = ticket.replace("code-alice.", "code-bob.");
    let mut carried = jar.clone();
    let bob_host = host_of(&bob_ticket);
    carried.set(&bob_host, &handoff, &secret);
    assert_eq!(
        navigate(&front, &mut carried, &bob_ticket).await.status(),
        403
    );

    // The browser that asked: once.
    let mut mine = jar.clone();
    let answer = navigate(&front, &mut mine, &ticket).await;
    assert_eq!(answer.status(), 302);
    assert_eq!(location(&answer), url);
    assert!(mine.get(&host, "__Host-cs-workspace").is_some());
    let mut replay = mine.clone();
    replay
        .0
        .get_mut(&host)
        .unwrap()
        .remove("__Host-cs-workspace");
    assert_eq!(
        navigate(&front, &mut replay, &ticket).await.status(),
        403,
        "the hand-off secret is spent: the ticket cannot be used again"
    );
}

#[tokio::test]
async fn the_login_redirects_only_to_workspace_hosts_over_https() {
    let front = Front::start().await;
    let port = front.gateway.port();
    for rd in [
        "https://evil.example/".to_owned(),
        "//evil.example/".to_owned(),
        format!("http://code-alice.devplatform.local:{port}/"),
        format!("https://code-alice.devplatform.local.evil.example:{port}/"),
        format!("https://evil.example@code-alice.devplatform.local:{port}/"),
        format!("https://{API_HOST}:{port}/"),
        "https://devplatform.local/".to_owned(),
        "javascript:alert(1)".to_owned(),
        format!(
            "https://code-alice.devplatform.local:{port}/{}",
            "a".repeat(3000)
        ),
    ] {
        let mut login = url::Url::parse(&format!("{}/auth/login", front.public)).unwrap();
        login
            .query_pairs_mut()
            .append_pair("rd", &rd)
            .append_pair("h", &"A".repeat(43));
        let answer = front.client.get(login.as_str()).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{rd}");
        assert!(answer.headers().get(header::LOCATION).is_none(), "{rd}");
    }
    assert_eq!(front.issuer.authorization_requests(), 0);
}

#[tokio::test]
async fn a_sub_with_a_slash_owns_no_workspace() {
    let front = Front::start().await;
    front.provision("alice").await;
    let mut spec = codeserver_sim::issuer::TokenSpec::new("alice");
    spec.sub = "evil/sub-alice".into();
    let token = front.issuer.mint(&spec).unwrap();
    let answer = front
        .get_as(&front.workspace_url("alice", "/"), &token)
        .await;
    assert_eq!(answer.status(), 403);

    front.issuer.set_login_users(vec![spec]);
    let mut jar = Jar::default();
    let (visited, page) = follow(
        &front,
        &mut jar,
        &front.workspace_url("alice", "/"),
        "alice",
    )
    .await;
    assert_eq!(page.status(), 403, "{visited:#?}");
    assert!(page.text().await.unwrap().contains("Login refused"));
    assert!(jar.get(API_HOST, "__Host-cs-session").is_none());
}

#[tokio::test]
async fn cross_site_requests_to_the_login_routes_change_nothing() {
    let front = Front::start().await;
    front.provision("alice").await;
    let url = front.workspace_url("alice", "/");
    // A callback with a code and state the browser never asked for (login CSRF).
    let (ticket_url, _) = ticket_for(&front, "alice", &url).await;
    let _ = ticket_url;
    let forged = format!(
        "{}/auth/callback?code=attackers-code&state=attackers-state",
        front.public
    );
    let mut victim = Jar::default();
    let answer = navigate(&front, &mut victim, &forged).await;
    assert_eq!(answer.status(), 400);
    assert!(victim.get(API_HOST, "__Host-cs-session").is_none());
    let tokens = front.issuer.token_requests();
    assert_eq!(tokens, 1, "the forged callback never reached the issuer");

    // A logout posted from another site, and a logout link: nothing ends.
    let mut jar = Jar::default();
    let (_, page) = follow(&front, &mut jar, &url, "alice").await;
    assert_eq!(page.status(), 200);
    let logout = format!("{}/auth/logout", front.public);
    for origin in [Some("https://evil.example"), None] {
        let mut request = front
            .client
            .post(&logout)
            .header(header::COOKIE, jar.header(&logout).unwrap());
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 403, "{origin:?}");
        assert!(answer.headers().get(header::SET_COOKIE).is_none());
    }
    let answer = navigate(&front, &mut jar, &logout).await;
    assert_eq!(answer.status(), 200);
    assert!(
        jar.get(API_HOST, "__Host-cs-session").is_some(),
        "a GET shows a button only"
    );
}

#[tokio::test]
async fn hostile_hosts_and_paths_are_refused_by_the_check() {
    let front = Front::start().await;
    front.provision("alice").await;
    let alice = front.token("alice");
    for host in [
        format!("code-{}.devplatform.local", "a".repeat(5000)),
        "code-alice.devplatform.local.evil.example".to_owned(),
        "code-alice.devplatform.local:443:1".to_owned(),
        API_HOST.to_owned(),
    ] {
        let answer = front.check("/ext-authz/", &host, &alice).await;
        assert_eq!(answer.status(), 403, "{}", &host[..host.len().min(80)]);
    }
    // NB: a path outside the provider's prefix is never allowed.
    let answer = front
        .check("/other", "code-alice.devplatform.local", &alice)
        .await;
    assert_eq!(answer.status(), 403);
    // NB: an upper-case host with the gateway's port is the same workspace.
    let answer = front
        .check("/ext-authz/", "CODE-ALICE.DevPlatform.Local:443", &alice)
        .await;
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn when_the_service_cannot_be_asked_the_gateway_fails_closed() {
    let mut front = Front::start().await;
    front.provision("alice").await;
    let url = front.workspace_url("alice", "/");
    let alice = front.token("alice");
    let open = front.get_as(&url, &alice).await;
    assert_eq!(open.status(), 200);
    front.stop_checks().await;
    let closed = front.get_as(&url, &alice).await;
    assert_eq!(closed.status(), 503, "statusOnError, never through");
    assert_eq!(front.code_server.requests().len(), 1);
}

#[tokio::test]
async fn an_id_token_for_another_client_or_without_the_logins_nonce_is_refused() {
    use codeserver_service::auth::{AuthError, AuthSettings, Authenticator};
    let front = Front::start().await;
    let issuer = &front.issuer;
    let auth = Authenticator::new(AuthSettings::issued_by(
        &issuer.jwks_url(),
        &issuer.issuer_url(),
        "the-api",
    ))
    .unwrap();
    // NB: the simulated issuer's minted tokens carry no nonce.
    let for_us = issuer
        .mint(&codeserver_sim::issuer::TokenSpec::new("alice").audience(crate::front::CLIENT_ID))
        .unwrap();
    assert!(matches!(
        auth.verify_id_token(&for_us, crate::front::CLIENT_ID, "the-nonce")
            .await,
        Err(AuthError::WrongNonce)
    ));
    let for_others = issuer
        .mint(&codeserver_sim::issuer::TokenSpec::new("alice").audience("another-client"))
        .unwrap();
    assert!(matches!(
        auth.verify_id_token(&for_others, crate::front::CLIENT_ID, "the-nonce")
            .await,
        Err(AuthError::WrongAudience)
    ));
    let hs256 = issuer
        .mint_hs256(
            &codeserver_sim::issuer::TokenSpec::new("alice").audience(crate::front::CLIENT_ID),
            b"a-shared-secret-of-at-least-32-bytes-long",
        )
        .unwrap();
    assert!(matches!(
        auth.verify_id_token(&hs256, crate::front::CLIENT_ID, "the-nonce")
            .await,
        Err(AuthError::DisallowedAlgorithm { .. })
    ));
}
