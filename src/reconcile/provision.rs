//! Provision and start: desired -> plan -> apply, then wait for the pod to settle.

use std::sync::Arc;

use kube::runtime::wait::{await_condition, conditions};

use super::{
    Error, Reconciler, Result, StartOptions,
    apply::{ApplyOptions, Updates},
    cached::Written,
    live::identity,
};
use crate::{
    instance::{Instance, InstanceStatus, record},
    render,
    values::{Owner, Repo},
};

/// What provision did.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The instance, with its status after waiting.
    pub instance: Instance,
    /// What happened, for people.
    pub message: String,
    /// True when the instance did not exist before.
    pub is_new: bool,
}

/// An answer and the recorded repositories that were not pulled because Gitea says the
/// owner may no longer read them (`owner/name`).
#[derive(Debug, Clone)]
pub struct Checked<T> {
    /// The answer.
    pub value: T,
    /// Repositories left out: not pulled, their deploy keys revoked.
    pub lost: Vec<String>,
}

impl Reconciler {
    /// Provision: ensure the owner's instance exists with `repo` in its workspace. A
    /// running instance gets the repository cloned in place, without a restart; a
    /// stopped one is started; a new one is created. Waits for readiness up to
    /// CODESERVER_TIMEOUT and answers STARTING if the time runs out. A repository added
    /// to a pod that is still starting is cloned as soon as the pod is ready; the
    /// message says when. An instance still being deleted is waited out (bounded) and
    /// created afresh.
    pub async fn provision(self: &Arc<Self>, owner: &Owner, repo: Repo) -> Result<Provisioned> {
        self.provision_with(owner, repo, true).await
    }

    /// [`Self::provision`]; with `wait` false it answers as soon as the objects are
    /// applied, with the status they have then (PENDING for a new pod).
    pub async fn provision_with(
        self: &Arc<Self>,
        owner: &Owner,
        repo: Repo,
        wait: bool,
    ) -> Result<Provisioned> {
        let opts = StartOptions {
            wait,
            ..StartOptions::default()
        };
        self.provision_as(owner, repo, &opts).await
    }

