//! Activity and idle stop against the simulated cluster and simulated code-server
//! `/healthz` endpoints: `lastAccessedAt` recorded (not on every check), `idleStopAt` in
//! the warning window, the stop keeping the PVC, activity postponing it, an unreachable
//! `/healthz` never stopping anything, and only the Lease holder culling. Time is passed to
//! each check explicitly, so nothing waits for the clock.

#[path = "support/world.rs"]
mod world;

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    activity::{ANNOTATION_LAST_ACCESSED, Culler, IdlePolicy, IdleSettings, Report},
    instance::InstanceStatus,
    metrics::Metrics,
    reconcile::{Reconciler, Timeouts},
    values::{Owner, Repo},
};
use codeserver_sim::{Sim, heartbeat::CodeServers};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, api::PostParams};
use serde_json::{Value, json};
use world::NS;

const TIMEOUT: u64 = 600;
const INTERVAL: u64 = 60;

struct Env {
    sim: Sim,
    code: CodeServers,
    rec: Arc<Reconciler>,
    metrics: Metrics,
}

fn args(healthz_url: String, pod_name: &str, warning: u64) -> IdleSettings {
    IdleSettings {
        check_interval: Duration::from_secs(INTERVAL),
        policy: IdlePolicy {
            timeout: Duration::from_secs(TIMEOUT),
            warning: Duration::from_secs(warning),
            max_extension: Duration::from_secs(8 * 3600),
        },
        check_concurrency: 4,
        healthz_url,
        lease_name: "codeserver-service-idle-culler".to_owned(),
        pod_name: Some(pod_name.to_owned()),
    }
}

/// A reconciler whose instances warn for the whole idle period (IDLE_WARNING =
/// IDLE_TIMEOUT), so that `idleStopAt` shows on the real clock.
async fn env() -> Env {
    let sim = Sim::start().await.unwrap();
    let code = sim.code_servers().await.unwrap();
    let rec = world::reconciler(&sim)
        .timeouts(Timeouts {
            ready: Duration::from_secs(10),
            unschedulable: Duration::from_secs(0),
            sync: Duration::from_secs(10),
        })
        .idle_policy(IdlePolicy {
            timeout: Duration::from_secs(TIMEOUT),
            warning: Duration::from_secs(TIMEOUT),
            max_extension: Duration::from_secs(8 * 3600),
        })
        .build();
    Env {
        sim,
        code,
        rec,
        metrics: Metrics::new().unwrap(),
    }
}

impl Env {
    fn culler(&self, replica: &str) -> Culler {
        Culler::new(
            self.rec.clone(),
            &args(self.code.url_template(), replica, TIMEOUT),
            Some(self.metrics.idle_stops.clone()),
        )
        .unwrap()
    }

    fn recorded(&self, pvc: &str) -> Option<String> {
        let pvc = self.sim.object("persistentvolumeclaims", NS, pvc)?;
        pvc.pointer(&format!(
            "/metadata/annotations/{}",
            ANNOTATION_LAST_ACCESSED.replace('/', "~1")
        ))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
    }
}

fn john() -> Owner {
    Owner {
        user_id: "john".into(),
        email: None,
        sub: Some("3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f".into()),
        known_name: None,
        gitea_token: None,
    }
}

fn repo() -> Repo {
    Repo::new("devteam", "api", "http://gitea:3000/devteam/api.git").unwrap()
}

fn secs(s: u64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(i64::try_from(s).unwrap())
}

