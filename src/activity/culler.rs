//! The idle culler: on the Lease holder, every IDLE_CHECK_INTERVAL, each running
//! instance's heartbeat is read, `lastAccessedAt` written where due and idle instances
//! stopped.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions},
};
use prometheus::IntCounter;

use super::{
    healthz,
    policy::{
        ANNOTATION_LAST_ACCESSED, FIELD_MANAGER, IdlePolicy, idle_stop_at, kept_alive, last_access,
        recorded, should_record, started,
    },
};
use crate::{
    errors::error_chain,
    instance::{self, InstanceStatus},
    instance::{
        StopReason,
        lifecycle::{self, Heal},
    },
    lease::{LeaseError, LeaseLock},
    naming,
    reconcile::{Healed, Reconciler},
};

/// How the culler works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleSettings {
    /// Time between two checks of the running instances.
    pub check_interval: Duration,
    /// When an idle instance stops, and how long before that it says so.
    pub policy: IdlePolicy,
    /// How many instances' `/healthz` are asked at once.
    pub check_concurrency: usize,
    /// Where `/healthz` answers, with `{service}` and `{namespace}` placeholders.
    pub healthz_url: String,
    /// The Lease (in the instances' namespace) that elects the one replica that checks.
    pub lease_name: String,
    /// This replica's identity in the Lease; a random one when unset or empty.
    pub pod_name: Option<String>,
}

