//! Reads: an instance, the caller's list, status, logs and totals; every answer derived
//! from live objects, never from a render (see [`super::restart`]).

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    api::{ListParams, LogParams},
    runtime::wait::await_condition,
};

use super::{
    Error, Reconciler, Result,
    live::{self, identity},
    with_retry,
};
use crate::{
    instance::{self, Instance, InstanceStatus, Status, record},
    naming,
    quantity::Quantity,
    values::Owner,
};

/// The most bytes of log `codeServerLogs` answers with (the newest whole lines that fit).
pub const MAX_LOG_BYTES: usize = 1024 * 1024;

/// Totals over every instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Instances (PVCs).
    pub total: usize,
    /// Instances by status.
    pub by_status: BTreeMap<InstanceStatus, usize>,
    /// Storage allocated to workspaces.
    pub storage: Quantity,
}

/// Who instance `id` belongs to, as the cache knows it (see [`Reconciler::workspace_access`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceAccess {
    /// The cache of records has not completed its first listing: nothing can be decided.
    NotSynced,
    /// No such instance, or it is being deleted.
    Missing,
    /// The caller owns it.
    Owner,
    /// Someone else owns it (their user id, for the audit log).
    Other(String),
}

impl Reconciler {
    /// Whether the caller (`user_id`, `sub`) owns instance `id`, by the rule every API
    /// operation uses, from the cache alone (no API call): for the workspace gatekeeper.
    pub fn workspace_access(&self, id: &str, user_id: &str, sub: &str) -> WorkspaceAccess {
        if !self.caches.pvcs().synced() {
            return WorkspaceAccess::NotSynced;
        }
        let Some(pvc) = self.caches.record(id) else {
            return WorkspaceAccess::Missing;
        };
        // NB: a deleted workspace (kept for DELETE_RETENTION) is nobody's to open, its
        // owner's included, whatever pod may be left of a delete that stopped halfway.
        if pvc.metadata.deletion_timestamp.is_some() || crate::instance::retention::is_deleted(&pvc)
        {
            return WorkspaceAccess::Missing;
        }
        let owner = Owner {
            user_id: user_id.to_owned(),
            email: None,
            sub: Some(sub.to_owned()),
            known_name: None,
            gitea_token: None,
        };
        match identity(&owner) {
            Ok((safe, key)) if live::owns_record(&pvc, &owner, &safe, &key) => {
                WorkspaceAccess::Owner
            }
            _ => WorkspaceAccess::Other(record::user_id(&pvc).unwrap_or_default().to_owned()),
        }
    }

    /// The caller's instance `id`; `NotFound` when it is missing or another user's.
    pub async fn get(&self, owner: &Owner, id: &str) -> Result<Instance> {
        let record = self.owned_record_any(owner, id).await?;
        let pod = self.pod(id).await?;
        let instance = self.instance(&record, pod.as_ref())?;
        Ok(self.explain(instance, pod.as_ref()).await)
    }

    /// The caller's instances.
    pub async fn list(&self, owner: &Owner) -> Result<Vec<Instance>> {
        let (safe, key) = identity(owner)?;
        let mut records: Vec<_> = self
            .records_with_pods(&Records::Owner(&key))
            .await?
            .into_iter()
            .filter(|(pvc, _)| live::owns(pvc, &safe, &key))
            .collect();
        // NB: an instance named by the earlier naming scheme is listed under that name (its
        // owner label is that name, never today's key: the two listings never overlap).
        if let Some(legacy) = naming::legacy_safe_name(&owner.user_id) {
            records.extend(
                self.records_with_pods(&Records::Owner(&legacy))
                    .await?
                    .into_iter()
                    .filter(|(pvc, _)| live::owns_legacy(pvc, owner)),
            );
        }
        records
            .iter()
            .map(|(pvc, pod)| self.instance(pvc, pod.as_deref()))
            .collect()
    }

    pub(super) fn instance(
        &self,
        pvc: &PersistentVolumeClaim,
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
        instance.restart_pending = instance.status.status != InstanceStatus::Deleted
            && pod.is_some_and(|pod| self.restart_pending(pvc, pod, &instance.repos));
        instance.idle_stop_at = self.idle_stop_at(&instance);
        instance.profile = Some(self.shown_profile(pvc));
        Ok(instance)
    }