#[tokio::test]
async fn an_idle_instance_warns_then_stops_and_keeps_its_volume() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo()).await.unwrap();
    assert_eq!(p.instance.status.status, InstanceStatus::Running);
    let (id, pvc) = (p.instance.id.clone(), p.instance.pvc_name.clone());
    // A running instance has a last use (its start) and, warning for the whole idle
    // period here, an idle stop time exactly IDLE_TIMEOUT after it.
    let got = e.rec.get(&john(), &id).await.unwrap();
    let last = got
        .last_accessed_at
        .expect("lastAccessedAt of a running instance");
    assert_eq!(got.idle_stop_at, Some(last + secs(TIMEOUT)));

    let culler = e.culler("replica-a");
    let now = Timestamp::now();
    let first = culler.check(now).await.unwrap();
    assert_eq!(
        (first.leader, first.checked, first.recorded.clone()),
        (true, 1, vec![id.clone()])
    );
    assert!(first.stopped.is_empty());
    assert!(
        e.recorded(&pvc).is_some(),
        "lastAccessedAt is on the record"
    );

    // Checks a minute apart with no news write nothing.
    e.sim.reset_requests();
    let quiet = culler.check(now + secs(INTERVAL)).await.unwrap();
    assert!(quiet.recorded.is_empty() && quiet.stopped.is_empty());
    assert_eq!(e.sim.count("patch", "persistentvolumeclaims"), 0);

    // Past IDLE_TIMEOUT with no heartbeat: the pod goes, the PVC stays.
    let late = culler.check(now + secs(TIMEOUT + 1)).await.unwrap();
    assert_eq!(late.stopped, vec![id.clone()]);
    assert_eq!(e.metrics.idle_stops.get(), 1);
    assert!(world::pod_gone(&e.rec, &id).await);
    assert!(e.sim.object("persistentvolumeclaims", NS, &pvc).is_some());
    let stopped = e.rec.get(&john(), &id).await.unwrap();
    assert_eq!(stopped.status.status, InstanceStatus::Stopped);
    assert_eq!(stopped.idle_stop_at, None);
    assert!(stopped.last_accessed_at.is_some(), "kept on the record");
}

#[tokio::test]
async fn activity_postpones_the_stop_and_moves_last_accessed_at() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo()).await.unwrap();
    let (id, pvc) = (p.instance.id.clone(), p.instance.pvc_name.clone());
    let culler = e.culler("replica-a");
    let now = Timestamp::now();
    culler.check(now).await.unwrap();
    let before = e.recorded(&pvc).unwrap();

    // The user was active shortly before the timeout: no stop, and (in the warning
    // window) the new activity is written at once.
    let active = now + secs(TIMEOUT - 30);
    e.code.heartbeat(NS, &id, active);
    let report = culler.check(now + secs(TIMEOUT + 1)).await.unwrap();
    assert!(report.stopped.is_empty(), "{report:?}");
    assert_eq!(report.recorded, vec![id.clone()]);
    let after = e.recorded(&pvc).unwrap();
    assert_ne!(before, after);
    let whole = |t: Timestamp| Timestamp::from_second(t.as_second()).unwrap();
    assert_eq!(after.parse::<Timestamp>().unwrap(), whole(active));
    assert!(e.sim.object("pods", NS, &id).is_some());

    // A heartbeat the pod claims in the far future counts as the time of the check, no
    // later: it cannot buy a workspace days of idle time.
    e.code.heartbeat(NS, &id, now + secs(100 * TIMEOUT));
    let check_at = now + secs(TIMEOUT + 2);
    let report = culler.check(check_at).await.unwrap();
    assert_eq!(report.recorded, vec![id.clone()]);
    assert_eq!(
        e.recorded(&pvc).unwrap().parse::<Timestamp>().unwrap(),
        whole(check_at)
    );
}

#[tokio::test]
async fn an_unreachable_healthz_never_stops_an_instance() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo()).await.unwrap();
    let id = p.instance.id.clone();
    // Nothing listens at the address: every check finds /healthz unreachable.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let culler = Culler::new(
        e.rec.clone(),
        &args(
            format!("http://127.0.0.1:{port}/{{namespace}}/{{service}}/healthz"),
            "replica-a",
            TIMEOUT,
        ),
        Some(e.metrics.idle_stops.clone()),
    )
    .unwrap();
    let report = culler
        .check(Timestamp::now() + secs(100 * TIMEOUT))
        .await
        .unwrap();
    assert_eq!(report.unreachable, vec![id.clone()]);
    assert!(report.stopped.is_empty() && report.recorded.is_empty());
    assert!(e.sim.object("pods", NS, &id).is_some());
    assert_eq!(e.metrics.idle_stops.get(), 0);
}

