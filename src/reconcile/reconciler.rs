//! The reconciler itself: its client, caches, templates, settings and limits, and the
//! per-owner locks and start admission that every operation shares.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use kube::Client;
use prometheus::IntGaugeVec;

use super::{Error, Kinds, Result, live, restart::PodHashes, with_retry};
use crate::{
    activity::IdlePolicy,
    cache::Caches,
    capacity::{Capacity, Turn},
    render::ActiveTemplates,
    values::InstanceSettings,
};

/// Timing of the reconciler.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// How long provision and start wait for readiness (CODESERVER_TIMEOUT).
    pub ready: Duration,
    /// How long a pod may be unschedulable before the instance reports ERROR.
    pub unschedulable: Duration,
    /// How long a sync Job may run before it is reported as failed.
    pub sync: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            ready: Duration::from_secs(300),
            unschedulable: Duration::from_secs(120),
            sync: Duration::from_secs(330),
        }
    }
}

/// Turns rendered instances into live ones. Cheap to share behind an `Arc`.
pub struct Reconciler {
    pub(super) client: Client,
    /// The watch-backed caches every read comes from once they have synced.
    pub(super) caches: Arc<Caches>,
    /// Writes of ours the caches did not show in time: while any is outstanding, reads
    /// go to the API server.
    pub(super) lagging: Arc<AtomicUsize>,
    pub(super) kinds: Kinds,
    pub(super) templates: Arc<ActiveTemplates>,
    pub(super) settings: InstanceSettings,
    pub(super) timeouts: Timeouts,
    pub(super) locks: Locks,
    /// Gitea, for access checks as the owner and the instances' deploy keys.
    pub(super) gitea: Option<crate::gitea::GiteaClient>,
    pub(super) idle: IdlePolicy,
    pub(super) capacity: Capacity,
    /// The pod spec hash each instance's inputs render to, under the active revision.
    pub(super) pod_hashes: PodHashes,
    /// Digest of the settings that shape what is rendered (see `restart::rendered_from`).
    pub(super) settings_digest: String,
    /// Renders of an instance's templates so far.
    pub(super) renders: AtomicU64,
    /// How long a deleted instance's volume is kept (DELETE_RETENTION); zero: a delete
    /// removes it at once.
    pub(super) delete_retention: Duration,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("namespace", &self.settings.namespace)
            .field("kinds", &self.kinds)
            .finish()
    }
}

impl Reconciler {
    /// A reconciler over `client`, rendering with the templates in `templates`. Starts the
    /// watch-backed caches of every managed kind (so it must be called inside a tokio
    /// runtime); reads come from the API server until they have synced.
    pub fn new(
        client: Client,
        kinds: Kinds,
        templates: Arc<ActiveTemplates>,
        settings: InstanceSettings,
        timeouts: Timeouts,
    ) -> Self {
        let caches = Arc::new(Caches::start(client.clone(), &settings, &kinds, None));
        let settings_digest = crate::naming::hex_digest(format!("{settings:?}").as_bytes());
        Self {
            client,
            caches,
            lagging: Arc::new(AtomicUsize::new(0)),
            kinds,
            templates,
            settings,
            timeouts,
            locks: Locks::default(),
            gitea: None,
            idle: IdlePolicy::default(),
            capacity: Capacity::default(),
            pod_hashes: PodHashes::default(),
            settings_digest,
            renders: AtomicU64::new(0),
            delete_retention: Duration::ZERO,
        }
    }

    /// Checks repository access in Gitea as the owner on start, sync and provision, and
    /// gives each instance its own read-only deploy keys (added and revoked with the
    /// client's service token). Without it, recorded repositories count as readable and
    /// no keys are managed.
    pub fn with_gitea(mut self, gitea: crate::gitea::GiteaClient) -> Self {
        self.gitea = Some(gitea);
        self
    }

    /// Reports the caches' objects per kind in `gauges` (`codeserver_cache_objects`); the
    /// watches keep running.
    pub fn with_cache_gauges(self, gauges: IntGaugeVec) -> Self {
        self.caches.report_to(gauges);
        self
    }

