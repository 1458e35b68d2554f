//! Capacity limits on starting instances: at most MAX_RUNNING_INSTANCES pods at once
//! (provisioning or starting beyond it answers `capacity reached` and creates nothing),
//! and at most MAX_CONCURRENT_STARTS starts in progress, the others waiting their turn in
//! arrival order.
//!
//! NB: the running count is read from the cluster and the check and the pod's creation are
//! serialised within a replica; replicas racing each other can overshoot by the number of
//! replicas. The ResourceQuota in `k8s/` is the hard bound.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use prometheus::IntGauge;
use tokio::{
    sync::{Mutex, MutexGuard, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

/// The capacity limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacitySettings {
    /// Most instances running at once; 0: no limit.
    pub max_running_instances: u64,
    /// Most starts in progress at once; more wait in arrival order.
    pub max_concurrent_starts: u64,
    /// Mutations one user may make per minute; 0: no limit.
    pub mutations_per_minute: u64,
}

impl Default for CapacitySettings {
    /// MAX_RUNNING_INSTANCES, MAX_CONCURRENT_STARTS and MUTATIONS_PER_MINUTE's defaults.
    fn default() -> Self {
        Self {
            max_running_instances: 0,
            max_concurrent_starts: 20,
            mutations_per_minute: 30,
        }
    }
}

/// Gauges of the capacity limits.
#[derive(Debug, Clone)]
pub struct CapacityGauges {
    /// `codeserver_running_instances_limit`: MAX_RUNNING_INSTANCES (0: none).
    pub limit: IntGauge,
    /// `codeserver_start_queue_length`: starts waiting for their turn.
    pub queue: IntGauge,
}

/// The limits and the start queue. Shared by every request of a replica.
#[derive(Debug)]
pub struct Capacity {
    max_running: usize,
    starts: Arc<Semaphore>,
    admission: Mutex<()>,
    waiting: AtomicUsize,
    gauges: Option<CapacityGauges>,
    mutations: Arc<RateLimit>,
}

impl Default for Capacity {
    /// No limits: no running limit, no mutation rate limit, 20 concurrent starts.
    fn default() -> Self {
        Self::new(
            &CapacitySettings {
                mutations_per_minute: 0,
                ..CapacitySettings::default()
            },
            None,
        )
    }
}

/// A start's turn: held until the start is over.
#[derive(Debug)]
pub struct Turn {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Capacity {
    /// Limits from `settings`, reported on `gauges`.
    pub fn new(settings: &CapacitySettings, gauges: Option<CapacityGauges>) -> Self {
        let starts = usize::try_from(settings.max_concurrent_starts)
            .unwrap_or(1)
            .clamp(1, Semaphore::MAX_PERMITS);
        if let Some(g) = &gauges {
            g.limit
                .set(i64::try_from(settings.max_running_instances).unwrap_or(i64::MAX));
        }
        Self {
            max_running: usize::try_from(settings.max_running_instances).unwrap_or(usize::MAX),
            starts: Arc::new(Semaphore::new(starts)),
            admission: Mutex::new(()),
            waiting: AtomicUsize::new(0),
            gauges,
            mutations: Arc::new(RateLimit::per_minute(settings.mutations_per_minute)),
        }
    }

    /// The per-user mutation rate limit.
    pub fn mutations(&self) -> Arc<RateLimit> {
        self.mutations.clone()
    }

    /// The running-instance limit, if any.
    pub fn max_running(&self) -> Option<usize> {
        (self.max_running > 0).then_some(self.max_running)
    }

    /// Waits for a start's turn (first come, first served: tokio's semaphore is fair).
    pub async fn turn(&self) -> Turn {
        self.set_queue(self.waiting.fetch_add(1, Ordering::SeqCst) + 1);
        // NB: the semaphore is never closed, so acquiring cannot fail; were it closed,
        // the start would go ahead rather than never.
        let permit = self.starts.clone().acquire_owned().await.ok();
        self.set_queue(
            self.waiting
                .fetch_sub(1, Ordering::SeqCst)
                .saturating_sub(1),
        );
        Turn { _permit: permit }
    }

    /// Serialises "count the running instances, then create the pod" within a replica.
    pub async fn admission(&self) -> MutexGuard<'_, ()> {
        self.admission.lock().await
    }

    fn set_queue(&self, n: usize) {
        if let Some(g) = &self.gauges {
            g.queue.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// Users' buckets kept at most; full buckets are forgotten first.
const MAX_TRACKED: usize = 10_000;

/// A token bucket per user: `burst` calls at once, refilled at `burst` per minute.
#[derive(Debug)]
pub struct RateLimit {
    burst: f64,
    buckets: std::sync::Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `per_minute` calls per user and minute; 0: no limit.
    pub fn per_minute(per_minute: u64) -> Self {
        Self {
            burst: per_minute as f64,
            buckets: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from `user`'s bucket; `false` when it is empty (nothing is taken).
    pub fn try_take(&self, user: &str) -> bool {
        if self.burst <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let refill = |b: &Bucket| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            (b.tokens + elapsed * self.burst / 60.0).min(self.burst)
        };
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(user) {
            buckets.retain(|_, b| refill(b) < self.burst);
            if buckets.len() >= MAX_TRACKED {
                // NB: every tracked user is mid-burst; refusing a new user would let
                // many identities lock everyone out, so the newcomer goes untracked.
                return true;
            }
        }
        let bucket = buckets.entry(user.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = refill(bucket);
        if tokens < 1.0 {
            *bucket = Bucket { tokens, at: now };
            return false;
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_refills_per_user() {
        let limit = RateLimit::per_minute(3);
        assert!((0..3).all(|_| limit.try_take("ann")));
        assert!(!limit.try_take("ann"));
        assert!(limit.try_take("bob"), "users have their own buckets");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(
            limit.try_take("ann"),
            "one call back after a third of a minute"
        );
        assert!(!limit.try_take("ann"));
        let off = RateLimit::per_minute(0);
        assert!((0..1000).all(|_| off.try_take("ann")));
    }
}