#[tokio::test]
async fn only_the_lease_holder_culls() {
    let e = env().await;
    let p = e.rec.provision(&john(), repo()).await.unwrap();
    let id = p.instance.id.clone();
    let (a, b) = (e.culler("replica-a"), e.culler("replica-b"));
    let now = Timestamp::now();
    assert!(a.check(now).await.unwrap().leader);

    // B sees A's unexpired lease: it checks nothing and writes nothing, even long past
    // the idle timeout of the instance.
    e.sim.reset_requests();
    let late = now + secs(TIMEOUT + 1);
    assert_eq!(b.check(now + secs(1)).await.unwrap(), Report::default());
    assert!(e.sim.writes().is_empty(), "{:?}", e.sim.writes());
    assert!(e.sim.object("pods", NS, &id).is_some());

    // A keeps renewing; when it stops (here: its lease runs out), B takes over.
    let expired = now + secs(3 * INTERVAL + 1);
    assert!(late > expired);
    let taken = b.check(late).await.unwrap();
    assert!(taken.leader);
    assert_eq!(taken.stopped, vec![id]);
    assert!(!a.check(late).await.unwrap().leader, "A lost the lease");
    let leases: Api<Lease> = Api::namespaced(e.sim.client(), NS);
    let lease = leases.get("codeserver-service-idle-culler").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.lease_duration_seconds, Some(3 * 60));
}

#[tokio::test]
async fn the_simulated_cluster_serves_leases_with_optimistic_concurrency() {
    let sim = Sim::start().await.unwrap();
    let leases: Api<Lease> = Api::namespaced(sim.client(), NS);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 30}
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut first = created.clone();
    first.spec.as_mut().unwrap().holder_identity = Some("b".to_owned());
    leases
        .replace("l", &PostParams::default(), &first)
        .await
        .unwrap();
    // A second update from the same read carries a stale resourceVersion.
    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("c".to_owned());
    match leases.replace("l", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected 409, got {other:?}"),
    }
    let again = leases.create(&PostParams::default(), &lease).await;
    assert!(matches!(again, Err(kube::Error::Api(s)) if s.code == 409));
    let bad: Lease = serde_json::from_value(json!({
        "metadata": {"name": "bad"}, "spec": {"leaseDurationSeconds": 0}
    }))
    .unwrap();
    match leases.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.contains("must be greater than 0"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let holder = leases.get("l").await.unwrap().spec.unwrap().holder_identity;
    assert_eq!(holder.as_deref(), Some("b"));
}

#[tokio::test]
async fn the_simulated_code_server_reports_use_like_code_server() {
    let e = env().await;
    let id = e.rec.provision(&john(), repo()).await.unwrap().instance.id;
    let url = |svc: &str| {
        e.code
            .url_template()
            .replace("{namespace}", NS)
            .replace("{service}", svc)
    };
    let get = |u: String| async move {
        let r = reqwest::get(u).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    // Never used since it started: expired, lastHeartbeat 0.
    let (status, body) = get(url(&id)).await;
    assert_eq!(status, 200);
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (h["status"].as_str(), h["lastHeartbeat"].as_i64()),
        (Some("expired"), Some(0))
    );
    // In use: alive, with a heartbeat at the time of the answer.
    e.code.set_active(NS, &id, true);
    let before = Timestamp::now().as_millisecond();
    let h: Value = serde_json::from_str(&get(url(&id)).await.1).unwrap();
    assert_eq!(h["status"], "alive");
    assert!(h["lastHeartbeat"].as_i64().unwrap() >= before);
    // No pod, no endpoint.
    assert_eq!(get(url("code-server-nobody")).await.0, 503);
}