    /// The watch-backed caches the reads come from.
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// True once every cache has completed its first listing (`/ready` waits for it).
    pub fn caches_synced(&self) -> bool {
        self.caches.synced()
    }

    /// The capacity limits (the GraphQL layer applies the per-user mutation rate).
    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    /// The same reconciler, starting instances within `capacity` (no limit by default).
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// Admits a start of instance `id`: waits for its turn among MAX_CONCURRENT_STARTS,
    /// then refuses when MAX_RUNNING_INSTANCES other instances have pods. The admission
    /// lock is held until the caller has created the pod.
    pub(super) async fn admit_start(&self, id: &str) -> Result<Admitted<'_>> {
        let turn = self.capacity.turn().await;
        // NB: without a limit there is nothing to count, and no reason to serialise the
        // starts (converging may wait out a terminating pod's grace period).
        let Some(limit) = self.capacity.max_running() else {
            return Ok(Admitted { turn, _guard: None });
        };
        let guard = self.capacity.admission().await;
        let running = self.running_pods(id).await?;
        if running >= limit {
            return Err(Error::CapacityReached { running, limit });
        }
        Ok(Admitted {
            turn,
            _guard: Some(guard),
        })
    }

    /// Pods of instances other than `id` that exist and are not being deleted.
    async fn running_pods(&self, id: &str) -> Result<usize> {
        let counts = |p: &k8s_openapi::api::core::v1::Pod| {
            p.metadata.deletion_timestamp.is_none()
                && p.metadata.name.as_deref() != Some(id)
                && p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(crate::naming::LABEL_NAME))
                    .is_some_and(|v| v == crate::naming::APP_NAME_VALUE)
        };
        if let Some(caches) = self.cached() {
            return Ok(caches.running_code_servers(id));
        }
        let lp = kube::api::ListParams::default().labels(&format!(
            "{},{}={}",
            live::managed_selector(),
            crate::naming::LABEL_NAME,
            crate::naming::APP_NAME_VALUE
        ));
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), &self.settings.namespace);
        let list = with_retry("list the running instances", || pods.list(&lp))
            .await
            .map_err(|e| Error::kube("count the running instances", e))?;
        Ok(list.items.iter().filter(|p| counts(p)).count())
    }

    /// The same reconciler, reporting `idleStopAt` by `idle` (off by default).
    pub fn with_idle_policy(mut self, idle: IdlePolicy) -> Self {
        self.idle = idle;
        self
    }

    /// When a running `instance` stops for being idle, during its warning window.
    pub(super) fn idle_stop_at(
        &self,
        instance: &crate::instance::Instance,
    ) -> Option<jiff::Timestamp> {
        if instance.status.status != crate::instance::InstanceStatus::Running {
            return None;
        }
        let last = crate::activity::kept_alive(
            self.idle,
            instance.last_accessed_at?,
            instance.keep_alive_until,
        );
        crate::activity::idle_stop_at(self.idle, last, jiff::Timestamp::now())
    }

    /// The Kubernetes client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The active templates.
    pub fn templates(&self) -> &Arc<ActiveTemplates> {
        &self.templates
    }

    /// The instance settings.
    pub fn settings(&self) -> &InstanceSettings {
        &self.settings
    }

    /// How many times this reconciler has rendered an instance's templates: provisioning,
    /// start, delete and the dry runs render; reads render only inputs they have not seen
    /// under the active template revision.
    pub fn renders(&self) -> u64 {
        self.renders.load(Ordering::Relaxed)
    }

    /// The resolved kinds (Istio availability among them).
    pub fn kinds(&self) -> &Kinds {
        &self.kinds
    }
}

/// An admitted start: its turn (held until the start is over) and the admission lock
/// (released once the pod is created).
pub(super) struct Admitted<'a> {
    turn: Turn,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Admitted<'_> {
    /// Releases the admission lock, keeping the turn.
    pub(super) fn created(self) -> Turn {
        self.turn
    }
}

/// Per-owner locks: calls for the same instance are serialised within a replica (across
/// replicas, server-side apply keeps them safe).
#[derive(Default)]
pub(super) struct Locks {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Locks {
    pub(super) async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            map.retain(|_, weak| weak.strong_count() > 0);
            match map.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}
