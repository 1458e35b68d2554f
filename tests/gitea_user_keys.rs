//! Users' own SSH keys in Gitea through the client, against the simulated Gitea: added as
//! the caller (Sudo, after the account-link check, or the caller's forwarded token) to
//! that user only, with Gitea's OpenSSH fingerprint; removed as the caller (gone is fine,
//! someone else's key is refused) or by the service as a site admin; a key registered once
//! (as a user or a deploy key) is refused again.

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    config::Secret,
    gitea::{AuthMode, Caller, GiteaClient, GiteaError, GiteaSettings, UserKey},
};
use codeserver_sim::{
    gitea::{SERVICE_TOKEN, SimGitea, personal_token},
    issuer::{Issuer, TokenSpec},
};
use serde_json::{Value, json};

/// A key made with `ssh-keygen -t ed25519 -N ''`, and its `ssh-keygen -lf` fingerprint.
const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO7swuuRLcPBM1aTQWvi7jhff1BQrFdzg3b1fvcjLqga alice@laptop";
const ALICE_FINGERPRINT: &str = "SHA256:kLULOaD/XGs4KXG6Xka91xA1AavkiCa60uDmgrTEPlc";
/// Another one.
const BOB_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID+XyLsy/bqGHHK1fGDV2a4JCPm7/a9U517S+h906s/V bob";
const BOB_FINGERPRINT: &str = "SHA256:Mdgy2tBeXTOKQO9+vSP7cC5AV4U1Au7hscnvowttPRE";

struct World {
    issuer: Arc<Issuer>,
    gitea: SimGitea,
    /// Sudo mode with the service's site admin token.
    client: GiteaClient,
    http: reqwest::Client,
}

impl World {
    async fn start() -> Self {
        let issuer = Arc::new(Issuer::start().await.unwrap());
        let gitea = SimGitea::start(issuer.clone()).await.unwrap();
        let client = sudo_client(&gitea.url(), SERVICE_TOKEN);
        codeserver_service::install_crypto();
        Self {
            issuer,
            gitea,
            client,
            http: reqwest::Client::new(),
        }
    }

    fn token(&self, user: &str) -> String {
        self.issuer.token(user, &[]).unwrap()
    }

    /// `GET /api/v1/user/keys` as `user` (the service token with Sudo): the status and body.
    async fn listed(&self, user: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/api/v1/user/keys", self.gitea.url()))
            .header("authorization", format!("token {SERVICE_TOKEN}"))
            .header("sudo", user)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// `POST /api/v1/user/keys` with `body` as `user`: the status and body.
    async fn post_key(&self, user: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/user/keys", self.gitea.url()))
            .header("authorization", format!("token {SERVICE_TOKEN}"))
            .header("sudo", user)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
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

fn forward_client(url: &str) -> GiteaClient {
    GiteaClient::new(GiteaSettings {
        backoff: Duration::from_millis(10),
        ..GiteaSettings::new(url)
    })
    .unwrap()
}

fn as_user<'a>(username: &'a str, token: &'a str) -> Caller<'a> {
    Caller {
        username,
        token: Some(token),
    }
}

fn ids(keys: &[codeserver_sim::gitea::SimUserKey]) -> Vec<u64> {
    keys.iter().map(|k| k.id).collect()
}

#[tokio::test]
async fn a_key_added_in_sudo_mode_is_the_callers_only_with_gitea_s_fingerprint() {
    let w = World::start().await;
    let alice = w.token("alice");
    let key: UserKey = w
        .client
        .add_user_key(&as_user("alice", &alice), "alice's laptop", ALICE_KEY)
        .await
        .unwrap();
    assert_eq!(key.fingerprint, ALICE_FINGERPRINT);
    assert_eq!(key.title, "alice's laptop");
    assert!(key.created_at.is_some());
    let stored = w.gitea.user_keys("alice");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (
            stored[0].id,
            stored[0].fingerprint.as_str(),
            stored[0].key.as_str()
        ),
        (key.id, ALICE_FINGERPRINT, ALICE_KEY)
    );
    assert_eq!(stored[0].title, "alice's laptop");
    assert!(w.gitea.user_keys("bob").is_empty());
    assert!(w.gitea.user_keys("gitea-admin").is_empty());
    assert_eq!(
        w.gitea.sudo_logins(),
        ["alice"],
        "added as alice, with Sudo"
    );
    // Gitea lists it to alice as hers, and nothing to bob.
    let (status, listed) = w.listed("alice").await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], key.id);
    assert_eq!(listed[0]["fingerprint"], ALICE_FINGERPRINT);
    assert_eq!(listed[0]["key_type"], "user");
    assert_eq!(listed[0]["user"]["login"], "alice");
    assert_eq!(w.listed("bob").await, (200, json!([])));
}

