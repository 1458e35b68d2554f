//! A git identity per user, through GraphQL against the simulated cluster and Gitea: the
//! key registered to the owner's own Gitea account (Sudo after the link check, or their
//! forwarded token), its private half in the instance's own Secret and mounted only into
//! the code-server container, the registered public key matching the mounted private key,
//! the commit identity, rotation (new key registered, old one removed) and delete
//! cleaning up, and `gitIdentity.enabled: false` making and mounting nothing.

#[path = "support/mod.rs"]
mod support;
#[path = "support/world.rs"]
mod world;

use base64::{Engine, engine::general_purpose::STANDARD};
use codeserver_service::{gitea::AuthMode, naming};
use serde_json::{Value, json};
use world::{NS, World, error_of, ok};

const IDENTITY: &str = "id stopReason gitIdentity { fingerprint createdAt }";

async fn world_in(mode: AuthMode) -> World {
    World::builder().deploy_keys(mode).start().await
}

async fn provisioned(w: &World, token: &str) -> Value {
    let body = w
        .gql(
            token,
            &format!("mutation {{ provisionCodeServer(repoOwner: \"devteam\", repoName: \"backend-api\") {{ instance {{ {IDENTITY} }} }} }}"),
            json!({}),
        )
        .await;
    ok(&body, "provisionCodeServer")["instance"].clone()
}

fn secret(w: &World, name: &str) -> Option<Value> {
    w.sim().object("secrets", NS, name)
}

fn data(secret: &Value, key: &str) -> String {
    let encoded = secret["data"][key].as_str().unwrap_or_default();
    String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap()
}

/// A big-endian u32 of `buf` at `*at`, moving past it.
fn read_u32(buf: &[u8], at: &mut usize) -> u32 {
    let n = u32::from_be_bytes(buf[*at..*at + 4].try_into().unwrap());
    *at += 4;
    n
}

/// An SSH wire-format string of `buf` at `*at`, moving past it.
fn read_string(buf: &[u8], at: &mut usize) -> Vec<u8> {
    let len = read_u32(buf, at) as usize;
    let s = buf[*at..*at + len].to_vec();
    *at += len;
    s
}

/// The Ed25519 public key blob (`ssh-ed25519` wire format) of an unencrypted
/// `openssh-key-v1` private key file, derived from its private seed.
fn public_blob_of_private(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let bytes = STANDARD.decode(body).unwrap();
    let file = bytes.strip_prefix(b"openssh-key-v1\0".as_slice()).unwrap();
    let at = &mut 0;
    assert_eq!(read_string(file, at), b"none", "unencrypted");
    assert_eq!(read_string(file, at), b"none");
    assert_eq!(read_string(file, at), b"");
    assert_eq!(read_u32(file, at), 1, "one key");
    let _public = read_string(file, at);
    let block = read_string(file, at);
    // check1, check2, key type, public key, private (seed ++ public), comment.
    let at = &mut 8;
    assert_eq!(read_string(&block, at), b"ssh-ed25519");
    let _ = read_string(&block, at);
    let secret = read_string(&block, at);
    let seed: [u8; 32] = secret[..32].try_into().unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), public.as_slice()] {
        blob.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
        blob.extend_from_slice(part);
    }
    blob
}

fn blob_of_public_line(line: &str) -> Vec<u8> {
    let b64 = line.split_whitespace().nth(1).unwrap();
    STANDARD.decode(b64).unwrap()
}

/// Names of the containers of `pod` (under `list`) that mount volume `volume`, and those
/// that have the env var `env`.
fn mounting(pod: &Value, list: &str, volume: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["name"] == volume))
        })
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_workspace_pushes_with_a_key_registered_to_its_owner_only() {
    for mode in [AuthMode::Sudo, AuthMode::Forward] {
        let w = world_in(mode).await;
        let alice = w.token("alice");
        let instance = provisioned(&w, &alice).await;
        let id = instance["id"].as_str().unwrap().to_owned();
        let fingerprint = instance["gitIdentity"]["fingerprint"]
            .as_str()
            .unwrap_or_else(|| panic!("{mode:?}: {instance}"))
            .to_owned();
        assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");

        // Registered to alice's own account, once, titled with the instance.
        let keys = w.gitea.user_keys("alice");
        assert_eq!(keys.len(), 1, "{mode:?}: {keys:?}");
        assert_eq!(keys[0].fingerprint, fingerprint);
        assert!(keys[0].title.contains(&id), "{}", keys[0].title);
        assert!(w.gitea.user_keys("bob").is_empty());
        assert!(w.gitea.user_keys("gitea-admin").is_empty());

        // The mounted private key is the registered public key's.
        let name = naming::git_identity_name("alice");
        let s = secret(&w, &name).expect("the identity Secret");
        assert_eq!(
            public_blob_of_private(&data(&s, "id_ed25519")),
            blob_of_public_line(&keys[0].key),
            "{mode:?}: the private key in the workspace is the one Gitea knows"
        );
        // Not in the deploy keys' Secret, and never rendered (dry runs show no key).
        let deploy = secret(&w, &naming::credentials_name("alice")).unwrap();
        assert!(deploy["data"].get("id_ed25519").is_none());
        let render = w
            .query(
                Some(&alice),
                "{ renderCodeServer(repoOwner: \"devteam\", repoName: \"backend-api\") { manifests } }",
            )
            .await;
        let yaml = ok(&render, "renderCodeServer")["manifests"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!yaml.contains("PRIVATE KEY"), "no private key in a dry run");

        // Mounted into code-server only; git-clone, git-checkout and the sync Job never see it.
        let pod = w.pod(&id).unwrap();
        assert_eq!(
            mounting(&pod, "containers", "git-identity"),
            vec!["code-server"]
        );
        assert!(mounting(&pod, "initContainers", "git-identity").is_empty());
        let volume = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "git-identity")
            .unwrap()
            .clone();
        assert_eq!(volume["secret"]["secretName"], name.as_str());
        assert_eq!(
            volume["secret"]["defaultMode"], 288,
            "0440: read-only, user-readable"
        );
        let env = pod["spec"]["containers"][0]["env"].to_string();
        assert!(
            env.contains("GIT_CONFIG_SYSTEM") && env.contains("/etc/git-identity/gitconfig"),
            "{env}"
        );

        // The gitconfig pushes with the mounted key over the pinned hosts, as alice.
        let config = data(&s, "gitconfig");
        assert!(
            config.contains("sshCommand = ssh -i /etc/git-identity/id_ed25519"),
            "{config}"
        );
        assert!(
            config.contains("UserKnownHostsFile=/etc/git-identity/known_hosts"),
            "{config}"
        );
        assert!(config.contains("StrictHostKeyChecking=yes"), "{config}");
        assert!(config.contains("name = \"alice\""), "{config}");

        // A second provision keeps the key.
        let again = provisioned(&w, &alice).await;
        assert_eq!(again["gitIdentity"]["fingerprint"], fingerprint.as_str());
        assert_eq!(w.gitea.user_keys("alice").len(), 1);
    }
}