    /// [`Self::provision`] as `opts` say: waiting or not, and on the profile chosen (the
    /// recorded one when none is; checked against the caller's roles before anything is
    /// asked or written). A profile changed on a running instance is recorded and
    /// applies at its next start (`restartPending`); the message says so.
    pub async fn provision_as(
        self: &Arc<Self>,
        owner: &Owner,
        repo: Repo,
        opts: &StartOptions,
    ) -> Result<Provisioned> {
        let wait = opts.wait;
        let (_, key) = identity(owner)?;
        let guard = self.locks.lock(&key).await;
        let record = self.find_record(owner, &key).await?;
        let record = match record {
            Some(pvc) if pvc.metadata.deletion_timestamp.is_some() => {
                self.wait_record_gone(&pvc).await?;
                self.find_record(owner, &key).await?
            }
            other => other,
        };
        if record
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some())
        {
            return Err(Error::BeingDeleted);
        }
        // NB: a deleted instance's volume still holds its work: provisioning neither reuses
        // it unasked nor creates a second instance beside it; its owner restores or
        // purges it first. Whatever DELETE_RETENTION is now.
        if record
            .as_ref()
            .is_some_and(crate::instance::retention::is_deleted)
        {
            return Err(Error::ProvisionOverDeleted);
        }
        let is_new = record.is_none();
        let profile =
            self.choose_profile(opts.profile.as_deref(), record.as_ref(), &opts.access)?;
        let (repos, added) = record::repos_with(record.as_ref(), repo);
        let owner = record::caller(owner, record.as_ref());
        let recorded = record::kinds(record.as_ref());
        // NB: the limit is a value; no need to render every template to read it.
        let limit =
            render::build_values(&self.templates.get(), &self.settings, &owner, &repos, &[])?
                .repository_limit;
        if added && repos.len() > limit {
            return Err(Error::TooManyRepositories(limit));
        }
        // NB: the new repository (last when added) was checked by the caller just now.
        let checked = if added { repos.len() - 1 } else { repos.len() };
        let mut access = self.check_access(&owner, &repos[..checked]).await?;
        access.repos.extend(repos[checked..].iter().cloned());
        let repos = access.repos.clone();
        let desired = self.desired(&owner, &repos, &recorded, &access.lost, Some(&profile.name))?;
        let id = desired.values.instance.id.clone();
        let pod = self.pod(&id).await?;
        let running = pod
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none());
        let opts = if running {
            ApplyOptions {
                updates: Updates::RecordOnly,
                recreate: false,
                prune: false,
            }
        } else {
            ApplyOptions {
                updates: Updates::All,
                recreate: true,
                prune: true,
            }
        };
        let admitted = if running {
            None
        } else {
            Some(self.admit_start(&id).await?)
        };
        let git = self
            .converge(&id, &desired, &recorded, pod.as_ref(), opts, &owner)
            .await?;
        if !running {
            self.record_started(&id).await;
        }
        self.record_git_identity(record.as_ref(), &desired.values.instance.pvc, git.as_ref())
            .await;
        let _turn = admitted.map(super::reconciler::Admitted::created);
        drop(guard);

        // NB: a repository added to a live pod is not in its clone list (pod specs are
        // immutable): a sync Job clones it, once the pod is ready.
        let clone_later = running && added;
        let mut instance = if wait {
            self.wait_and_get(&owner, &id).await?
        } else {
            self.get(&owner, &id).await?
        };
        let mut message = if clone_later {
            match instance.status.status {
                InstanceStatus::Running => match self.run_sync(&desired.values, &id).await {
                    Err(Error::SyncInProgress) => "Repository added; a sync in progress holds \
                        the workspace, the next sync clones it"
                        .to_owned(),
                    other => {
                        other?;
                        instance = self.get(&owner, &id).await?;
                        "Repository added to the running instance".to_owned()
                    }
                },
                InstanceStatus::Pending | InstanceStatus::Starting => {
                    self.sync_when_ready(owner.clone(), id.clone());
                    "Repository recorded; it is cloned as soon as the instance is ready".to_owned()
                }
                _ => "Repository recorded; it is cloned when the instance next starts".to_owned(),
            }
        } else {
            Self::provision_message(is_new, running, &instance)
        };
        if running && profile.changed {
            message = format!(
                "{message}; profile {:?} recorded: it applies at the next start (restartPending)",
                profile.name
            );
        }
        if !access.lost.is_empty() {
            message = format!(
                "{message}; not pulled, access lost: {}",
                access.lost_names().join(", ")
            );
        }
        Ok(Provisioned {
            instance,
            message,
            is_new,
        })
    }

    /// What provision tells people, from what it did and the instance's status.
    fn provision_message(is_new: bool, running: bool, instance: &Instance) -> String {
        let done = if is_new {
            "Instance created"
        } else if !running {
            "Instance started"
        } else {
            return "Using existing instance".to_owned();
        };
        match instance.status.status {
            InstanceStatus::Running if is_new => "Instance created successfully".to_owned(),
            InstanceStatus::Running => done.to_owned(),
            InstanceStatus::Error => format!(
                "{done}, but it failed: {}",
                instance
                    .status
                    .reason
                    .as_deref()
                    .unwrap_or("see statusMessage")
            ),
            _ => format!("{done}; still starting"),
        }
    }

    /// Clones the recorded repositories into `id`'s pod once it is ready (waiting up to
    /// CODESERVER_TIMEOUT more), in the background. When the pod never gets ready, its
    /// next start clones them (the init container clones every recorded repository).
    fn sync_when_ready(self: &Arc<Self>, owner: Owner, id: String) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let result = async {
                let instance = this.wait_and_get(&owner, &id).await?;
                if instance.status.status != InstanceStatus::Running {
                    return Ok(false);
                }
                this.sync(&owner, &id).await.map(|()| true)
            }
            .await;
            match result {
                Ok(true) => tracing::info!(instance = %id, "cloned the added repository"),
                Ok(false) => tracing::info!(
                    instance = %id,
                    "the pod did not get ready; the added repository is cloned on the next start"
                ),
                Err(error) => tracing::warn!(
                    instance = %id,
                    error = %error,
                    "cloning the added repository failed"
                ),
            }
        });
    }

    /// Waits (watching, bounded) until the PVC `pvc`, which is being deleted, is gone.
    async fn wait_record_gone(
        &self,
        pvc: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
    ) -> Result<()> {
        let (Some(name), Some(uid)) = (pvc.metadata.name.as_deref(), pvc.metadata.uid.as_deref())
        else {
            return Err(Error::BeingDeleted);
        };
        let gone = tokio::time::timeout(
            self.timeouts.ready,
            await_condition(self.pvcs(), name, conditions::is_deleted(uid)),
        )
        .await;
        match gone {
            Ok(Ok(_)) => {
                let ns = &self.settings.namespace;
                self.written("v1/PersistentVolumeClaim", ns, name, Written::Gone)
                    .await;
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::warn!(pvc = name, error = %e, "watching a deleted PVC failed");
                Err(Error::BeingDeleted)
            }
            Err(_) => Err(Error::BeingDeleted),
        }
    }

    /// Start: create the pod (and anything missing or changed) from the current
    /// templates; a pod rendered from older templates is recreated.
    pub async fn start(&self, owner: &Owner, id: &str) -> Result<Instance> {
        Ok(self.start_with(owner, id, true).await?.value)
    }

    /// Start, saying which recorded repositories were not pulled because the owner lost
    /// access in Gitea; when they lost every one, nothing is started (`AccessLost`).
    pub async fn start_checked(&self, owner: &Owner, id: &str) -> Result<Checked<Instance>> {
        self.start_with(owner, id, true).await
    }

    /// [`Self::start_checked`]; with `wait` false it answers as soon as the pod is
    /// created, with the status it has then (PENDING).
    pub async fn start_with(
        &self,
        owner: &Owner,
        id: &str,
        wait: bool,
    ) -> Result<Checked<Instance>> {
        let opts = StartOptions {
            wait,
            ..StartOptions::default()
        };
        self.start_as(owner, id, &opts).await
    }

    /// [`Self::start_checked`] as `opts` say: waiting or not, and on the profile chosen
    /// (the recorded one when none is; checked against the caller's roles before anything
    /// is asked or written), which is recorded and applied by this start.
    pub async fn start_as(
        &self,
        owner: &Owner,
        id: &str,
        opts: &StartOptions,
    ) -> Result<Checked<Instance>> {
        let wait = opts.wait;
        let (_, key) = identity(owner)?;
        let guard = self.locks.lock(&key).await;
        let record = self.owned_record(owner, id).await?;
        let profile = self.choose_profile(opts.profile.as_deref(), Some(&record), &opts.access)?;
        let repos = record::repos(Some(&record));
        let owner = record::caller(owner, Some(&record));
        let recorded = record::kinds(Some(&record));
        if repos.is_empty() {
            return Err(Error::Instance(
                "the instance record lists no repositories".to_owned(),
            ));
        }
        let access = self.check_access(&owner, &repos).await?;
        if access.lost.len() == access.repos.len() {
            self.revoke_every_key(&owner, &access).await?;
            return Err(Error::AccessLost(access.lost_names()));
        }
        let desired = self.desired(
            &owner,
            &access.repos,
            &recorded,
            &access.lost,
            Some(&profile.name),
        )?;
        let pod = self.pod(id).await?;
        let opts = ApplyOptions {
            updates: Updates::All,
            recreate: true,
            prune: true,
        };
        let admitted = self.admit_start(id).await?;
        let had_pod = pod
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none());
        let git = self
            .converge(id, &desired, &recorded, pod.as_ref(), opts, &owner)
            .await?;
        self.record_git_identity(Some(&record), &desired.values.instance.pvc, git.as_ref())
            .await;
        // NB: a start of a running instance keeps its record (and any keep-alive).
        if !had_pod || lifecycle_unrecorded(&record) {
            self.record_started(id).await;
        }
        let _turn = admitted.created();
        drop(guard);
        let value = if wait {
            self.wait_and_get(&owner, id).await?
        } else {
            self.get(&owner, id).await?
        };
        Ok(Checked {
            value,
            lost: access.lost_names(),
        })
    }
}

/// Whether the record lacks what a start records (an instance started before the
/// lifecycle was recorded, or one whose record says it is stopped while its pod runs).
fn lifecycle_unrecorded(record: &k8s_openapi::api::core::v1::PersistentVolumeClaim) -> bool {
    let lifecycle = crate::instance::lifecycle::runs_since(record);
    lifecycle.is_none() || crate::instance::lifecycle::stop_reason(record).is_some()
}
