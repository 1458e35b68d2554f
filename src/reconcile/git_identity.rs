//! The owner's git identity in their workspace: an Ed25519 SSH key registered to the
//! owner's **own** Gitea account (as the owner: `Sudo` after the account-link check, or
//! their forwarded token), so that `git push` from the workspace terminal works with their
//! own permissions, and a gitconfig with their commit identity.
//!
//! The private key lives in the instance's own Secret (`git-identity-<name>`), apart from
//! the read-only deploy keys, and the templates mount it read-only into the code-server
//! container only. The Secret holds `id_ed25519` (and `.pub`), Gitea's pinned
//! `known_hosts` (values' `gitClone.knownHosts`) and `gitconfig`, which the container reads
//! as git's system config (`GIT_CONFIG_SYSTEM`): `core.sshCommand` names the key and the
//! pinned hosts, `user.name`/`user.email` come from the token's claims. Being the system
//! level, anything the user sets in `~/.gitconfig` or a repository wins.
//!
//! The key is made on the owner's first provision or start (it needs the owner's token;
//! an admin's or the self-healing's start leaves it for later) and recorded, without the
//! private key, on the Secret and the PVC (`devplatform.io/git-identity`: fingerprint,
//! creation time, Gitea's key id and account), so reads make no call. Rotation registers
//! the new key before the old one is removed; delete removes the key from Gitea (as the
//! owner, or with the service's site-admin token in sudo mode) and the Secret.
//!
//! NB: like the deploy-key Secret, this one is written by code and never rendered: dry runs
//! and the render command must never show a private key.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::{
    ByteString,
    api::core::v1::{PersistentVolumeClaim, Secret},
};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

use super::{
    Error, Reconciler, Result, apply, cached::Written, credentials::SECRET, live::identity, sshkey,
    with_retry,
};
use crate::{
    gitea::{AuthMode, Caller, GiteaClient},
    instance::{
        Instance,
        git_identity::{ANNOTATION_GIT_IDENTITY, IdentityRecord, recorded, recorded_in},
        record,
    },
    naming,
    values::{Owner, Values},
};

/// Where the templates mount the identity Secret in the code-server container.
pub const GIT_IDENTITY_MOUNT: &str = "/etc/git-identity";
/// The label naming the instance an identity Secret serves.
pub const LABEL_GIT_IDENTITY_OF: &str = "devplatform.io/git-identity-of";

const PRIVATE_KEY: &str = "id_ed25519";
const PUBLIC_KEY: &str = "id_ed25519.pub";
const KNOWN_HOSTS: &str = "known_hosts";
const GITCONFIG: &str = "gitconfig";

fn recorded_on_secret(secret: &Secret) -> Option<IdentityRecord> {
    recorded_in(&secret.metadata)
}

