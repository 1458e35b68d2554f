//! Activity and idle stop. code-server reports on `/healthz` when it last saw its user
//! (`lastHeartbeat`); every IDLE_CHECK_INTERVAL one replica (the holder of a Lease) asks
//! every running instance, keeps `lastAccessedAt` on the instance record (a PVC
//! annotation, written at most every [`RECORD_EVERY`], not on every check), and stops an
//! instance idle for IDLE_TIMEOUT by deleting its pod: the PVC and the work in it stay.
//! For the last IDLE_WARNING seconds before that, the instance shows `idleStopAt`.
//!
//! The decisions are pure functions of the record, the heartbeat and the time
//! ([`last_access`], [`idle_stop_at`], [`should_record`]); [`Culler`] only reads and writes.

use std::{sync::Arc, time::Duration};

use clap::Args;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions},
};
use prometheus::IntCounter;
use serde::Deserialize;

use crate::{
    instance::{self, InstanceStatus},
    lease::{LeaseError, LeaseLock},
    naming,
    reconcile::Reconciler,
};

/// The PVC annotation holding when the instance was last used (RFC 3339).
pub const ANNOTATION_LAST_ACCESSED: &str = "devplatform.io/last-accessed-at";
/// The field manager of the activity annotation (apart from the templates' manager, so
/// that applying the templates never removes it).
pub const FIELD_MANAGER: &str = "codeserver-service-activity";
/// The shortest time between two writes of an instance's `lastAccessedAt`, except that a
/// newer heartbeat is always written while the instance is in its warning window (so that
/// `idleStopAt` moves as soon as the user is back).
pub const RECORD_EVERY: Duration = Duration::from_secs(300);
/// The largest `/healthz` answer read; code-server's is under 100 bytes.
const MAX_HEALTHZ_BYTES: usize = 4096;
/// How long one `/healthz` request may take.
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle culling settings (`serve`).
#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    /// Seconds between two activity checks of the running instances.
    #[arg(long = "idle-check-interval", env = "IDLE_CHECK_INTERVAL",
          value_name = "IDLE_CHECK_INTERVAL", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_check_interval: u64,
    /// Seconds without activity after which a running instance is stopped (its
    /// workspace volume is kept); 0 turns idle stop off.
    #[arg(long = "idle-timeout", env = "IDLE_TIMEOUT", value_name = "IDLE_TIMEOUT",
          default_value_t = 7200, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub idle_timeout: u64,
    /// Seconds before an idle stop during which the instance shows `idleStopAt`.
    #[arg(long = "idle-warning", env = "IDLE_WARNING", value_name = "IDLE_WARNING",
          default_value_t = 900, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub idle_warning: u64,
    /// How many instances' /healthz are asked at once during a check.
    #[arg(long = "idle-check-concurrency", env = "IDLE_CHECK_CONCURRENCY",
          value_name = "IDLE_CHECK_CONCURRENCY", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=200))]
    pub idle_check_concurrency: u64,
    /// Where code-server's /healthz answers for an instance; `{service}` and
    /// `{namespace}` are replaced by the instance's Service and namespace.
    #[arg(long = "healthz-url", env = "HEALTHZ_URL", value_name = "HEALTHZ_URL",
          default_value = DEFAULT_HEALTHZ_URL, value_parser = healthz_url)]
    pub healthz_url: String,
    /// Name of the Lease (in CODESERVER_NAMESPACE) that elects the one replica that checks
    /// and stops idle instances.
    #[arg(
        long = "idle-lease-name",
        env = "IDLE_LEASE_NAME",
        value_name = "IDLE_LEASE_NAME",
        default_value = "codeserver-service-idle-culler"
    )]
    pub idle_lease_name: String,
    /// This replica's identity in the Lease (the pod name, from the downward API); a
    /// random one when unset.
    #[arg(long = "pod-name", env = "POD_NAME", value_name = "POD_NAME")]
    pub pod_name: Option<String>,
}

/// The default HEALTHZ_URL: the instance Service's cluster DNS name (the Service's port
/// 80 targets code-server's port).
pub const DEFAULT_HEALTHZ_URL: &str = "http://{service}.{namespace}.svc.cluster.local/healthz";

/// Checks a HEALTHZ_URL template: only `{service}` and `{namespace}` placeholders, the
/// former required, and an http(s) URL once they are filled in.
pub fn healthz_url(template: &str) -> Result<String, String> {
    if !template.contains("{service}") {
        return Err("must contain {service}".to_owned());
    }
    let filled = fill(template, "code-server-x", "ns");
    if filled.contains('{') || filled.contains('}') {
        return Err("only {service} and {namespace} may be used as placeholders".to_owned());
    }
    match url::Url::parse(&filled) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(template.to_owned())
        }
        _ => Err("must be an http(s) URL".to_owned()),
    }
}

