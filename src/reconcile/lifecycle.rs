//! The lifecycle operations: provision, stop, start, delete, sync, get, list, logs,
//! stats, and the dry-run render and plan.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api,
    api::{
        DeleteParams, DynamicObject, ListParams, LogParams, PostParams, Preconditions,
        PropagationPolicy,
    },
    runtime::wait::{await_condition, conditions},
};

use super::{
    Error, Reconciler, Result,
    apply::{self, ApplyOptions, Outcome, Updates},
    live::{self, dedupe_versions, identity, kinds_of, kinds_record, recorded_kinds, stamp_kinds},
    plan::{self, Plan},
    with_retry,
};
use crate::{
    instance::{self, Instance, InstanceStatus, Status},
    naming,
    quantity::Quantity,
    render::{self, JobValues, RenderedObject},
    values::{Owner, Repo, Values},
};

/// The most bytes of log `codeServerLogs` answers with (the newest whole lines that fit).
pub const MAX_LOG_BYTES: usize = 1024 * 1024;
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

/// Totals over every instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Instances (PVCs).
    pub total: usize,
    /// Instances by status.
    pub by_status: BTreeMap<InstanceStatus, usize>,
    /// Storage allocated to workspaces.
    pub storage: Quantity,
    /// Storage per user (safe name).
    pub storage_by_user: BTreeMap<String, Quantity>,
}

/// The desired state of one instance: values, rendered objects, and the kinds to look at.
struct Desired {
    values: Values,
    objects: Vec<DynamicObject>,
}

impl Reconciler {
    /// Values and objects for `owner`'s instance with `repos`, the PVC stamped with the
    /// kinds ever applied.
    fn desired(
        &self,
        owner: &Owner,
        repos: &[Repo],
        recorded: &std::collections::BTreeSet<String>,
        lost: &[Repo],
    ) -> Result<Desired> {
        let templates = self.templates.get();
        let mut values = render::build_values(&templates, &self.settings, owner, repos, &[])?;
        values.exclude(lost);
        let mut objects: Vec<DynamicObject> = templates
            .render(&values)?
            .into_iter()
            .map(|r| r.object)
            .collect();
        let record = kinds_record(&objects, recorded, &self.kinds);
        for o in &mut objects {
            stamp_kinds(o, &record);
        }
        Ok(Desired { values, objects })
    }

    /// Plans `desired` against what is live.
    async fn plan_desired(
        &self,
        id: &str,
        desired: &Desired,
        recorded: &std::collections::BTreeSet<String>,
    ) -> Result<(Plan, Vec<DynamicObject>)> {
        let mut kinds = kinds_of(&desired.objects);
        kinds.extend(recorded.iter().cloned());
        let kinds = dedupe_versions(kinds, &self.kinds);
        let live = self.live_objects(id, &kinds).await?;
        Ok((plan::plan(&desired.objects, &live), live))
    }

    fn owner_with_record(
        owner: &Owner,
        record: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaim>,
    ) -> Owner {
        let mut owner = owner.clone();
        owner.known_name = record.and_then(recorded_name);
        owner
    }

    /// The record's repositories with `repo` added (if it is new), and whether it was.
    fn repos_with(
        record: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaim>,
        repo: Repo,
    ) -> (Vec<Repo>, bool) {
        let mut repos = Self::record_repos(record);
        let added = !repos
            .iter()
            .any(|r| r.owner == repo.owner && r.name == repo.name);
        if added {
            repos.push(repo);
        }
        (repos, added)
    }

