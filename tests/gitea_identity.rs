//! Issue 21, item 3: in `GITEA_AUTH_MODE=sudo` the service acts (Gitea's `Sudo`) only as the
//! Gitea account that is provably the caller's. Each test attacks through GraphQL: a token
//! naming (`preferred_username`) an account linked to another `sub`, a site admin, a
//! restricted or inactive account is refused with FORBIDDEN and no `Sudo` call as that
//! account; the linked owner still works, the verdict is kept (one lookup for several
//! requests), and where accounts are linked by email a verified email links them.

#[path = "support/world.rs"]
mod world;

use std::{sync::Arc, time::Duration};

use codeserver_service::{gitea::LinkBy, metrics::Metrics, serve};
use codeserver_sim::{
    Sim, SimOptions,
    gitea::{SERVICE_USER, SimGitea, SimUser},
    issuer::{DEFAULT_AUDIENCE, Issuer, TokenSpec},
};
use serde_json::{Value, json};
use world::{World, error_of, ok, serving};

const REPOS: &str = "{ myRepositories { owner name } }";

/// `token`'s answer to [`REPOS`].
async fn repos(w: &World, token: &str) -> Value {
    w.gql(token, REPOS, json!({})).await
}

/// The full names in an answer to [`REPOS`].
fn names(body: &Value) -> Vec<String> {
    ok(body, "myRepositories")
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["owner"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Asserts `body` is the refusal: FORBIDDEN, `repository access denied`.
fn assert_refused(body: &Value) {
    assert_eq!(
        error_of(body),
        ("repository access denied", "FORBIDDEN"),
        "{body}"
    );
    assert!(body["data"]["myRepositories"].is_null(), "{body}");
}

/// A token whose `preferred_username` names `account` but whose `sub` is `sub`.
fn naming(w: &World, account: &str, sub: &str) -> String {
    w.issuer
        .mint(&TokenSpec {
            sub: sub.to_owned(),
            ..TokenSpec::new(account)
        })
        .unwrap()
}

#[tokio::test]
async fn a_token_naming_an_account_linked_to_another_sub_is_refused_without_sudo() {
    let w = World::start().await;
    // mallory's own token, with bob's username: bob's private repository must stay
    // invisible, and Gitea is never asked as bob.
    let mallory_as_bob = naming(&w, "bob", "sub-mallory");
    let body = repos(&w, &mallory_as_bob).await;
    assert_refused(&body);
    assert_eq!(
        body["errors"][0]["extensions"]["reason"],
        "the gitea account \"bob\" is linked to another identity",
        "the refusal says why: {body}"
    );
    assert!(!body.to_string().contains("secret-project"), "{body}");
    let provision = w.provision(&mallory_as_bob, "bob", "secret-project").await;
    assert_eq!(
        error_of(&provision),
        ("repository access denied", "FORBIDDEN"),
        "{provision}"
    );
    assert!(w.pvc("workspace-bob").is_none());
    assert_eq!(
        w.gitea.sudo_logins(),
        Vec::<String>::new(),
        "no Sudo as bob"
    );
    // An account no identity provider created (a local one with the same sign-in name)
    // is not bob's either.
    w.gitea
        .add_account(SimUser::local("carol").login_name("sub-carol"));
    assert_refused(&repos(&w, &w.token("carol")).await);
    assert!(w.gitea.sudo_logins().is_empty());
}

#[tokio::test]
async fn site_admin_accounts_are_never_acted_as() {
    let w = World::start().await;
    // An admin linked to the caller's own sub: still refused.
    w.gitea.add_account(SimUser::linked("root").admin());
    assert_refused(&repos(&w, &w.token("root")).await);
    // The install's admin (a local account, the service's own).
    assert_refused(&repos(&w, &w.token(SERVICE_USER)).await);
    // The platform admin role changes nothing about Gitea.
    assert_refused(&repos(&w, &w.admin_token("root")).await);
    assert!(
        w.gitea.sudo_logins().is_empty(),
        "{:?}",
        w.gitea.sudo_logins()
    );
}

#[tokio::test]
async fn restricted_inactive_and_prohibited_accounts_are_refused() {
    let w = World::start().await;
    w.gitea.add_account(SimUser::linked("rita").restricted());
    w.gitea.add_account(SimUser::linked("ina").inactive());
    w.gitea.add_account(SimUser::linked("pat").prohibit_login());
    for user in ["rita", "ina", "pat"] {
        assert_refused(&repos(&w, &w.token(user)).await);
    }
    assert!(
        w.gitea.sudo_logins().is_empty(),
        "{:?}",
        w.gitea.sudo_logins()
    );
}

#[tokio::test]
async fn the_linked_owner_is_asked_as_and_the_verdict_is_kept() {
    let w = World::start().await;
    let alice = w.token("alice");
    let before = w.gitea.requests();
    let body = repos(&w, &alice).await;
    let first = names(&body);
    assert!(first.contains(&"alice/notes".to_owned()), "{first:?}");
    assert!(
        !first.contains(&"bob/secret-project".to_owned()),
        "{first:?}"
    );
    let first_calls = w.gitea.requests() - before;
    // A second request (a new token of the same caller) costs no lookup.
    let again = w.token("alice");
    let before = w.gitea.requests();
    assert_eq!(names(&repos(&w, &again).await), first);
    let second_calls = w.gitea.requests() - before;
    assert_eq!(w.gitea.user_lookups(), 1, "one lookup for two requests");
    assert_eq!(
        first_calls,
        second_calls + 2,
        "the first request also checked GITEA_TOKEN and looked alice up"
    );
    assert!(w.gitea.sudo_logins().iter().all(|l| l == "alice"));
    // A refusal is kept too: mallory asking twice is looked up once.
    let mallory_as_bob = naming(&w, "bob", "sub-mallory");
    assert_refused(&repos(&w, &mallory_as_bob).await);
    assert_refused(&repos(&w, &mallory_as_bob).await);
    assert_eq!(w.gitea.user_lookups(), 2);
}

const SECRET: &str = "a-shared-secret-of-at-least-32-bytes";

/// The service in front of the simulated Gitea with accounts linked by `link_by`, taking
/// HS256 tokens (so a test can write any claims, `email_verified` among them).
struct EmailWorld {
    issuer: Arc<Issuer>,
    gitea: SimGitea,
    base: String,
    client: reqwest::Client,
    _sim: Sim,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl EmailWorld {
    async fn start(link_by: LinkBy) -> Self {
        codeserver_service::install_crypto();
        let issuer = Arc::new(Issuer::start().await.unwrap());
        let gitea = SimGitea::start(issuer.clone()).await.unwrap();
        let sim = Sim::start_with(SimOptions::default()).await.unwrap();
        let reconciler = world::reconciler(&sim).build();
        let mut parts =
            serving::simulated_parts(reconciler, &issuer, &gitea.url(), Metrics::new().unwrap());
        parts.gitea.link_by = link_by;
        parts.gitea.backoff = Duration::from_millis(5);
        parts.auth.jwt_secret = Some(SECRET.to_owned());
        let (base, stop) = serving::serve_routes(serve::assemble(parts).unwrap()).await;
        Self {
            issuer,
            gitea,
            base,
            client: reqwest::Client::new(),
            _sim: sim,
            _stop: stop,
        }
    }

    /// An HS256 token for `user` with Keycloak's claims and `email`/`email_verified`.
    fn token(&self, user: &str, sub: &str, email: &str, verified: Value) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({
            "sub": sub, "preferred_username": user, "email": email,
            "email_verified": verified, "iss": self.issuer.issuer_url(),
            "aud": DEFAULT_AUDIENCE, "iat": now, "nbf": now, "exp": now + 600,
            "realm_access": {"roles": []},
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    async fn repos(&self, token: &str) -> Value {
        let (status, body) = serving::post_graphql(
            &self.client,
            &self.base,
            Some(token),
            &json!({"query": REPOS}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

#[tokio::test]
async fn where_accounts_are_linked_by_email_a_verified_email_links_them() {
    let w = EmailWorld::start(LinkBy::Email).await;
    // erin registered in Gitea herself and signs in to the platform with the same email.
    w.gitea
        .add_account(SimUser::local("erin").email("erin@corp.example"));
    let verified = w.token("erin", "kc-0a1b", "Erin@corp.example", json!(true));
    let body = w.repos(&verified).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(w.gitea.sudo_logins(), ["erin"]);
    // Unverified (or not JSON true), or another email: refused, no Sudo.
    for (email, flag) in [
        ("erin@corp.example", json!(false)),
        ("erin@corp.example", json!("true")),
        ("eve@corp.example", json!(true)),
    ] {
        let token = w.token("erin", "kc-0a1b", email, flag.clone());
        assert_refused(&w.repos(&token).await);
    }
    assert_eq!(w.gitea.sudo_logins(), ["erin"], "only the verified caller");
    // The link by sub holds in this mode too.
    let alice = w.token("alice", "sub-alice", "other@corp.example", json!(false));
    assert!(w.repos(&alice).await["errors"].is_null());

    // Where accounts are linked by sub only, the verified email links nothing.
    let w = EmailWorld::start(LinkBy::Sub).await;
    w.gitea
        .add_account(SimUser::local("erin").email("erin@corp.example"));
    let verified = w.token("erin", "kc-0a1b", "erin@corp.example", json!(true));
    assert_refused(&w.repos(&verified).await);
    assert!(w.gitea.sudo_logins().is_empty());
}