fn fill(template: &str, service: &str, namespace: &str) -> String {
    template
        .replace("{service}", service)
        .replace("{namespace}", namespace)
}

/// When an instance stops for being idle, and how long before that it says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdlePolicy {
    /// Idle time after which the instance stops; zero: never.
    pub timeout: Duration,
    /// How long before the stop `idleStopAt` shows.
    pub warning: Duration,
}

impl IdlePolicy {
    /// The policy of these settings.
    pub fn from_args(args: &IdleArgs) -> Self {
        Self {
            timeout: Duration::from_secs(args.idle_timeout),
            warning: Duration::from_secs(args.idle_warning),
        }
    }

    /// Whether idle instances are stopped at all.
    pub fn enabled(&self) -> bool {
        !self.timeout.is_zero()
    }
}

/// What code-server's `/healthz` answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// `alive` or `expired`.
    pub status: String,
    /// Last activity, Unix milliseconds; 0 when there was none since code-server started.
    pub last_heartbeat: i64,
}

impl Heartbeat {
    /// The last activity, if any, never later than `now` (the pod is the user's: it may
    /// claim anything).
    pub fn at(&self, now: Timestamp) -> Option<Timestamp> {
        if self.last_heartbeat <= 0 {
            return None;
        }
        // NB: a value past the end of time is a claim in the future as well.
        let at = Timestamp::from_millisecond(self.last_heartbeat).unwrap_or(Timestamp::MAX);
        Some(at.min(now))
    }
}

/// The recorded `lastAccessedAt` of a PVC.
pub fn recorded(pvc: &PersistentVolumeClaim) -> Option<Timestamp> {
    pvc.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_LAST_ACCESSED)?
        .parse()
        .ok()
}

