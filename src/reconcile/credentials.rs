//! Per-instance clone credentials, checked each time.
//!
//! No credential in a user pod is shared with another user: every instance has its own
//! Secret (`git-keys-<name>`) holding one read-only Gitea deploy key per repository it may
//! pull. The service adds the keys with its own token (`POST /repos/{owner}/{repo}/keys`,
//! `read_only`), records their Gitea ids on the Secret, and revokes them when a repository
//! is no longer pulled (the owner lost access) or the instance is deleted. Start, sync
//! and provision ask Gitea again, as the caller, whether each recorded repository may
//! still be read; one that may not is neither pulled nor keyed.
//!
//! NB: the Secret is written by code, never rendered from a template: dry runs and the
//! render CLI show templates' output, and private keys must not appear there. It carries
//! no instance label, so plans and prunes of the rendered objects never touch it; the
//! owner labels still guard it against being written for anyone else.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde::{Deserialize, Serialize};

use super::{
    Error, Reconciler, Result, apply,
    cached::{self, Written},
    live, sshkey, with_retry,
};
use crate::{
    gitea::{Caller, GiteaError},
    naming,
    values::{Owner, Repo, Values},
};

/// JSON map on the credentials Secret: key slot → the repository and Gitea's key id.
pub const ANNOTATION_DEPLOY_KEYS: &str = "devplatform.io/deploy-keys";
/// Label on the credentials Secret naming the instance it serves.
pub const LABEL_CREDENTIALS_OF: &str = "devplatform.io/credentials-of";

/// One deploy key the service added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct KeyEntry {
    /// `owner/name`.
    repo: String,
    /// Gitea's id of the key.
    id: u64,
}

/// Repositories checked in Gitea: those the owner may still read (with Gitea's current
/// URLs) and those they lost.
#[derive(Debug, Default)]
pub(super) struct Access {
    pub(super) lost: Vec<Repo>,
    pub(super) repos: Vec<Repo>,
}

impl Access {
    /// `owner/name` of each lost repository, for the answer.
    pub(super) fn lost_names(&self) -> Vec<String> {
        self.lost.iter().map(Repo::full_name).collect()
    }
}

impl Reconciler {
    /// Asks Gitea, as `owner`, about each of `repos`. Without a Gitea client every
    /// repository counts as readable.
    pub(super) async fn check_access(&self, owner: &Owner, repos: &[Repo]) -> Result<Access> {
        let Some(gitea) = &self.gitea else {
            return Ok(Access {
                lost: Vec::new(),
                repos: repos.to_vec(),
            });
        };
        let caller = Caller {
            username: &owner.user_id,
            token: owner.gitea_token.as_ref().map(|t| t.expose()),
        };
        let answers = futures::future::join_all(
            repos
                .iter()
                .map(|r| gitea.repository(&caller, &r.owner, &r.name)),
        )
        .await;
        let mut access = Access::default();
        for (recorded, answer) in repos.iter().zip(answers) {
            match answer {
                Ok(found) => access.repos.push(refreshed(recorded, &found)),
                Err(GiteaError::AccessDenied | GiteaError::InvalidName(_)) => {
                    tracing::info!(repo = %recorded.full_name(), "the owner lost access; not pulled");
                    access.lost.push(recorded.clone());
                    access.repos.push(recorded.clone());
                }
                Err(error) => return Err(Error::Gitea(error)),
            }
        }
        Ok(access)
    }

    /// Makes the instance's credentials Secret hold exactly one deploy key per repository
    /// git gets (`values.repos`): missing keys are added in Gitea, keys of repositories no
    /// longer pulled are revoked. Without a Gitea client nothing is done.
    pub(super) async fn ensure_keys(&self, values: &Values) -> Result<()> {
        // NB: the per-user lock is per replica; another replica writing the same Secret
        // at once makes our write fail (its keys, or ours, would be recorded nowhere),
        // so ours are revoked and the Secret read again.
        for pass in 0..MAX_KEY_WRITES {
            // NB: the first pass reads the Secret from the cache; a conflict (the API
            // server's 409, never the cache's say) means someone wrote first, so later
            // passes read it from the API server.
            if self.try_ensure_keys(values, pass == 0).await? {
                return Ok(());
            }
        }
        Err(Error::Instance(format!(
            "Secret/{} kept changing while its keys were written",
            values.instance.credentials
        )))
    }

