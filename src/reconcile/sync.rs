//! Sync: a Job on the pod's node fast-forwards every repository of a running workspace.

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api,
    api::{
        DeleteParams, DynamicObject, ListParams, LogParams, PostParams, Preconditions,
        PropagationPolicy,
    },
    runtime::wait::await_condition,
};

use super::{
    Checked, Error, Reconciler, Result, apply::delete_if_present, cached, live::identity,
    read::now, with_retry,
};
use crate::{
    instance::{self, InstanceStatus, record},
    naming,
    render::{self, JobValues},
    values::{Owner, Values},
};

impl Reconciler {
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
        let owner = record::caller(owner, Some(&record));
        let repos = record::repos(Some(&record));
        // NB: a sync of a stopped instance changes nothing, keys included.
        self.running_pod(id).await?;
        let access = self.check_access(&owner, &repos).await?;
        if access.lost.len() == access.repos.len() {
            let _guard = self.locks.lock(&key).await;
            self.revoke_every_key(&owner, &access).await?;
            return Err(Error::AccessLost(access.lost_names()));
        }
        let templates = self.templates.get();
        // NB: the Job renders with the instance's profile, as its pod did.
        let profile = templates.profiles().effective(record::profile(&record));
        let mut values = render::build_profile_values(
            &templates,
            &self.settings,
            &owner,
            &access.repos,
            Some(&profile.name),
            &[],
        )?;
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

    pub(super) async fn run_sync(&self, values: &Values, id: &str) -> Result<()> {
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
        let done = match self.cached_kind(JOB) {
            Some(caches) => {
                let cached = caches.wait_object(JOB, &name, |j| {
                    finished(j.and_then(cached::typed::<Job>).as_ref())
                });
                tokio::time::timeout(self.timeouts.sync, async {
                    cached
                        .await
                        .map(|j| j.as_ref().and_then(cached::typed::<Job>))
                        .map_err(|e| e.to_string())
                })
                .await
            }
            None => {
                tokio::time::timeout(self.timeouts.sync, async {
                    await_condition(jobs.clone(), &name, finished)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
            }
        };
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
            let what = "delete the finished sync Job";
            match delete_if_present(&jobs, name, &delete, what).await {
                // NB: 409: the precondition failed, the Job is another replica's by now.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(Error::kube(what, e)),
                Ok(_) => {}
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
}

/// The kind of the sync Job, as the caches name it.
const JOB: &str = "batch/v1/Job";

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