impl Reconciler {
    /// Makes sure the instance of `values` has its owner's git identity (when
    /// `gitIdentity.enabled` and Gitea is configured): an existing Secret gets its
    /// gitconfig and known_hosts brought up to date; a missing one is made when `owner`
    /// carries their token. The identity, if any. Gitea failing to take the key is logged
    /// and leaves the workspace without one until its next start: a workspace that cannot
    /// push is still one its owner can use.
    pub(super) async fn ensure_git_identity(
        &self,
        values: &Values,
        owner: &Owner,
    ) -> Result<Option<IdentityRecord>> {
        let Some(gitea) = self.gitea.as_ref().filter(|_| values.git_identity) else {
            return Ok(None);
        };
        let name = &values.instance.git_identity;
        let existing = self.secret(name, true).await?;
        if let Some(secret) = &existing {
            super::credentials::check_secret_owner(values, secret, name)?;
            if let Some(found) = recorded_on_secret(secret) {
                self.refresh_identity_files(values, owner, secret).await?;
                return Ok(Some(found));
            }
        }
        let Some(token) = owner.gitea_token.as_ref() else {
            tracing::info!(instance = %values.instance.id, "no git identity yet: it is made when its owner provisions or starts it");
            return Ok(None);
        };
        let caller = Caller {
            username: &owner.user_id,
            token: Some(token.expose()),
        };
        match self
            .make_identity(gitea, values, owner, &caller, existing.as_ref())
            .await
        {
            Ok(made) => Ok(Some(made)),
            Err(Error::Gitea(error)) => {
                tracing::warn!(instance = %values.instance.id, error = %crate::errors::error_chain(&error), "Gitea did not take the workspace's git identity; trying again at its next start");
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// A new key registered to the caller's Gitea account and written to the Secret
    /// (over `existing`'s version, so that a concurrent writer's key is not lost: the
    /// loser removes its own key from Gitea again).
    async fn make_identity(
        &self,
        gitea: &GiteaClient,
        values: &Values,
        owner: &Owner,
        caller: &Caller<'_>,
        existing: Option<&Secret>,
    ) -> Result<IdentityRecord> {
        let now = Timestamp::now();
        let title = key_title(&values.instance.id, now);
        let created = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let pair = sshkey::generate(&format!("codeserver-service {}", values.instance.id));
        let key = gitea.add_user_key(caller, &title, &pair.public).await?;
        let made = IdentityRecord {
            fingerprint: pair.fingerprint.clone(),
            created_at: created.to_string(),
            key_id: key.id,
            account: owner.user_id.clone(),
        };
        if key.fingerprint != made.fingerprint && !key.fingerprint.is_empty() {
            tracing::warn!(ours = %made.fingerprint, gitea = %key.fingerprint, "Gitea shows another fingerprint for the key it took");
        }
        let secret = identity_secret(values, owner, &made, &pair);
        match self.write_identity(values, secret, existing).await {
            Ok(()) => Ok(made),
            Err(error) => {
                if let Err(undo) = gitea.remove_user_key(caller, key.id).await {
                    tracing::error!(key_id = key.id, error = %undo, "a git identity key added for a failed write could not be removed");
                }
                Err(error)
            }
        }
    }

    /// Writes the identity Secret: created when there is none, else applied over the
    /// version `existing` has (a 409 when someone wrote since).
    async fn write_identity(
        &self,
        values: &Values,
        mut secret: Secret,
        existing: Option<&Secret>,
    ) -> Result<()> {
        let name = values.instance.git_identity.clone();
        let api = self.secrets();
        let written = match existing {
            None => {
                let params = PostParams {
                    field_manager: Some(naming::FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                with_retry("create the git identity Secret", || {
                    api.create(&params, &secret)
                })
                .await
            }
            Some(existing) => {
                secret.metadata.resource_version = existing.metadata.resource_version.clone();
                let params = PatchParams::apply(naming::FIELD_MANAGER).force();
                let patch = Patch::Apply(&secret);
                with_retry("apply the git identity Secret", || {
                    api.patch(&name, &params, &patch)
                })
                .await
            }
        };
        match written {
            Ok(written) => {
                self.secret_written(&name, &written).await;
                Ok(())
            }
            Err(e) => Err(Error::kube(&format!("write Secret/{name}"), e)),
        }
    }

    /// Brings the gitconfig and known_hosts of an existing identity Secret up to date
    /// (a new email, a new Gitea host key); the key stays.
    async fn refresh_identity_files(
        &self,
        values: &Values,
        owner: &Owner,
        secret: &Secret,
    ) -> Result<()> {
        let data = secret.data.clone().unwrap_or_default();
        let wanted = [
            (GITCONFIG, gitconfig(owner)),
            (KNOWN_HOSTS, known_hosts(values)),
        ];
        let stale = wanted
            .iter()
            .any(|(key, text)| data.get(*key).map(|b| b.0.as_slice()) != Some(text.as_bytes()));
        if !stale {
            return Ok(());
        }
        let mut updated = secret.clone();
        let mut data = data;
        for (key, text) in wanted {
            data.insert(key.to_owned(), ByteString(text.into_bytes()));
        }
        updated.data = Some(data);
        updated.metadata.managed_fields = None;
        updated.metadata.creation_timestamp = None;
        updated.metadata.uid = None;
        self.write_identity(values, updated, Some(secret)).await
    }

    /// Records `identity` on the PVC `pvc_name` when it is not recorded there yet.
    pub(super) async fn record_git_identity(
        &self,
        pvc: Option<&PersistentVolumeClaim>,
        pvc_name: &str,
        identity: Option<&IdentityRecord>,
    ) {
        let Some(identity) = identity else {
            return;
        };
        if pvc.and_then(recorded).as_ref() == Some(identity) {
            return;
        }
        let json = serde_json::to_string(identity).unwrap_or_default();
        let patch =
            serde_json::json!({"metadata": {"annotations": {ANNOTATION_GIT_IDENTITY: json}}});
        if let Err(error) = self.record_lifecycle(pvc_name, &patch).await {
            tracing::warn!(pvc = pvc_name, %error, "failed to record the git identity on the instance");
        }
    }

    /// Replaces the git identity of the caller's instance `id`: the new key is registered
    /// to their Gitea account before the old one is removed. Only the owner (with their
    /// token) can: the key goes to their account.
    pub async fn rotate_git_identity(&self, owner: &Owner, id: &str) -> Result<Instance> {
        let (_, key) = identity(owner)?;
        let guard = self.locks.lock(&key).await;
        let pvc = self.owned_record(owner, id).await?;
        let owner = record::caller(owner, Some(&pvc));
        let Some(gitea) = self.gitea.as_ref() else {
            return Err(Error::Forbidden(
                "git identities need Gitea, which is not configured".to_owned(),
            ));
        };
        let values = crate::render::build_values(
            &self.templates.get(),
            &self.settings,
            &owner,
            &record::repos(Some(&pvc)),
            &[],
        )?;
        if !values.git_identity {
            return Err(Error::Forbidden(
                "git identities are turned off (gitIdentity.enabled in values.yaml)".to_owned(),
            ));
        }
        let Some(token) = owner.gitea_token.as_ref() else {
            return Err(Error::Forbidden(
                "only the instance's owner can rotate its git identity: the key is registered to their Gitea account".to_owned(),
            ));
        };
        let caller = Caller {
            username: &owner.user_id,
            token: Some(token.expose()),
        };
        let existing = self.secret(&values.instance.git_identity, false).await?;
        if let Some(secret) = &existing {
            super::credentials::check_secret_owner(&values, secret, &values.instance.git_identity)?;
        }
        let old = existing.as_ref().and_then(recorded_on_secret);
        let made = self
            .make_identity(gitea, &values, &owner, &caller, existing.as_ref())
            .await?;
        if let Some(old) = old {
            self.remove_registered_key(gitea, &old, Some(&caller))
                .await?;
        }
        let pvc_name = pvc.metadata.name.clone().unwrap_or_default();
        self.record_git_identity(Some(&pvc), &pvc_name, Some(&made))
            .await;
        drop(guard);
        self.get(&owner, id).await
    }

    /// Removes the git identity of the instance named `safe_name` (its key from Gitea,
    /// then the Secret), for a delete. `owner` is the caller acting (their token, if it is
    /// the owner's, removes the key in forward mode).
    pub(super) async fn remove_git_identity(&self, owner: &Owner, safe_name: &str) -> Result<()> {
        let name = naming::git_identity_name(safe_name);
        let Some(secret) = self.secret(&name, true).await? else {
            return Ok(());
        };
        if let (Some(gitea), Some(found)) = (&self.gitea, recorded_on_secret(&secret)) {
            let token = owner.gitea_token.as_ref().map(|t| t.expose());
            let caller = token.map(|token| Caller {
                username: &owner.user_id,
                token: Some(token),
            });
            let caller = caller.filter(|_| owner.user_id == found.account);
            self.remove_registered_key(gitea, &found, caller.as_ref())
                .await?;
        }
        let what = format!("delete Secret/{name}");
        let deleted =
            apply::delete_if_present(&self.secrets(), &name, &DeleteParams::default(), &what)
                .await
                .map_err(|e| Error::kube(&what, e))?;
        let ns = &self.settings.namespace;
        self.written(SECRET, ns, &name, Written::of_delete(&deleted))
            .await;
        Ok(())
    }

    /// Removes the registered key of `identity` from Gitea: with the service's site-admin
    /// token in sudo mode, else as `caller` (the owner). Without either (forward mode, an
    /// admin acting) the key stays in the owner's account, logged (its title names the
    /// instance).
    async fn remove_registered_key(
        &self,
        gitea: &GiteaClient,
        identity: &IdentityRecord,
        caller: Option<&Caller<'_>>,
    ) -> Result<()> {
        let removed = match (gitea.auth_mode(), caller) {
            (AuthMode::Sudo, _) => {
                gitea
                    .remove_user_key_as_admin(&identity.account, identity.key_id)
                    .await
            }
            (AuthMode::Forward, Some(caller)) => {
                gitea.remove_user_key(caller, identity.key_id).await
            }
            (AuthMode::Forward, None) => {
                tracing::warn!(account = %identity.account, key_id = identity.key_id, "the git identity key stays in its owner's Gitea account: only they can remove it in forward mode");
                return Ok(());
            }
        };
        removed.map_err(Error::Gitea)
    }
}

/// The identity Secret of `values`' instance with `pair`.
fn identity_secret(
    values: &Values,
    owner: &Owner,
    made: &IdentityRecord,
    pair: &sshkey::KeyPair,
) -> Secret {
    let data = BTreeMap::from([
        (
            PRIVATE_KEY.to_owned(),
            ByteString(pair.private.clone().into_bytes()),
        ),
        (
            PUBLIC_KEY.to_owned(),
            ByteString(format!("{}\n", pair.public).into_bytes()),
        ),
        (
            KNOWN_HOSTS.to_owned(),
            ByteString(known_hosts(values).into_bytes()),
        ),
        (
            GITCONFIG.to_owned(),
            ByteString(gitconfig(owner).into_bytes()),
        ),
    ]);
    super::credentials::owned_secret(
        values,
        &values.instance.git_identity,
        LABEL_GIT_IDENTITY_OF,
        (
            ANNOTATION_GIT_IDENTITY,
            serde_json::to_string(made).unwrap_or_default(),
        ),
        data,
    )
}

/// The most characters Gitea takes in a key title (`CreateKeyOption.Title`,
/// `binding:"Required;MaxSize(50)"` in `modules/structs/user_key.go`).
const MAX_KEY_TITLE: usize = 50;

/// The key's title in Gitea: the instance id and the key's creation time (Unix seconds),
/// so that a rotation's key has a new one (Gitea refuses a title a user's key already has,
/// `ErrKeyNameAlreadyUsed`); the id is shortened to fit Gitea's limit.
fn key_title(id: &str, created: Timestamp) -> String {
    let stamp = format!(
        " {}.{:03}",
        created.as_second(),
        created.subsec_millisecond()
    );
    let room = MAX_KEY_TITLE.saturating_sub(stamp.len());
    let id: String = id.chars().take(room).collect();
    format!("{id}{stamp}")
}

/// Gitea's pinned host keys (values' `gitClone.knownHosts`).
fn known_hosts(values: &Values) -> String {
    let hosts = values
        .extra
        .pointer("/gitClone/knownHosts")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .trim();
    if hosts.is_empty() {
        String::new()
    } else {
        format!("{hosts}\n")
    }
}

/// The workspace's git system config: the key and the pinned hosts for SSH, and the
/// owner's commit identity from their token (`preferred_username`, `email`).
fn gitconfig(owner: &Owner) -> String {
    let key = format!("{GIT_IDENTITY_MOUNT}/{PRIVATE_KEY}");
    let hosts = format!("{GIT_IDENTITY_MOUNT}/{KNOWN_HOSTS}");
    let mut config = format!(
        "# The workspace's git identity, written by codeserver-service. This is git's system\n\
         # config: ~/.gitconfig and each repository's own config take precedence.\n\
         [core]\n\
         \tsshCommand = ssh -i {key} -o IdentitiesOnly=yes -o UserKnownHostsFile={hosts} -o StrictHostKeyChecking=yes\n\
         [user]\n\
         \tname = {}\n",
        quoted(&owner.user_id)
    );
    if let Some(email) = owner.email.as_deref().filter(|e| !e.is_empty()) {
        config.push_str(&format!("\temail = {}\n", quoted(email)));
    }
    config
}

/// `value` as a git config string: quoted, `"` and `\` escaped, control characters (a
/// newline would start a new setting) dropped.
fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_cannot_add_settings_to_the_gitconfig() {
        let owner = Owner {
            user_id: "eve\n[core]\n\tsshCommand = sh -c evil".to_owned(),
            email: Some("e@x\"\n[alias]\n\tco = !evil".to_owned()),
            sub: None,
            known_name: None,
            gitea_token: None,
        };
        let config = gitconfig(&owner);
        // Every setting is on its own line: the claims stay inside their quoted values.
        let settings: Vec<&str> = config
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(settings.len(), 5, "{config}");
        assert_eq!(settings[0], "[core]");
        assert!(settings[1].starts_with("sshCommand = ssh -i /etc/git-identity/id_ed25519"));
        assert_eq!(settings[2], "[user]");
        assert_eq!(
            settings[3],
            "name = \"eve[core]\tsshCommand = sh -c evil\"".replace('\t', "")
        );
        assert_eq!(
            settings[4],
            "email = \"e@x\\\"[alias]\tco = !evil\"".replace('\t', "")
        );
    }

    #[test]
    fn key_titles_fit_gitea_and_differ_per_rotation() {
        let t = Timestamp::from_second(1_765_143_600).unwrap();
        let long = format!("code-server-{}", "a".repeat(60));
        let title = key_title(&long, t);
        assert_eq!(title.chars().count(), MAX_KEY_TITLE, "{title}");
        assert!(title.ends_with(" 1765143600.000"), "{title}");
        let later = t.checked_add(jiff::SignedDuration::from_millis(1)).unwrap();
        assert_ne!(
            key_title("code-server-alice", t),
            key_title("code-server-alice", later)
        );
    }
}