#[tokio::test]
async fn keys_are_removed_as_their_owner_and_gone_is_fine() {
    let w = World::start().await;
    let alice = w.token("alice");
    let alice = as_user("alice", &alice);
    let first = w
        .client
        .add_user_key(&alice, "one", ALICE_KEY)
        .await
        .unwrap();
    let second = w.client.add_user_key(&alice, "two", BOB_KEY).await.unwrap();
    assert_eq!(second.fingerprint, BOB_FINGERPRINT);
    assert_eq!(ids(&w.gitea.user_keys("alice")), [first.id, second.id]);
    w.client.remove_user_key(&alice, first.id).await.unwrap();
    assert_eq!(ids(&w.gitea.user_keys("alice")), [second.id]);
    let (_, listed) = w.listed("alice").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], second.id);
    // Already gone: fine, and nothing else is touched.
    w.client.remove_user_key(&alice, first.id).await.unwrap();
    w.client.remove_user_key(&alice, 999_999).await.unwrap();
    assert_eq!(ids(&w.gitea.user_keys("alice")), [second.id]);
    // A removed key may be added again.
    let again = w
        .client
        .add_user_key(&alice, "one", ALICE_KEY)
        .await
        .unwrap();
    assert_ne!(again.id, first.id);
}

#[tokio::test]
async fn a_user_cannot_remove_another_users_key() {
    let w = World::start().await;
    let alice = w.token("alice");
    let bob = w.token("bob");
    let key = w
        .client
        .add_user_key(&as_user("alice", &alice), "laptop", ALICE_KEY)
        .await
        .unwrap();
    // Gitea answers bob 403 "You do not have access to this key".
    assert!(matches!(
        w.client
            .remove_user_key(&as_user("bob", &bob), key.id)
            .await,
        Err(GiteaError::AccessDenied)
    ));
    // Forwarding bob's own token: the same.
    let forwarding = forward_client(&w.gitea.url());
    assert!(matches!(
        forwarding
            .remove_user_key(&as_user("bob", &bob), key.id)
            .await,
        Err(GiteaError::AccessDenied)
    ));
    assert_eq!(ids(&w.gitea.user_keys("alice")), [key.id]);
    // A token naming alice that is not alice's own is never acted as.
    let mallory = w
        .issuer
        .mint(&TokenSpec {
            sub: "sub-mallory".to_owned(),
            ..TokenSpec::new("alice")
        })
        .unwrap();
    assert!(matches!(
        w.client
            .remove_user_key(&as_user("alice", &mallory), key.id)
            .await,
        Err(GiteaError::NotLinked(_))
    ));
    assert!(matches!(
        w.client
            .add_user_key(&as_user("alice", &mallory), "evil", BOB_KEY)
            .await,
        Err(GiteaError::NotLinked(_))
    ));
    assert_eq!(ids(&w.gitea.user_keys("alice")), [key.id]);
    // alice herself, forwarding her token, may.
    forwarding
        .remove_user_key(&as_user("alice", &alice), key.id)
        .await
        .unwrap();
    assert!(w.gitea.user_keys("alice").is_empty());
    forwarding
        .remove_user_key(&as_user("alice", &alice), key.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_service_removes_a_users_key_as_site_admin() {
    let w = World::start().await;
    let alice = w.token("alice");
    let bob = w.token("bob");
    let alices = w
        .client
        .add_user_key(&as_user("alice", &alice), "laptop", ALICE_KEY)
        .await
        .unwrap();
    let bobs = w
        .client
        .add_user_key(&as_user("bob", &bob), "laptop", BOB_KEY)
        .await
        .unwrap();
    w.client
        .remove_user_key_as_admin("bob", bobs.id)
        .await
        .unwrap();
    assert!(w.gitea.user_keys("bob").is_empty());
    assert_eq!(ids(&w.gitea.user_keys("alice")), [alices.id]);
    // Gone, or a user Gitea does not know: fine.
    w.client
        .remove_user_key_as_admin("bob", bobs.id)
        .await
        .unwrap();
    w.client
        .remove_user_key_as_admin("nobody", alices.id)
        .await
        .unwrap();
    // alice's key is not bob's: Gitea refuses to delete it as bob.
    assert!(matches!(
        w.client.remove_user_key_as_admin("bob", alices.id).await,
        Err(GiteaError::AccessDenied)
    ));
    assert_eq!(ids(&w.gitea.user_keys("alice")), [alices.id]);
    // A username Gitea could not have: refused before any call.
    let before = w.gitea.requests();
    assert!(matches!(
        w.client
            .remove_user_key_as_admin("../alice", alices.id)
            .await,
        Err(GiteaError::InvalidName(_))
    ));
    assert_eq!(w.gitea.requests(), before);
    // A token that is no site admin's: a configuration error.
    let not_admin = sudo_client(&w.gitea.url(), &personal_token("bob"));
    assert!(matches!(
        not_admin.remove_user_key_as_admin("alice", alices.id).await,
        Err(GiteaError::ServiceRefused { status: 403, .. })
    ));
    // Without a service token there is no admin to act as.
    assert!(matches!(
        forward_client(&w.gitea.url())
            .remove_user_key_as_admin("alice", alices.id)
            .await,
        Err(GiteaError::NoServiceToken)
    ));
    w.client
        .remove_user_key_as_admin("alice", alices.id)
        .await
        .unwrap();
    assert!(w.gitea.user_keys("alice").is_empty());
}

#[tokio::test]
async fn a_key_registered_once_is_refused_again() {
    let w = World::start().await;
    let alice = w.token("alice");
    let bob = w.token("bob");
    w.client
        .add_user_key(&as_user("alice", &alice), "laptop", ALICE_KEY)
        .await
        .unwrap();
    // Again (another title, another comment), for alice or anyone else: 422, not retried.
    let same_key = ALICE_KEY.replace("alice@laptop", "other comment");
    let before = w.gitea.requests();
    assert!(matches!(
        w.client
            .add_user_key(&as_user("alice", &alice), "desktop", &same_key)
            .await,
        Err(GiteaError::UnexpectedStatus { status: 422, .. })
    ));
    assert_eq!(w.gitea.requests(), before + 1);
    assert!(matches!(
        w.client
            .add_user_key(&as_user("bob", &bob), "stolen", ALICE_KEY)
            .await,
        Err(GiteaError::UnexpectedStatus { status: 422, .. })
    ));
    assert_eq!(
        w.post_key("bob", json!({"title": "stolen", "key": ALICE_KEY}))
            .await,
        (
            422,
            json!({"message": "Key content has been used as non-deploy key", "url": ""})
        )
    );
    // Nor as a deploy key; and a deploy key's key is not a user key either.
    assert!(matches!(
        w.client
            .add_deploy_key("bob", "secret-project", "deploy", ALICE_KEY)
            .await,
        Err(GiteaError::UnexpectedStatus { status: 422, .. })
    ));
    assert!(w.gitea.deploy_keys().is_empty());
    w.client
        .add_deploy_key("bob", "secret-project", "deploy", BOB_KEY)
        .await
        .unwrap();
    assert!(matches!(
        w.client
            .add_user_key(&as_user("bob", &bob), "laptop", BOB_KEY)
            .await,
        Err(GiteaError::UnexpectedStatus { status: 422, .. })
    ));
    assert_eq!(w.gitea.user_keys("alice").len(), 1);
    assert!(w.gitea.user_keys("bob").is_empty());
}

#[tokio::test]
async fn gitea_refuses_a_missing_title_and_garbage_keys() {
    let w = World::start().await;
    let bob = w.token("bob");
    let cases = [
        (json!({"key": BOB_KEY}), "[Title]: Required"),
        (json!({"title": "", "key": BOB_KEY}), "[Title]: Required"),
        (json!({"title": "t"}), "[Key]: Required"),
        (
            json!({"title": "t", "key": "ssh-ed25519 not*base64 bob"}),
            "Invalid key content: extractTypeFromBase64Key: invalid key format: illegal base64 data at input byte 3",
        ),
        (
            json!({"title": "t", "key": BOB_KEY.replace("ssh-ed25519", "ssh-rsa")}),
            "Invalid key content: key type and content does not match: ssh-rsa - ssh-ed25519",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = w.post_key("bob", body.clone()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(answer["message"], message, "{body}");
    }
    assert!(matches!(
        w.client
            .add_user_key(&as_user("bob", &bob), "", BOB_KEY)
            .await,
        Err(GiteaError::UnexpectedStatus { status: 422, .. })
    ));
    assert!(matches!(
        w.client
            .add_user_key(&as_user("bob", &bob), "laptop", "not a key")
            .await,
        Err(GiteaError::UnexpectedStatus { status: 422, .. })
    ));
    assert!(w.gitea.user_keys("bob").is_empty());
}

#[tokio::test]
async fn a_forwarded_token_adds_to_its_own_user() {
    let w = World::start().await;
    let bob = w.token("bob");
    let forwarding = forward_client(&w.gitea.url());
    let key = forwarding
        .add_user_key(&as_user("bob", &bob), "laptop", BOB_KEY)
        .await
        .unwrap();
    assert_eq!(key.fingerprint, BOB_FINGERPRINT);
    assert_eq!(ids(&w.gitea.user_keys("bob")), [key.id]);
    assert!(w.gitea.user_keys("alice").is_empty());
    assert!(w.gitea.sudo_logins().is_empty());
    // Without a token there is nobody to forward.
    let before = w.gitea.requests();
    assert!(matches!(
        forwarding
            .add_user_key(
                &Caller {
                    username: "bob",
                    token: None
                },
                "t",
                ALICE_KEY
            )
            .await,
        Err(GiteaError::AccessDenied)
    ));
    assert_eq!(w.gitea.requests(), before);
}