/// Why a check failed as a whole (one instance's failure is logged and counted instead).
#[derive(Debug, thiserror::Error)]
pub enum CullError {
    /// The Lease could not be read or written.
    #[error("failed to take part in the idle culler election")]
    Lease(#[from] LeaseError),
    /// The instances could not be listed.
    #[error("failed to list the instances to check")]
    List(#[source] Box<kube::Error>),
    /// The HTTP client could not be built.
    #[error("failed to build the /healthz client")]
    Client(#[source] reqwest::Error),
}

/// What one check did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Whether this replica held the Lease (only then does it check).
    pub leader: bool,
    /// Running instances checked.
    pub checked: usize,
    /// Instances whose `lastAccessedAt` was written.
    pub recorded: Vec<String>,
    /// Instances stopped for being idle.
    pub stopped: Vec<String>,
    /// Instances whose /healthz did not answer usefully (never stopped for it).
    pub unreachable: Vec<String>,
    /// Instances with a pod whose guards (NetworkPolicies) were brought up to the
    /// current templates (after a reload, or on the first check as the Lease holder).
    pub guarded: Vec<String>,
    /// Instances whose lost pod was started again (self-healing).
    pub restarted: Vec<String>,
    /// Instances whose pod was lost once more than the retries allow, left stopped.
    pub given_up: Vec<String>,
    /// Deleted instances whose recorded purge time had come: their volume deleted.
    pub purged: Vec<String>,
    /// The images the pre-pull DaemonSet was (re)applied with at this check (empty: it
    /// was deleted, pre-pulling being off), when what the templates want changed since it
    /// was last applied.
    pub prepulled: Option<Vec<String>>,
}

/// The idle culler: one check per IDLE_CHECK_INTERVAL, on the Lease holder only.
#[derive(Debug, Clone)]
pub struct Culler {
    reconciler: Arc<Reconciler>,
    lease: LeaseLock,
    http: reqwest::Client,
    healthz_url: String,
    policy: IdlePolicy,
    concurrency: usize,
    interval: Duration,
    stops: Option<IntCounter>,
    /// The template revision whose guards every instance with a pod has had applied by
    /// this replica as the Lease holder.
    guarded_revision: Arc<Mutex<Option<String>>>,
    /// The template revision whose pre-pull DaemonSet this replica applied as the Lease
    /// holder.
    prepulled_revision: Arc<Mutex<Option<String>>>,
    /// `codeserver_prepull_nodes{state}`.
    prepull_nodes: Option<prometheus::IntGaugeVec>,
}

impl Culler {
    /// A culler over `reconciler`'s namespace with these settings; `stops` counts idle
    /// stops (`codeserver_idle_stops_total`).
    pub fn new(
        reconciler: Arc<Reconciler>,
        settings: &IdleSettings,
        stops: Option<IntCounter>,
    ) -> Result<Self, CullError> {
        let interval = settings.check_interval;
        let identity = settings
            .pod_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("codeserver-service-{}", uuid::Uuid::new_v4()));
        // NB: the lease outlives two missed renewals, so a slow check does not hand it over.
        let lease = LeaseLock::new(
            reconciler.client().clone(),
            &reconciler.settings().namespace,
            &settings.lease_name,
            &identity,
            interval.saturating_mul(3),
        );
        Ok(Self {
            reconciler,
            lease,
            http: healthz::client().map_err(CullError::Client)?,
            healthz_url: settings.healthz_url.clone(),
            policy: settings.policy,
            concurrency: settings.check_concurrency,
            interval,
            stops,
            guarded_revision: Arc::default(),
            prepulled_revision: Arc::default(),
            prepull_nodes: None,
        })
    }

    /// The same culler, keeping `codeserver_prepull_nodes` up to date.
    pub fn with_prepull_gauges(mut self, gauges: prometheus::IntGaugeVec) -> Self {
        self.prepull_nodes = Some(gauges);
        self
    }

    /// Checks every IDLE_CHECK_INTERVAL until the task is dropped.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.check(Timestamp::now()).await {
                Ok(report) if report.leader => tracing::debug!(
                    checked = report.checked,
                    recorded = report.recorded.len(),
                    stopped = report.stopped.len(),
                    unreachable = report.unreachable.len(),
                    "idle check"
                ),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "idle check failed")
                }
            }
        }
    }

    /// One check at `now`: on the Lease holder, every running instance's heartbeat is
    /// read, `lastAccessedAt` written where due, and idle instances stopped; and when the
    /// templates changed since its last check (or it has just become the holder), the
    /// guards of every instance with a pod are brought up to them. Lost pods are started
    /// again, and deleted instances whose recorded purge time has come are purged.
    pub async fn check(&self, now: Timestamp) -> Result<Report, CullError> {
        if !self.lease.try_acquire(now).await? {
            return Ok(Report::default());
        }
        let ns = &self.reconciler.settings().namespace;
        let client = self.reconciler.client().clone();
        let lp = ListParams::default().labels(&format!(
            "{}={}",
            naming::LABEL_MANAGED_BY,
            naming::MANAGED_BY_VALUE
        ));
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(client, ns);
        let pvc_list = pvcs
            .list(&lp)
            .await
            .map_err(|e| CullError::List(Box::new(e)))?;
        let pod_list = pods
            .list(&lp)
            .await
            .map_err(|e| CullError::List(Box::new(e)))?;
        // NB: each record's pod, found once (a scan per record would be records × pods).
        let pods_by_name: HashMap<&str, &Pod> = pod_list
            .items
            .iter()
            .filter_map(|p| Some((p.metadata.name.as_deref()?, p)))
            .collect();
        let pod_of = |pvc: &PersistentVolumeClaim| -> Option<&Pod> {
            crate::instance::record::instance_id(pvc).and_then(|id| pods_by_name.get(id).copied())
        };
        let guarded = self.follow_templates(&pvc_list.items, &pod_of).await;
        let (restarted, given_up) = self.heal(&pvc_list.items, &pod_of, now).await;
        // NB: by the purge time recorded on each deleted record, never DELETE_RETENTION.
        let purged = self
            .reconciler
            .purge_due(&pvc_list.items, now, self.concurrency)
            .await;
        let prepulled = self.follow_prepull().await;
        let running: Vec<(PersistentVolumeClaim, Pod)> = pvc_list
            .items
            .iter()
            .filter_map(|pvc| {
                let pod = pod_of(pvc)?;
                let status = instance::derive_status(Some(pod), now.as_second(), Duration::MAX);
                (status.status == InstanceStatus::Running).then(|| (pvc.clone(), pod.clone()))
            })
            .collect();
        let mut report = Report {
            leader: true,
            checked: running.len(),
            guarded,
            restarted,
            given_up,
            purged,
            prepulled,
            ..Report::default()
        };
        let (pvcs, pods) = (&pvcs, &pods);
        let outcomes: Vec<(String, CheckOutcome)> = futures::stream::iter(running)
            .map(|(pvc, pod)| async move {
                let id = pod.metadata.name.clone().unwrap_or_default();
                let outcome = self.check_one(pvcs, pods, &pvc, &pod, now).await;
                (id, outcome)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for (id, outcome) in outcomes {
            if outcome.unreachable {
                report.unreachable.push(id.clone());
            }
            if outcome.recorded {
                report.recorded.push(id.clone());
            }
            if outcome.stopped {
                report.stopped.push(id);
            }
        }
        report.recorded.sort();
        report.stopped.sort();
        report.unreachable.sort();
        Ok(report)
    }

    /// Applies the guards of the current templates to every instance with a pod (not
    /// being deleted), once per template revision: the ids whose guards changed. A
    /// revision whose pass failed somewhere is tried again at the next check; none is
    /// tried before the caches have synced (the plans read them).
    async fn follow_templates<'p>(
        &self,
        pvcs: &[PersistentVolumeClaim],
        pod_of: &impl Fn(&PersistentVolumeClaim) -> Option<&'p Pod>,
    ) -> Vec<String> {
        let revision = self.reconciler.templates().get().revision().to_owned();
        let done = lock(&self.guarded_revision).as_deref() == Some(revision.as_str());
        if done || !self.reconciler.caches_synced() {
            return Vec::new();
        }
        let with_pod: Vec<PersistentVolumeClaim> = pvcs
            .iter()
            .filter(|pvc| pod_of(pvc).is_some_and(|p| p.metadata.deletion_timestamp.is_none()))
            .cloned()
            .collect();
        let reconciler = &self.reconciler;
        let results: Vec<(String, Result<Vec<String>, _>)> = futures::stream::iter(with_pod)
            .map(|pvc| async move {
                let id = crate::instance::record::instance_id(&pvc)
                    .unwrap_or_default()
                    .to_owned();
                (id, reconciler.apply_guards(&pvc).await)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut guarded = Vec::new();
        let mut failed = false;
        for (id, result) in results {
            match result {
                Ok(written) if written.is_empty() => {}
                Ok(_) => guarded.push(id),
                Err(error) => {
                    failed = true;
                    tracing::warn!(instance = %id, error = %error_chain(&error), "failed to apply the instance's guards");
                }
            }
        }
        if !failed {
            *lock(&self.guarded_revision) = Some(revision);
        }
        guarded.sort();
        guarded
    }

    /// Restarts the instances meant to run whose pod was lost (the reconciler decides
    /// again from the API server for each one this listing names): the ids restarted and
    /// those given up on.
    async fn heal<'p>(
        &self,
        pvcs: &[PersistentVolumeClaim],
        pod_of: &impl Fn(&PersistentVolumeClaim) -> Option<&'p Pod>,
        now: Timestamp,
    ) -> (Vec<String>, Vec<String>) {
        let candidates: Vec<String> = pvcs
            .iter()
            .filter_map(|pvc| {
                let id = crate::instance::record::instance_id(pvc)?;
                let heal = crate::instance::lifecycle::heal(pvc, pod_of(pvc), now);
                matches!(heal, Heal::Restart { .. } | Heal::GiveUp | Heal::Settled)
                    .then(|| id.to_owned())
            })
            .collect();
        let reconciler = &self.reconciler;
        let results: Vec<(String, Result<Healed, _>)> = futures::stream::iter(candidates)
            .map(|id| async move {
                let healed = reconciler.heal(&id, now).await;
                (id, healed)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let (mut restarted, mut given_up) = (Vec::new(), Vec::new());
        for (id, result) in results {
            match result {
                Ok(Healed::Restarted(_)) => restarted.push(id),
                Ok(Healed::GaveUp) => given_up.push(id),
                Ok(Healed::Nothing | Healed::Settled) => {}
                Err(error) => {
                    tracing::warn!(instance = %id, error = %error_chain(&error), "failed to restart a lost workspace");
                }
            }
        }
        restarted.sort();
        given_up.sort();
        (restarted, given_up)
    }

    /// Applies the pre-pull DaemonSet once per template revision (and deletes it when
    /// pre-pulling is off), then reads how far it got for `codeserver_prepull_nodes`. The
    /// images applied, when it was applied now.
    async fn follow_prepull(&self) -> Option<Vec<String>> {
        let revision = self.reconciler.templates().get().revision().to_owned();
        let done = lock(&self.prepulled_revision).as_deref() == Some(revision.as_str());
        if done && self.prepull_nodes.is_none() {
            return None;
        }
        // NB: one read per check: the apply compares with it, the gauges show it.
        let mut live = match self.reconciler.prepull_daemonset().await {
            Ok(live) => live,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "failed to read the pre-pull DaemonSet");
                return None;
            }
        };
        let mut applied = None;
        if !done {
            match self.reconciler.apply_prepull(live).await {
                Ok((images, now)) => {
                    *lock(&self.prepulled_revision) = Some(revision);
                    applied = images;
                    live = now;
                }
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "failed to apply the pre-pull DaemonSet");
                    return None;
                }
            }
        }
        if let Some(gauges) = &self.prepull_nodes {
            let (ready, total) = live
                .as_ref()
                .map(crate::reconcile::prepull_status_of)
                .map_or((0, 0), |s| (s.ready_nodes, s.total_nodes));
            gauges.with_label_values(&["ready"]).set(i64::from(ready));
            gauges.with_label_values(&["total"]).set(i64::from(total));
        }
        applied
    }

    async fn check_one(
        &self,
        pvcs: &Api<PersistentVolumeClaim>,
        pods: &Api<Pod>,
        pvc: &PersistentVolumeClaim,
        pod: &Pod,
        now: Timestamp,
    ) -> CheckOutcome {
        let mut outcome = CheckOutcome::default();
        let id = pod.metadata.name.clone().unwrap_or_default();
        let ns = &self.reconciler.settings().namespace;
        let heartbeat = match healthz::heartbeat(&self.http, &self.healthz_url, &id, ns).await {
            Ok(h) => h.at(now),
            Err(error) => {
                tracing::info!(instance = %id, %error, "no usable /healthz answer; not stopping");
                outcome.unreachable = true;
                return outcome;
            }
        };
        let stored = recorded(pvc);
        // NB: recorded to the second; comparing finer values would rewrite the same
        // second on every check in the warning window.
        let observed = last_access(None, heartbeat, started(pod)).map(whole_seconds);
        if should_record(self.policy, stored, observed, now)
            && let (Some(at), Some(name)) = (observed, pvc.metadata.name.as_deref())
        {
            let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_LAST_ACCESSED: at.to_string()}}});
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            // NB: a merge patch, not an apply: it cannot create a PVC that was just
            // deleted (404 instead).
            match pvcs.patch(name, &params, &Patch::Merge(&patch)).await {
                Ok(_) => outcome.recorded = true,
                Err(error) => {
                    tracing::warn!(instance = %id, error = %error, "failed to record lastAccessedAt")
                }
            }
        }
        let Some(last) = last_access(stored, heartbeat, started(pod)) else {
            return outcome;
        };
        let last = kept_alive(self.policy, last, lifecycle::keep_alive_until(pvc));
        if idle_stop_at(self.policy, last, now).is_some_and(|stop| now >= stop) {
            // NB: the reason first: a pod gone without one would be restarted as lost.
            let stop = lifecycle::on_stop(StopReason::Idle);
            let name = pvc.metadata.name.as_deref().unwrap_or_default();
            if let Err(error) = self.reconciler.record_lifecycle(name, &stop).await {
                tracing::warn!(instance = %id, %error, "failed to record an idle stop; not stopping");
                return outcome;
            }
            // NB: the uid precondition: a pod recreated since the list is not deleted.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pods.delete(&id, &params).await {
                Ok(_) => {
                    tracing::info!(instance = %id, last_accessed_at = %last, "stopped an idle instance");
                    if let Some(c) = &self.stops {
                        c.inc();
                    }
                    outcome.stopped = true;
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(error) => {
                    tracing::warn!(instance = %id, %error, "failed to stop an idle instance")
                }
            }
        }
        outcome
    }
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[derive(Debug, Default)]
struct CheckOutcome {
    recorded: bool,
    stopped: bool,
    unreachable: bool,
}

/// The lock's data, also after a panic elsewhere left it poisoned (it is plain data).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