/// When the pod started (else was created): a fresh start counts as use.
pub fn started(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The last use: the latest of the record, the heartbeat and the pod's start.
pub fn last_access(
    recorded: Option<Timestamp>,
    heartbeat: Option<Timestamp>,
    started: Option<Timestamp>,
) -> Option<Timestamp> {
    [recorded, heartbeat, started].into_iter().flatten().max()
}

/// When a running instance last used at `last` stops, if `now` is within the warning
/// window (or past the stop); `None` when idle stop is off or the stop is further away.
pub fn idle_stop_at(policy: IdlePolicy, last: Timestamp, now: Timestamp) -> Option<Timestamp> {
    if !policy.enabled() {
        return None;
    }
    let stop = last.checked_add(policy.timeout).ok()?;
    let warn_from = stop.checked_sub(policy.warning).ok()?;
    (now >= warn_from).then_some(stop)
}

/// Whether `observed` (the latest use seen now) should be written over `recorded`: when
/// nothing is recorded, when it is [`RECORD_EVERY`] newer, or when it is newer and the
/// recorded value puts the instance in its warning window.
pub fn should_record(
    policy: IdlePolicy,
    recorded: Option<Timestamp>,
    observed: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    let Some(observed) = observed else {
        return false;
    };
    let Some(recorded) = recorded else {
        return true;
    };
    if observed <= recorded {
        return false;
    }
    let newer = observed.duration_since(recorded).unsigned_abs();
    newer >= RECORD_EVERY || idle_stop_at(policy, recorded, now).is_some()
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
}

impl Culler {
    /// A culler over `reconciler`'s namespace with these settings; `stops` counts idle
    /// stops (`codeserver_idle_stops_total`).
    pub fn new(
        reconciler: Arc<Reconciler>,
        args: &IdleArgs,
        stops: Option<IntCounter>,
    ) -> Result<Self, CullError> {
        let interval = Duration::from_secs(args.idle_check_interval);
        let identity = args
            .pod_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("codeserver-service-{}", uuid::Uuid::new_v4()));
        // NB: the lease outlives two missed renewals, so a slow check does not hand it over.
        let lease = LeaseLock::new(
            reconciler.client().clone(),
            &reconciler.settings().namespace,
            &args.idle_lease_name,
            &identity,
            interval.saturating_mul(3),
        );
        // NB: the pod answering /healthz belongs to its user: never follow a redirect
        // (it could point anywhere the service can reach), bound time and size.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HEALTHZ_TIMEOUT)
            .build()
            .map_err(CullError::Client)?;
        Ok(Self {
            reconciler,
            lease,
            http,
            healthz_url: args.healthz_url.clone(),
            policy: IdlePolicy::from_args(args),
            concurrency: usize::try_from(args.idle_check_concurrency).unwrap_or(1),
            interval,
            stops,
        })
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
                    tracing::warn!(error = %crate::graphql::error_chain(&error), "idle check failed")
                }
            }
        }
    }

    /// One check at `now`: on the Lease holder, every running instance's heartbeat is
    /// read, `lastAccessedAt` written where due, and idle instances stopped.
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
        let running: Vec<(PersistentVolumeClaim, Pod)> = pvc_list
            .items
            .into_iter()
            .filter_map(|pvc| {
                let id = pvc.metadata.labels.as_ref()?.get(naming::LABEL_INSTANCE)?;
                let pod = pod_list
                    .items
                    .iter()
                    .find(|p| p.metadata.name.as_ref() == Some(id))?;
                let status = instance::derive_status(Some(pod), now.as_second(), Duration::MAX);
                (status.status == InstanceStatus::Running).then(|| (pvc.clone(), pod.clone()))
            })
            .collect();
        let mut report = Report {
            leader: true,
            checked: running.len(),
            ..Report::default()
        };
        let (pvcs, pods) = (&pvcs, &pods);
        let outcomes: Vec<(String, Outcome)> = futures::stream::iter(running)
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

    async fn check_one(
        &self,
        pvcs: &Api<PersistentVolumeClaim>,
        pods: &Api<Pod>,
        pvc: &PersistentVolumeClaim,
        pod: &Pod,
        now: Timestamp,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let id = pod.metadata.name.clone().unwrap_or_default();
        let ns = &self.reconciler.settings().namespace;
        let heartbeat = match self.heartbeat(&id, ns).await {
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
        if idle_stop_at(self.policy, last, now).is_some_and(|stop| now >= stop) {
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

    async fn heartbeat(&self, service: &str, namespace: &str) -> Result<Heartbeat, String> {
        let url = fill(&self.healthz_url, service, namespace);
        let mut response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_HEALTHZ_BYTES {
                return Err(format!(
                    "GET {url}: answer larger than {MAX_HEALTHZ_BYTES} bytes"
                ));
            }
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not a /healthz answer: {e}"))
    }
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[derive(Debug, Default)]
struct Outcome {
    recorded: bool,
    stopped: bool,
    unreachable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    const POLICY: IdlePolicy = IdlePolicy {
        timeout: Duration::from_secs(7200),
        warning: Duration::from_secs(900),
    };

    #[test]
    fn idle_stop_shows_only_in_the_warning_window() {
        assert_eq!(idle_stop_at(POLICY, at(0), at(6299)), None);
        assert_eq!(idle_stop_at(POLICY, at(0), at(6300)), Some(at(7200)));
        assert_eq!(idle_stop_at(POLICY, at(0), at(9000)), Some(at(7200)));
        assert_eq!(idle_stop_at(IdlePolicy::default(), at(0), at(99_999)), None);
    }

    #[test]
    fn activity_is_recorded_every_few_minutes_or_in_the_warning_window() {
        assert!(should_record(POLICY, None, Some(at(10)), at(10)));
        assert!(!should_record(POLICY, Some(at(10)), Some(at(10)), at(20)));
        assert!(!should_record(POLICY, Some(at(10)), Some(at(200)), at(200)));
        assert!(should_record(POLICY, Some(at(10)), Some(at(310)), at(310)));
        // In the warning window any newer use is written at once.
        assert!(should_record(POLICY, Some(at(0)), Some(at(6400)), at(6400)));
        assert!(!should_record(POLICY, Some(at(10)), None, at(6400)));
    }

    #[test]
    fn a_heartbeat_from_the_future_counts_as_now() {
        let h = Heartbeat {
            status: "alive".to_owned(),
            last_heartbeat: i64::MAX / 2,
        };
        assert_eq!(h.at(at(100)), Some(at(100)));
        let never = Heartbeat {
            status: "expired".to_owned(),
            last_heartbeat: 0,
        };
        assert_eq!(never.at(at(100)), None);
    }

    #[test]
    fn healthz_urls_are_checked() {
        assert!(healthz_url(DEFAULT_HEALTHZ_URL).is_ok());
        assert!(healthz_url("http://127.0.0.1:1/{namespace}/{service}/healthz").is_ok());
        assert!(healthz_url("http://fixed/healthz").is_err());
        assert!(healthz_url("http://{service}/{user}").is_err());
        assert!(healthz_url("file:///{service}").is_err());
    }
}