    fn record_repos(
        record: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaim>,
    ) -> Vec<Repo> {
        record
            .and_then(|p| {
                p.metadata
                    .annotations
                    .as_ref()?
                    .get(naming::ANNOTATION_REPOS)
                    .cloned()
            })
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default()
    }

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
        let (_, key) = identity(owner)?;
        let guard = self.locks.lock(&key).await;
        let record = self.find_record(&key).await?;
        let record = match record {
            Some(pvc) if pvc.metadata.deletion_timestamp.is_some() => {
                self.wait_record_gone(&pvc).await?;
                self.find_record(&key).await?
            }
            other => other,
        };
        if record
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some())
        {
            return Err(Error::BeingDeleted);
        }
        let is_new = record.is_none();
        let (repos, added) = Self::repos_with(record.as_ref(), repo);
        let owner = Self::owner_with_record(owner, record.as_ref());
        let recorded = recorded_kinds(record.as_ref());
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
        let desired = self.desired(&owner, &repos, &recorded, &access.lost)?;
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
        self.converge(&id, &desired, &recorded, pod.as_ref(), opts)
            .await?;
        let _turn = admitted.map(super::Admitted::created);
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
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(pvc = name, error = %e, "watching a deleted PVC failed");
                Err(Error::BeingDeleted)
            }
            Err(_) => Err(Error::BeingDeleted),
        }
    }

    /// Waits out a terminating `pod`, plans `desired` against what is live, and applies
    /// the plan as `opts` allow.
    async fn converge(
        &self,
        id: &str,
        desired: &Desired,
        recorded: &std::collections::BTreeSet<String>,
        pod: Option<&Pod>,
        opts: ApplyOptions,
    ) -> Result<()> {
        if let Some(p) = pod.filter(|p| p.metadata.deletion_timestamp.is_some()) {
            let ns = &self.settings.namespace;
            apply::wait_pod_gone(&self.client, ns, id, p.metadata.uid.as_deref()).await?;
        }
        let (plan, live) = self.plan_desired(id, desired, recorded).await?;
        refuse_foreign(&desired.values, &live)?;
        // NB: the pod finds its keys when it starts; they are written only once the names
        // are known to be the owner's.
        self.ensure_keys(&desired.values).await?;
        let ns = &self.settings.namespace;
        let outcome = apply::apply(&self.client, &self.kinds, ns, &plan, opts).await?;
        log_outcome(id, &plan, &outcome);
        Ok(())
    }

    /// Stop: delete the pod; the PVC and the work in it stay. Answers at once (STOPPING).
    pub async fn stop(&self, owner: &Owner, id: &str) -> Result<()> {
        let (_, key) = identity(owner)?;
        let _guard = self.locks.lock(&key).await;
        self.owned_record(owner, id).await?;
        let what = format!("delete Pod/{id}");
        let (pods, params) = (self.pods(), DeleteParams::default());
        match with_retry(&what, || pods.delete(id, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::Instance(format!("{what}: {}", super::reason(&e)))),
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
        let (_, key) = identity(owner)?;
        let guard = self.locks.lock(&key).await;
        let record = self.owned_record(owner, id).await?;
        let repos = Self::record_repos(Some(&record));
        let owner = Self::owner_with_record(owner, Some(&record));
        let recorded = recorded_kinds(Some(&record));
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
        let desired = self.desired(&owner, &access.repos, &recorded, &access.lost)?;
        let pod = self.pod(id).await?;
        let opts = ApplyOptions {
            updates: Updates::All,
            recreate: true,
            prune: true,
        };
        let admitted = self.admit_start(id).await?;
        self.converge(id, &desired, &recorded, pod.as_ref(), opts)
            .await?;
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

    /// Delete: every object of the instance, the PVC (and the work in it) last; only
    /// that instance's.
    pub async fn delete(&self, owner: &Owner, id: &str) -> Result<()> {
        let (_, key) = identity(owner)?;
        let _guard = self.locks.lock(&key).await;
        let record = match self.owned_record(owner, id).await {
            // NB: deleting again is not an error; the objects are already going.
            Err(Error::BeingDeleted) => return Ok(()),
            other => other?,
        };
        let mut kinds = recorded_kinds(Some(&record));
        let owner = Self::owner_with_record(owner, Some(&record));
        // NB: the instance's deploy keys go first: a failure leaves the instance whole
        // rather than its keys behind.
        if let Some(name) = owner.known_name.as_deref() {
            self.remove_keys(name).await?;
        }
        // NB: a render failure must not stop a delete; the recorded kinds still list
        // everything ever applied.
        if let Ok(desired) = self.desired(&owner, &Self::record_repos(Some(&record)), &kinds, &[]) {
            kinds.extend(kinds_of(&desired.objects));
        }
        kinds.insert("batch/v1/Job".to_owned());
        kinds.insert("v1/Pod".to_owned());
        let kinds = dedupe_versions(kinds, &self.kinds);
        let live = self.live_objects(id, &kinds).await?;
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        let (pvcs, rest): (Vec<_>, Vec<_>) = live.into_iter().partition(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| t.kind == "PersistentVolumeClaim")
        });
        for batch in [rest, pvcs] {
            futures::future::try_join_all(batch.iter().map(|o| self.delete_object(o, &params)))
                .await?;
        }
        Ok(())
    }

    async fn delete_object(&self, o: &DynamicObject, params: &DeleteParams) -> Result<()> {
        let t = o.types.clone().unwrap_or_default();
        let ar = self
            .kinds
            .resolve(&self.client, &t.api_version, &t.kind)
            .await?;
        let ns = super::live::namespace_of(&self.settings, &ar.api_version, &ar.kind);
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let name = o.metadata.name.clone().unwrap_or_default();
        let what = format!("delete {}/{name}", t.kind);
        match with_retry(&what, || api.delete(&name, params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::kube(&what, e)),
        }
    }

    /// Sync: fast-forward every repository of the running workspace with a Job on the
    /// pod's node; never discards local work. Fails with the Job's reason and last log
    /// lines.
    pub async fn sync(&self, owner: &Owner, id: &str) -> Result<()> {
        self.sync_checked(owner, id).await.map(|_| ())
    }

    /// Sync, saying which recorded repositories were not pulled because the owner lost
    /// access in Gitea; when they lost every one, nothing is pulled (`AccessLost`).
    pub async fn sync_checked(&self, owner: &Owner, id: &str) -> Result<Checked<()>> {
        let (_, key) = identity(owner)?;
        let record = self.owned_record(owner, id).await?;
        let owner = Self::owner_with_record(owner, Some(&record));
        let repos = Self::record_repos(Some(&record));
        // NB: a sync of a stopped instance changes nothing, keys included.
        self.running_pod(id).await?;
        let access = self.check_access(&owner, &repos).await?;
        if access.lost.len() == access.repos.len() {
            let _guard = self.locks.lock(&key).await;
            self.revoke_every_key(&owner, &access).await?;
            return Err(Error::AccessLost(access.lost_names()));
        }
        let templates = self.templates.get();
        let mut values =
            render::build_values(&templates, &self.settings, &owner, &access.repos, &[])?;
        values.exclude(&access.lost);
        {
            let _guard = self.locks.lock(&key).await;
            // NB: a delete may have run while Gitea was asked: keys written for an
            // instance that is gone (or going) would outlive it.
            self.owned_record(&owner, id).await?;
            self.ensure_keys(&values).await?;
        }
        self.run_sync(&values, id).await?;
        Ok(Checked {
            value: (),
            lost: access.lost_names(),
        })
    }

    /// The instance's pod when it is running; `NotReady` otherwise.
    async fn running_pod(&self, id: &str) -> Result<Option<Pod>> {
        let pod = self.pod(id).await?;
        let status = instance::derive_status(pod.as_ref(), now(), self.timeouts.unschedulable);
        if status.status != InstanceStatus::Running {
            return Err(Error::NotReady(format!(
                "the instance is {}; start it before syncing",
                status.status.as_str()
            )));
        }
        Ok(pod)
    }

    async fn run_sync(&self, values: &Values, id: &str) -> Result<()> {
        let pod = self.running_pod(id).await?;
        let node = pod
            .as_ref()
            .and_then(|p| p.spec.as_ref()?.node_name.clone());
        let name = naming::sync_job_name(&values.user.name);
        let job = self.templates.get().render_sync_job(
            values,
            &JobValues {
                name: name.clone(),
                node,
            },
        )?;
        let uid = self.create_sync_job(&name, &job).await?;
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let finished = |j: Option<&Job>| job_outcome(j).is_some();
        let done = tokio::time::timeout(
            self.timeouts.sync,
            await_condition(jobs.clone(), &name, finished),
        )
        .await;
        let job = match done {
            Ok(Ok(job)) => job,
            Ok(Err(e)) => return Err(Error::Sync(format!("watching Job/{name}: {e}"))),
            Err(_) => {
                return Err(Error::Sync(format!(
                    "Job/{name} did not finish within {}s",
                    self.timeouts.sync.as_secs()
                )));
            }
        };
        match job_outcome(job.as_ref()) {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => {
                let logs = self.job_logs(&uid).await.unwrap_or_default();
                Err(Error::Sync(if logs.is_empty() {
                    reason
                } else {
                    format!("{reason}: {logs}")
                }))
            }
            None => Err(Error::Sync(format!(
                "Job/{name} disappeared before finishing"
            ))),
        }
    }

    /// Creates the instance's sync Job `name`: the Job is the lock that keeps syncs of one
    /// instance apart across requests and replicas. A running one answers `SyncInProgress`;
    /// a finished one (kept for its TTL) is deleted first. Returns the new Job's uid.
    async fn create_sync_job(&self, name: &str, job: &DynamicObject) -> Result<String> {
        let ar = self.kinds.resolve(&self.client, "batch/v1", "Job").await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.settings.namespace, &ar);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let params = PostParams {
            field_manager: Some(naming::FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let what = format!("create Job/{name}");
        for _ in 0..2 {
            match with_retry(&what, || api.create(&params, job)).await {
                Ok(created) => return Ok(created.metadata.uid.unwrap_or_default()),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(Error::Sync(format!("{what}: {}", super::reason(&e)))),
            }
            let existing = with_retry("get the sync Job", || jobs.get_opt(name))
                .await
                .map_err(|e| Error::kube("read the sync Job", e))?;
            let Some(existing) = existing else {
                continue;
            };
            if job_outcome(Some(&existing)).is_none() {
                return Err(Error::SyncInProgress);
            }
            // NB: only the finished Job seen here; a newer one (another replica's) stays.
            let delete = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(Preconditions {
                    uid: existing.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match with_retry("delete the finished sync Job", || {
                jobs.delete(name, &delete)
            })
            .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {}
                Err(e) => return Err(Error::kube("delete the finished sync Job", e)),
            }
        }
        Err(Error::SyncInProgress)
    }

    /// The last log lines of the pod of the sync Job with `uid`.
    async fn job_logs(&self, uid: &str) -> Result<String> {
        let lp = ListParams::default().labels(&format!("controller-uid={uid}"));
        let api = self.pods();
        let pods = with_retry("list a Job's pods", || api.list(&lp))
            .await
            .map_err(|e| Error::kube("list the sync Job's pods", e))?;
        let Some(name) = pods.items.last().and_then(|p| p.metadata.name.clone()) else {
            return Ok(String::new());
        };
        let params = LogParams {
            tail_lines: Some(5),
            ..LogParams::default()
        };
        let text = with_retry("read a Job's logs", || api.logs(&name, &params))
            .await
            .map_err(|e| Error::kube("read the sync Job's logs", e))?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | "))
    }

    /// The caller's instance `id`; `NotFound` when it is missing or another user's.
    pub async fn get(&self, owner: &Owner, id: &str) -> Result<Instance> {
        let record = self.owned_record(owner, id).await?;
        let pod = self.pod(id).await?;
        let instance = self.instance(&record, pod.as_ref())?;
        Ok(self.explain(instance, pod.as_ref()).await)
    }

    /// The caller's instances.
    pub async fn list(&self, owner: &Owner) -> Result<Vec<Instance>> {
        let (safe, key) = identity(owner)?;
        let records = self.records_with_pods(&live::owner_selector(&key)).await?;
        records
            .iter()
            .filter(|(pvc, _)| live::owns(pvc, &safe, &key))
            .map(|(pvc, pod)| self.instance(pvc, pod.as_ref()))
            .collect()
    }

    pub(super) fn instance(
        &self,
        pvc: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
        pod: Option<&Pod>,
    ) -> Result<Instance> {
        let mut instance = Instance::from_live(
            pvc,
            pod,
            &self.settings.base_domain,
            now(),
            self.timeouts.unschedulable,
        )
        .ok_or_else(|| {
            Error::Instance("the workspace volume lacks the instance labels".to_owned())
        })?;
        if let Some(pod) = pod {
            let live_hash = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(naming::ANNOTATION_SPEC_HASH));
            let owner = owner_with_labels(Owner::new(instance.user_id.clone()), pvc);
            if let Ok(d) = self.desired(&owner, &instance.repos, &Default::default(), &[]) {
                let want = d
                    .objects
                    .iter()
                    .find(|o| o.types.as_ref().is_some_and(|t| t.kind == "Pod"));
                let want_hash = want.and_then(|o| {
                    o.metadata
                        .annotations
                        .as_ref()?
                        .get(naming::ANNOTATION_SPEC_HASH)
                });
                instance.restart_pending = want_hash.is_some() && live_hash != want_hash;
            }
        }
        instance.idle_stop_at = self.idle_stop_at(&instance);
        Ok(instance)
    }

    /// The status of the caller's instance `id`.
    pub async fn status(&self, owner: &Owner, id: &str) -> Result<Status> {
        self.owned_record(owner, id).await?;
        let pod = self.pod(id).await?;
        Ok(instance::derive_status(
            pod.as_ref(),
            now(),
            self.timeouts.unschedulable,
        ))
    }

    /// The last `lines` lines of code-server's log, or of the clone (init) container
    /// when that failed; at most [`MAX_LOG_BYTES`], the newest whole lines that fit.
    pub async fn logs(&self, owner: &Owner, id: &str, lines: i64) -> Result<String> {
        self.owned_record(owner, id).await?;
        let Some(pod) = self.pod(id).await? else {
            return Err(Error::NotReady(
                "the instance is stopped; it has no logs".to_owned(),
            ));
        };
        let container = instance::init_failed(&pod).unwrap_or_else(|| "code-server".to_owned());
        // NB: the API server applies tailLines first and then cuts at limitBytes from the
        // start, so a cut answer holds the oldest of the lines asked for. Ask again for as
        // many lines as fitted, which are then the newest ones.
        let mut tail = lines;
        let mut text = self.log_bytes(id, &container, tail).await?;
        for _ in 0..2 {
            if text.len() < MAX_LOG_BYTES {
                break;
            }
            let whole = text.iter().filter(|b| **b == b'\n').count();
            let fewer = i64::try_from(whole).unwrap_or(i64::MAX).min(tail - 1);
            if fewer < 1 {
                break;
            }
            tail = fewer;
            text = self.log_bytes(id, &container, tail).await?;
        }
        if text.len() >= MAX_LOG_BYTES
            && let Some(last) = text.iter().rposition(|b| *b == b'\n')
        {
            text.truncate(last + 1);
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// The last `tail` lines of `container`'s log in pod `id`, cut at [`MAX_LOG_BYTES`].
    async fn log_bytes(&self, id: &str, container: &str, tail: i64) -> Result<Vec<u8>> {
        let params = LogParams {
            container: Some(container.to_owned()),
            tail_lines: Some(tail),
            limit_bytes: Some(MAX_LOG_BYTES as i64),
            ..LogParams::default()
        };
        let api = self.pods();
        match with_retry("read pod logs", || api.logs(id, &params)).await {
            Ok(text) => Ok(text.into_bytes()),
            // NB: a cut at limitBytes can split a multi-byte character.
            Err(kube::Error::FromUtf8(cut)) => Ok(cut.into_bytes()),
            Err(kube::Error::Api(s)) if s.code == 400 => Err(Error::NotReady(s.message.clone())),
            Err(e) => Err(Error::kube("read the instance's logs", e)),
        }
    }

    /// Totals over every instance in the namespace (two list calls).
    pub async fn stats(&self) -> Result<Stats> {
        let records = self.records_with_pods(&live::managed_selector()).await?;
        let mut stats = Stats::default();
        let now = now();
        for (pvc, pod) in &records {
            let Some(instance) = Instance::from_live(
                pvc,
                pod.as_ref(),
                &self.settings.base_domain,
                now,
                self.timeouts.unschedulable,
            ) else {
                continue;
            };
            stats.total += 1;
            *stats.by_status.entry(instance.status.status).or_default() += 1;
            let size = instance.storage.unwrap_or_default();
            stats.storage = stats.storage + size;
            let user = pvc
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(naming::LABEL_USER))
                .cloned()
                .unwrap_or_default();
            let entry = stats.storage_by_user.entry(user).or_default();
            *entry = *entry + size;
        }
        Ok(stats)
    }

    /// The owner an admin names by user id: the owner recorded on that user's instance
    /// (its `sub`, which the name alone does not give), or just the name when the user
    /// has no instance. For admin dry runs only: ownership checks never use it.
    pub async fn named_owner(&self, user_id: &str) -> Result<Owner> {
        let safe = naming::safe_name(user_id).map_err(crate::values::ValuesError::from)?;
        let selector = format!("{},{}={safe}", live::managed_selector(), naming::LABEL_USER);
        let lp = ListParams::default().labels(&selector);
        let api = self.pvcs();
        let pvcs = with_retry("list a user's PVCs", || api.list(&lp))
            .await
            .map_err(|e| Error::kube("list the user's workspace volumes", e))?;
        Ok(match pvcs.items.first() {
            Some(pvc) => owner_with_labels(Owner::new(user_id), pvc),
            None => Owner::new(user_id),
        })
    }

    /// Dry run: the objects the caller's instance with `repo` would have (the existing
    /// instance's repositories included). Makes no writes.
    pub async fn render_for(&self, owner: &Owner, repo: Repo) -> Result<Vec<RenderedObject>> {
        let (_, key) = identity(owner)?;
        let record = self
            .find_record(&key)
            .await?
            .filter(|p| p.metadata.deletion_timestamp.is_none());
        let (repos, _) = Self::repos_with(record.as_ref(), repo);
        let owner = Self::owner_with_record(owner, record.as_ref());
        let recorded = recorded_kinds(record.as_ref());
        let templates = self.templates.get();
        let values = render::build_values(&templates, &self.settings, &owner, &repos, &[])?;
        let mut rendered = templates.render(&values)?;
        let kinds = kinds_record(rendered.iter().map(|r| &r.object), &recorded, &self.kinds);
        for r in &mut rendered {
            stamp_kinds(&mut r.object, &kinds);
        }
        Ok(rendered)
    }

    /// Dry run: the plan of the caller's instance with `repo`. Makes no writes.
    pub async fn plan_for(&self, owner: &Owner, repo: Repo) -> Result<Plan> {
        let (_, key) = identity(owner)?;
        let record = self
            .find_record(&key)
            .await?
            .filter(|p| p.metadata.deletion_timestamp.is_none());
        let (repos, _) = Self::repos_with(record.as_ref(), repo);
        let owner = Self::owner_with_record(owner, record.as_ref());
        let recorded = recorded_kinds(record.as_ref());
        let desired = self.desired(&owner, &repos, &recorded, &[])?;
        let id = desired.values.instance.id.clone();
        Ok(self.plan_desired(&id, &desired, &recorded).await?.0)
    }

    /// The instance records (PVCs labelled with `selector` and an instance id), each with
    /// its code-server pod if it has one: two list calls, whatever the number of instances.
    pub(super) async fn records_with_pods(
        &self,
        selector: &str,
    ) -> Result<
        Vec<(
            k8s_openapi::api::core::v1::PersistentVolumeClaim,
            Option<Pod>,
        )>,
    > {
        let pvc_lp = ListParams::default().labels(selector);
        let pod_lp = ListParams::default().labels(&format!(
            "{selector},{}={}",
            naming::LABEL_NAME,
            naming::APP_NAME_VALUE
        ));
        let (pvc_api, pod_api) = (self.pvcs(), self.pods());
        let (pvcs, pods) = futures::try_join!(
            async {
                with_retry("list PVCs", || pvc_api.list(&pvc_lp))
                    .await
                    .map_err(|e| Error::kube("list workspace volumes", e))
            },
            async {
                with_retry("list pods", || pod_api.list(&pod_lp))
                    .await
                    .map_err(|e| Error::kube("list pods", e))
            },
        )?;
        let mut pods: BTreeMap<String, Pod> = pods
            .items
            .into_iter()
            .filter_map(|p| Some((p.metadata.name.clone()?, p)))
            .collect();
        Ok(pvcs
            .items
            .into_iter()
            .filter_map(|pvc| {
                let id = pvc.metadata.labels.as_ref()?.get(naming::LABEL_INSTANCE)?;
                let pod = pods.remove(id);
                Some((pvc, pod))
            })
            .collect())
    }

    /// Waits (watching, not polling) until the pod is ready or failed, or the ready
    /// timeout passes, then reads the instance.
    async fn wait_and_get(&self, owner: &Owner, id: &str) -> Result<Instance> {
        let unschedulable = self.timeouts.unschedulable;
        let settled = move |p: Option<&Pod>| {
            matches!(
                instance::derive_status(p, now(), unschedulable).status,
                InstanceStatus::Running | InstanceStatus::Error | InstanceStatus::Stopped
            )
        };
        let watched = tokio::time::timeout(
            self.timeouts.ready,
            await_condition(self.pods(), id, settled),
        )
        .await;
        let record = self.owned_record(owner, id).await?;
        // NB: the watch already holds the settled pod; read it again only when the
        // watch failed or the time ran out.
        let pod = match watched {
            Ok(Ok(pod)) => pod,
            Ok(Err(e)) => {
                tracing::warn!(instance = id, error = %e, "watching the pod for readiness failed");
                self.pod(id).await?
            }
            Err(_) => self.pod(id).await?,
        };
        let instance = self.instance(&record, pod.as_ref())?;
        Ok(self.explain(instance, pod.as_ref()).await)
    }
}

/// The safe name recorded on an instance's PVC.
fn recorded_name(pvc: &k8s_openapi::api::core::v1::PersistentVolumeClaim) -> Option<String> {
    pvc.metadata
        .labels
        .as_ref()?
        .get(naming::LABEL_USER)
        .cloned()
}

/// `owner` as recorded on `pvc`: its safe name and, when the owner key is not that name,
/// the `sub` it was derived from. For reading another user's instance (dry runs, status).
pub(super) fn owner_with_labels(
    mut owner: Owner,
    pvc: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
) -> Owner {
    owner.known_name = recorded_name(pvc);
    if owner.email.is_none() {
        owner.email = pvc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(naming::ANNOTATION_EMAIL))
            .cloned();
    }
    let key = pvc
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(naming::LABEL_OWNER).cloned());
    // NB: the owner key is recomputed from `sub`; a key that is not the safe name was a
    // sub, unless it had to be hashed, in which case the record keeps the `sub` itself.
    let recorded_sub = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(naming::ANNOTATION_SUB))
        .filter(|sub| key.as_deref() == Some(naming::owner_key(Some(sub), "").as_str()))
        .cloned();
    owner.sub = recorded_sub.or_else(|| key.filter(|k| Some(k) != owner.known_name.as_ref()));
    owner
}