#[tokio::test]
async fn rotation_replaces_the_key_and_delete_removes_it_everywhere() {
    let w = world_in(AuthMode::Sudo).await;
    let alice = w.token("alice");
    let instance = provisioned(&w, &alice).await;
    let id = instance["id"].as_str().unwrap().to_owned();
    let old = instance["gitIdentity"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();

    // Nobody else can rotate it (another user's instance is not found).
    let rotate =
        "mutation($id: String!) { rotateGitIdentity(id: $id) { gitIdentity { fingerprint } } }";
    let bob = w.token("bob");
    assert_eq!(error_of(&w.on_id(&bob, rotate, &id).await).1, "NOT_FOUND");
    assert_eq!(w.gitea.user_keys("alice")[0].fingerprint, old);

    let body = w.on_id(&alice, rotate, &id).await;
    let new = ok(&body, "rotateGitIdentity")["gitIdentity"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    let keys = w.gitea.user_keys("alice");
    assert_eq!(
        keys.iter()
            .map(|k| k.fingerprint.clone())
            .collect::<Vec<_>>(),
        vec![new.clone()],
        "the old key is gone, the new one registered"
    );
    let s = secret(&w, &naming::git_identity_name("alice")).unwrap();
    assert_eq!(
        public_blob_of_private(&data(&s, "id_ed25519")),
        blob_of_public_line(&keys[0].key)
    );
    let shown = w
        .query(
            Some(&alice),
            &format!("{{ myCodeServers {{ {IDENTITY} }} }}"),
        )
        .await;
    assert_eq!(
        ok(&shown, "myCodeServers")[0]["gitIdentity"]["fingerprint"],
        new.as_str()
    );

    let delete = "mutation($id: String!) { deleteCodeServer(id: $id) }";
    ok(&w.on_id(&alice, delete, &id).await, "deleteCodeServer");
    assert!(w.gitea.user_keys("alice").is_empty(), "the key left Gitea");
    assert!(secret(&w, &naming::git_identity_name("alice")).is_none());
}

#[tokio::test]
async fn an_admin_deleting_someone_elses_instance_removes_their_key_too() {
    let w = world_in(AuthMode::Sudo).await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.gitea.user_keys("alice").len(), 1);
    let admin = w.admin_token("root");
    let delete = "mutation($id: String!) { deleteCodeServer(id: $id) }";
    ok(&w.on_id(&admin, delete, &id).await, "deleteCodeServer");
    assert!(w.gitea.user_keys("alice").is_empty());
}

#[tokio::test]
async fn turned_off_no_key_is_made_or_mounted() {
    let templates = support::templates::edited_templates(|d| {
        support::templates::replace_in(
            d,
            "values.yaml",
            "  enabled: true\n\npod:",
            "  enabled: false\n\npod:",
        );
    });
    let w = World::builder()
        .deploy_keys(AuthMode::Sudo)
        .templates(templates)
        .start()
        .await;
    let alice = w.token("alice");
    let instance = provisioned(&w, &alice).await;
    assert_eq!(instance["gitIdentity"], Value::Null);
    assert!(w.gitea.user_keys("alice").is_empty());
    let id = instance["id"].as_str().unwrap();
    let pod = w.pod(id).unwrap();
    assert!(mounting(&pod, "containers", "git-identity").is_empty());
    assert!(!pod.to_string().contains("GIT_CONFIG_SYSTEM"));
    let rotate = "mutation($id: String!) { rotateGitIdentity(id: $id) { id } }";
    let body = w.on_id(&alice, rotate, id).await;
    let (message, code) = error_of(&body);
    assert_eq!(code, "FORBIDDEN", "{body}");
    let reason = body["errors"][0]["extensions"]["reason"].to_string();
    assert!(
        reason.contains("gitIdentity.enabled"),
        "{message}: {reason}"
    );
}
