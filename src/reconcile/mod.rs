//! The reconciler: renders an instance's desired objects, compares them with what is
//! live, applies the difference with server-side apply and derives every answer from
//! live objects. One async function per lifecycle operation; the GraphQL layer calls
//! these and builds no Kubernetes objects itself.

pub mod apply;
mod error;
pub mod kinds;
mod lifecycle;
mod live;
pub mod plan;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use kube::Client;

pub use self::{
    error::{Error, MAX_ATTEMPTS, reason, retry_delay, with_retry},
    kinds::Kinds,
    lifecycle::{MAX_LOG_BYTES, Provisioned, Stats},
    plan::{Action, Plan, Step},
};
use crate::{activity::IdlePolicy, config::InstanceSettings, render::ActiveTemplates};

/// Result of reconciler operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    client: Client,
    kinds: Kinds,
    templates: Arc<ActiveTemplates>,
    settings: InstanceSettings,
    timeouts: Timeouts,
    locks: Locks,
    idle: IdlePolicy,
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
    /// A reconciler over `client`, rendering with the templates in `templates`.
    pub fn new(
        client: Client,
        kinds: Kinds,
        templates: Arc<ActiveTemplates>,
        settings: InstanceSettings,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            client,
            kinds,
            templates,
            settings,
            timeouts,
            locks: Locks::default(),
            idle: IdlePolicy::default(),
        }
    }

    /// The same reconciler, reporting `idleStopAt` by `idle` (off by default).
    pub fn with_idle_policy(mut self, idle: IdlePolicy) -> Self {
        self.idle = idle;
        self
    }

    /// When a running `instance` stops for being idle, during its warning window.
    fn idle_stop_at(&self, instance: &crate::instance::Instance) -> Option<jiff::Timestamp> {
        if instance.status.status != crate::instance::InstanceStatus::Running {
            return None;
        }
        crate::activity::idle_stop_at(
            self.idle,
            instance.last_accessed_at?,
            jiff::Timestamp::now(),
        )
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

    /// The resolved kinds (Istio availability among them).
    pub fn kinds(&self) -> &Kinds {
        &self.kinds
    }
}

/// Per-owner locks: calls for the same instance are serialised within a replica (across
/// replicas, server-side apply keeps them safe).
#[derive(Default)]
struct Locks {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Locks {
    async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
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
