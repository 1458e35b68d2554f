//! State shared by the server, the handle and the lifecycle tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::faults::{Fault, RecordedRequest};
use crate::lifecycle::{self, JobBehaviour, PodBehaviour};
use crate::{SimOptions, hooks, store};

/// State shared by the server, the handle and the lifecycle tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub opts: SimOptions,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub faults: Mutex<Vec<Fault>>,
    pub pod_behaviours: Mutex<HashMap<String, PodBehaviour>>,
    pub job_behaviours: Mutex<HashMap<String, JobBehaviour>>,
    /// (namespace, pod, container) → log lines.
    pub logs: Mutex<HashMap<(String, String, String), Vec<String>>>,
    /// Pod uid → token of the lifecycle driver currently in charge.
    pub drivers: Mutex<HashMap<String, u64>>,
    pub counters: Mutex<Counters>,
    /// Pods (by uid) whose grace period has run out.
    pub grace_expired: Mutex<std::collections::HashSet<String>>,
    pub addr: Mutex<Option<std::net::SocketAddr>>,
    /// Starts the controllers' work after committed writes (the lifecycle).
    pub run_hooks: hooks::HookRunner,
}

/// Allocation counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub cluster_ip: u32,
    pub pod_ip: u32,
    pub driver: u64,
}

/// Lock a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(opts: SimOptions) -> Arc<Self> {
        Arc::new(Shared {
            store: Mutex::new(store::Store::new()),
            opts,
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            pod_behaviours: Mutex::new(HashMap::new()),
            job_behaviours: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            drivers: Mutex::new(HashMap::new()),
            counters: Mutex::new(Counters::default()),
            grace_expired: Mutex::new(std::collections::HashSet::new()),
            addr: Mutex::new(None),
            run_hooks: lifecycle::run,
        })
    }
}