/// The safety net under the naming scheme: nothing is applied over a live object of the
/// instance that another owner holds (`NameTaken`, before any write).
fn refuse_foreign(values: &Values, live: &[DynamicObject]) -> Result<()> {
    let (safe, key) = (&values.user.name, &values.user.owner);
    match live
        .iter()
        .find(|o| !live::labels_own(o.metadata.labels.as_ref(), safe, key))
    {
        Some(foreign) => {
            let kind = foreign.types.as_ref().map_or("", |t| t.kind.as_str());
            let name = foreign.metadata.name.as_deref().unwrap_or_default();
            tracing::warn!(
                instance = %values.instance.id,
                object = %format!("{kind}/{name}"),
                "refused to write over another owner's object"
            );
            Err(Error::NameTaken(format!(
                "{kind}/{name} belongs to another owner"
            )))
        }
        None => Ok(()),
    }
}

/// `Some(Ok)` when the Job completed, `Some(Err(reason))` when it failed, `None` while
/// it runs.
fn job_outcome(job: Option<&Job>) -> Option<Result<(), String>> {
    let status = job?.status.as_ref()?;
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return Some(Ok(())),
            "Failed" => {
                return Some(Err(format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("Failed"),
                    c.message.as_deref().unwrap_or("the sync Job failed")
                )));
            }
            _ => {}
        }
    }
    None
}

fn log_outcome(id: &str, plan: &Plan, outcome: &Outcome) {
    tracing::info!(
        instance = id,
        create = plan.count("create"),
        update = plan.count("update"),
        unchanged = plan.count("unchanged"),
        recreate = plan.count("recreate"),
        prune = plan.count("prune"),
        applied = outcome.applied.len(),
        deleted = outcome.deleted.len(),
        held = ?outcome.held,
        "reconciled"
    );
}

/// Seconds since the epoch.
fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