    /// One pass of [`Self::ensure_keys`]: `false` when another writer changed the Secret
    /// first (the keys this pass added are revoked again).
    async fn try_ensure_keys(&self, values: &Values, cached: bool) -> Result<bool> {
        let Some(gitea) = &self.gitea else {
            return Ok(true);
        };
        let name = &values.instance.credentials;
        let api = self.secrets();
        let existing = self.secret(name, cached).await?;
        if let Some(secret) = &existing {
            check_secret_owner(values, secret, name)?;
        }
        // NB: the first writer claims the Secret with a create (labels only): a second
        // one gets a 409 and reads again, instead of both adding keys and the last write
        // recording only its own. The data is then written by apply, so that keys
        // dropped later are removed from it.
        let existing = match existing {
            Some(secret) => Some(secret),
            None => {
                let mut claim = credentials_secret(values, &BTreeMap::new(), BTreeMap::new());
                claim.metadata.annotations = None;
                claim.data = None;
                let params = PostParams {
                    field_manager: Some(naming::FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                match with_retry("create the credentials Secret", || {
                    api.create(&params, &claim)
                })
                .await
                {
                    Ok(created) => {
                        self.secret_written(name, &created).await;
                        Some(created)
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => return Ok(false),
                    Err(e) => {
                        return Err(Error::kube("create the instance's credentials", e));
                    }
                }
            }
        };
        let mut entries = recorded_keys(existing.as_ref());
        let mut data = existing
            .as_ref()
            .and_then(|s| s.data.clone())
            .unwrap_or_default();
        let wanted: BTreeMap<String, (&str, &str)> = values
            .repos
            .iter()
            .map(|r| (r.key.clone(), (r.owner.as_str(), r.name.as_str())))
            .collect();
        let mut changed = false;

        let stale: Vec<String> = entries
            .keys()
            .filter(|slot| !wanted.contains_key(*slot) || !data.contains_key(*slot))
            .cloned()
            .collect();
        for slot in stale {
            if let Some(entry) = entries.remove(&slot) {
                revoke(gitea, &entry).await?;
            }
            data.remove(&slot);
            changed = true;
        }
        data.retain(|slot, _| entries.contains_key(slot));

        let title = format!("{} {}", naming::FIELD_MANAGER, values.instance.id);
        let mut added = Vec::new();
        for (slot, (owner, repo)) in &wanted {
            if entries.contains_key(slot) {
                continue;
            }
            let pair = sshkey::generate(&title);
            match gitea
                .add_deploy_key(owner, repo, &title, &pair.public)
                .await
            {
                Ok(key) => {
                    let entry = KeyEntry {
                        repo: format!("{owner}/{repo}"),
                        id: key.id,
                    };
                    added.push(entry.clone());
                    entries.insert(slot.clone(), entry);
                    data.insert(slot.clone(), ByteString(pair.private.into_bytes()));
                    changed = true;
                }
                Err(error) => {
                    undo(gitea, &added).await;
                    return Err(Error::Gitea(error));
                }
            }
        }
        if !changed {
            return Ok(true);
        }
        let mut secret = credentials_secret(values, &entries, data);
        // NB: applied only over the version read: a concurrent writer's change is a 409,
        // never silently overwritten.
        secret.metadata.resource_version = existing.and_then(|s| s.metadata.resource_version);
        let params = PatchParams::apply(naming::FIELD_MANAGER).force();
        let patch = Patch::Apply(&secret);
        let written = with_retry("apply the credentials Secret", || {
            api.patch(name, &params, &patch)
        })
        .await;
        match written {
            Ok(secret) => {
                self.secret_written(name, &secret).await;
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                undo(gitea, &added).await;
                Ok(false)
            }
            Err(e) => {
                undo(gitea, &added).await;
                Err(Error::kube(&format!("write Secret/{name}"), e))
            }
        }
    }

    /// Revokes the keys of an instance whose owner lost every repository (`access`):
    /// nothing is pulled, so no key may stay.
    pub(super) async fn revoke_every_key(&self, owner: &Owner, access: &Access) -> Result<()> {
        let templates = self.templates.get();
        let mut values =
            crate::render::build_values(&templates, &self.settings, owner, &access.repos, &[])?;
        values.exclude(&access.lost);
        self.ensure_keys(&values).await
    }

    /// Revokes every deploy key of the instance named `safe_name` and deletes its
    /// credentials Secret (after the checks that the instance is the caller's).
    pub(super) async fn remove_keys(&self, safe_name: &str) -> Result<()> {
        let name = naming::credentials_name(safe_name);
        let api = self.secrets();
        let existing = self.secret(&name, true).await?;
        let Some(secret) = existing else {
            return Ok(());
        };
        if let Some(gitea) = &self.gitea {
            for entry in recorded_keys(Some(&secret)).values() {
                revoke(gitea, entry).await?;
            }
        }
        let what = format!("delete Secret/{name}");
        let params = DeleteParams::default();
        let deleted = apply::delete_if_present(&api, &name, &params, &what)
            .await
            .map_err(|e| Error::kube(&what, e))?;
        let ns = &self.settings.namespace;
        self.written(SECRET, ns, &name, Written::of_delete(&deleted))
            .await;
        Ok(())
    }

    /// The credentials Secret `name`: from the cache when `cached` and the cache of
    /// Secrets has synced, from the API server otherwise.
    pub(super) async fn secret(&self, name: &str, cached: bool) -> Result<Option<Secret>> {
        if let Some(caches) = self.cached_kind(SECRET).filter(|_| cached) {
            let held = caches
                .get(SECRET, name)
                .map_err(|e| Error::Instance(format!("read the cached Secrets: {e}")))?;
            return Ok(held.as_ref().and_then(cached::typed));
        }
        live::named(&self.secrets(), name)
            .await
            .map_err(|e| Error::kube("read the instance's credentials", e))
    }

    /// Waits until the cache shows the Secret `name` as a write answered it.
    pub(super) async fn secret_written(&self, name: &str, secret: &Secret) {
        if let Some(version) = secret.metadata.resource_version.clone() {
            let ns = &self.settings.namespace;
            self.written(SECRET, ns, name, Written::At(version)).await;
        }
    }

    pub(super) fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }
}

/// `recorded` with the owner, name and URLs Gitea gives now.
fn refreshed(recorded: &Repo, found: &crate::gitea::Repository) -> Repo {
    found.to_repo().unwrap_or_else(|error| {
        tracing::warn!(repo = %recorded.full_name(), %error, "gitea answered an unusable repository; the recorded one is kept");
        recorded.clone()
    })
}

/// The kind of the credentials Secret, as the caches name it.
pub(super) const SECRET: &str = "v1/Secret";

/// The deploy keys recorded on the credentials Secret.
fn recorded_keys(secret: Option<&Secret>) -> BTreeMap<String, KeyEntry> {
    secret
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(ANNOTATION_DEPLOY_KEYS))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

/// Revokes one deploy key in Gitea (a key already gone is fine).
async fn revoke(gitea: &crate::gitea::GiteaClient, entry: &KeyEntry) -> Result<()> {
    let Some((owner, repo)) = entry.repo.split_once('/') else {
        return Ok(());
    };
    gitea
        .remove_deploy_key(owner, repo, entry.id)
        .await
        .map_err(Error::Gitea)
}

/// Revokes keys added by a step that then failed, so that none is left behind unrecorded.
async fn undo(gitea: &crate::gitea::GiteaClient, added: &[KeyEntry]) {
    for entry in added {
        if let Err(error) = revoke(gitea, entry).await {
            tracing::error!(repo = %entry.repo, id = entry.id, error = %error, "a deploy key added for a failed step could not be revoked");
        }
    }
}

/// A Secret the service writes for `values`' instance: named `name`, labelled managed,
/// with the owner's labels (so that it is never written for anyone else) and `of` naming
/// the instance (no instance label: plans and prunes of the rendered objects never touch
/// it), with the one record `annotation` (key, JSON) and `data`.
pub(super) fn owned_secret(
    values: &Values,
    name: &str,
    of: &str,
    annotation: (&str, String),
    data: BTreeMap<String, ByteString>,
) -> Secret {
    let labels = BTreeMap::from([
        (
            naming::LABEL_MANAGED_BY.to_owned(),
            naming::MANAGED_BY_VALUE.to_owned(),
        ),
        (naming::LABEL_USER.to_owned(), values.user.name.clone()),
        (naming::LABEL_OWNER.to_owned(), values.user.owner.clone()),
        (of.to_owned(), values.instance.id.clone()),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(values.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(annotation.0.to_owned(), annotation.1)])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// `NameTaken` unless `secret` (named `name`) carries the labels of `values`' owner: a
/// Secret of another owner is never written over or used.
pub(super) fn check_secret_owner(values: &Values, secret: &Secret, name: &str) -> Result<()> {
    if live::labels_own(
        secret.metadata.labels.as_ref(),
        &values.user.name,
        &values.user.owner,
    ) {
        return Ok(());
    }
    tracing::warn!(secret = %name, "refused to write over or use another owner's Secret");
    Err(Error::NameTaken(format!(
        "Secret/{name} belongs to another owner"
    )))
}

/// How often [`Reconciler::ensure_keys`] reads and writes again after losing a race.
const MAX_KEY_WRITES: usize = 3;

/// The credentials Secret of `values`' instance with `entries` and their private keys.
fn credentials_secret(
    values: &Values,
    entries: &BTreeMap<String, KeyEntry>,
    data: BTreeMap<String, ByteString>,
) -> Secret {
    let entries = serde_json::to_string(entries).unwrap_or_else(|_| "{}".to_owned());
    owned_secret(
        values,
        &values.instance.credentials,
        LABEL_CREDENTIALS_OF,
        (ANNOTATION_DEPLOY_KEYS, entries),
        data,
    )
}