    /// The status of the caller's instance `id`.
    pub async fn status(&self, owner: &Owner, id: &str) -> Result<Status> {
        let record = self.owned_record_any(owner, id).await?;
        let pod = self.pod(id).await?;
        Ok(Instance::record_status(
            &record,
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

    /// Totals over every instance in the namespace: from the facts the caches keep of
    /// each record and pod (no object parsed), or two list calls before they have synced.
    pub async fn stats(&self) -> Result<Stats> {
        let now = now();
        let unschedulable = self.timeouts.unschedulable;
        let mut stats = Stats::default();
        let mut count = |status: InstanceStatus, size: Option<Quantity>| {
            stats.total += 1;
            *stats.by_status.entry(status).or_default() += 1;
            stats.storage = stats.storage + size.unwrap_or_default();
        };
        if let Some(caches) = self.cached() {
            caches.each_record(|record, pod| {
                if record.instance.is_some() && record.safe_name.is_some() {
                    let status = if record.deleted {
                        InstanceStatus::Deleted
                    } else {
                        pod.map_or(InstanceStatus::Stopped, |p| p.status.at(now, unschedulable))
                    };
                    count(status, record.storage);
                }
            });
            return Ok(stats);
        }
        for (pvc, pod) in self.records_with_pods(&Records::All).await? {
            if let Some(status) = Instance::status_of(&pvc, pod.as_deref(), now, unschedulable) {
                count(status, record::storage(&pvc));
            }
        }
        Ok(stats)
    }

    /// The owner an admin names by user id: the owner recorded on that user's instance
    /// (its `sub`, which the name alone does not give), or just the name when the user
    /// has no instance. For admin dry runs only: ownership checks never use it.
    pub async fn named_owner(&self, user_id: &str) -> Result<Owner> {
        let safe = naming::safe_name(user_id).map_err(crate::values::ValuesError::from)?;
        let mut records = self.records(&Records::User(&safe)).await?;
        if records.is_empty()
            && let Some(legacy) = naming::legacy_safe_name(user_id)
        {
            // NB: under the earlier scheme's name, only a record of exactly this user id.
            records = self.records(&Records::User(&legacy)).await?;
            records.retain(|pvc| record::user_id(pvc) == Some(user_id));
        }
        Ok(match records.first() {
            Some(pvc) => record::owner_as_recorded(Owner::new(user_id), pvc),
            None => Owner::new(user_id),
        })
    }

    /// The instance records `which` selects, ordered by name: from the caches, or one
    /// list call before they have synced.
    pub(super) async fn records(
        &self,
        which: &Records<'_>,
    ) -> Result<Vec<Arc<PersistentVolumeClaim>>> {
        if let Some(caches) = self.cached() {
            let mut records: Vec<_> = match which {
                Records::All => caches.records(),
                Records::Owner(key) => caches.records_of_owner(key),
                Records::User(safe) => caches.records_of_user(safe),
            };
            records.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            return Ok(records);
        }
        let lp = ListParams::default().labels(&which.selector());
        let api = self.pvcs();
        let list = with_retry("list PVCs", || api.list(&lp))
            .await
            .map_err(|e| Error::kube("list workspace volumes", e))?;
        Ok(list.items.into_iter().map(Arc::new).collect())
    }

    /// The instance records `which` selects (those with an instance id), each with its
    /// code-server pod if it has one: from the caches, or two list calls before they
    /// have synced, whatever the number of instances.
    pub(super) async fn records_with_pods(
        &self,
        which: &Records<'_>,
    ) -> Result<Vec<(Arc<PersistentVolumeClaim>, Option<Arc<Pod>>)>> {
        if let Some(caches) = self.cached() {
            let records = self.records(which).await?;
            return Ok(records
                .into_iter()
                .filter_map(|pvc| {
                    let pod = caches
                        .pod(record::instance_id(&pvc)?)
                        .filter(|pod| is_code_server(pod));
                    Some((pvc, pod))
                })
                .collect());
        }
        let selector = which.selector();
        let pod_lp = ListParams::default().labels(&format!(
            "{selector},{}={}",
            naming::LABEL_NAME,
            naming::APP_NAME_VALUE
        ));
        let pod_api = self.pods();
        let (pvcs, pods) = futures::try_join!(self.records(which), async {
            with_retry("list pods", || pod_api.list(&pod_lp))
                .await
                .map_err(|e| Error::kube("list pods", e))
        },)?;
        let mut pods: BTreeMap<String, Arc<Pod>> = pods
            .items
            .into_iter()
            .filter_map(|p| Some((p.metadata.name.clone()?, Arc::new(p))))
            .collect();
        Ok(pvcs
            .into_iter()
            .filter_map(|pvc| {
                let pod = pods.remove(record::instance_id(&pvc)?);
                Some((pvc, pod))
            })
            .collect())
    }

    /// Waits (watching, not polling) until the pod is ready or failed, or the ready
    /// timeout passes, then reads the instance.
    pub(super) async fn wait_and_get(&self, owner: &Owner, id: &str) -> Result<Instance> {
        let unschedulable = self.timeouts.unschedulable;
        let settled = move |p: Option<&Pod>| {
            matches!(
                instance::derive_status(p, now(), unschedulable).status,
                InstanceStatus::Running | InstanceStatus::Error | InstanceStatus::Stopped
            )
        };
        let watched = match self.cached() {
            Some(caches) => {
                tokio::time::timeout(self.timeouts.ready, async {
                    caches
                        .pods()
                        .wait_object(id, settled)
                        .await
                        .map(|pod| pod.map(|pod| Pod::clone(&pod)))
                        .map_err(|e| e.to_string())
                })
                .await
            }
            None => {
                tokio::time::timeout(self.timeouts.ready, async {
                    await_condition(self.pods(), id, settled)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
            }
        };
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

/// Which instance records a read is about.
pub(super) enum Records<'a> {
    /// Every instance's.
    All,
    /// The owner's with this owner key.
    Owner(&'a str),
    /// The user's with this safe name.
    User(&'a str),
}

impl Records<'_> {
    /// The label selector of these records.
    fn selector(&self) -> String {
        match self {
            Self::All => live::managed_selector(),
            Self::Owner(key) => live::owner_selector(key),
            Self::User(safe) => {
                format!("{},{}={safe}", live::managed_selector(), naming::LABEL_USER)
            }
        }
    }
}

/// True for an instance's code-server pod (not a sync Job's).
fn is_code_server(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(naming::LABEL_NAME))
        .is_some_and(|v| v == naming::APP_NAME_VALUE)
}

/// Seconds since the epoch.
pub(super) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
