//! Hostile users, round three (issue 21), against the simulated cluster through the
//! reconciler: hashed names carry 64 bits and instances named by the old 32-bit scheme
//! keep their names (found by their recorded user id, never by the name alone); a
//! tightened NetworkPolicy reaches a running instance without a restart (on provision and
//! from the Lease holder after a template reload); guards are created before routes and
//! the pod, and removed after them.

mod support;
#[path = "support/world.rs"]
mod world;

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    activity::{Culler, IdlePolicy, IdleSettings},
    naming,
    reconcile::{Kinds, Reconciler},
    render::{ActiveTemplates, Templates},
    values::{Owner, Repo},
};
use codeserver_sim::{Fault, Sim};
use serde_json::{Value, json};
use support::templates::{edited_templates, replace_in};
use world::{NS, ReconcilerBuilder};

struct Env {
    sim: Sim,
    rec: Arc<Reconciler>,
    templates: Arc<ActiveTemplates>,
}

async fn env() -> Env {
    let sim = Sim::start().await.unwrap();
    let templates = Arc::new(ActiveTemplates::new(Templates::builtin().unwrap()));
    let rec = ReconcilerBuilder::on(world::client_without_retry(&sim))
        .kinds(Kinds::new(Some("v1".to_owned())))
        .templates(templates.clone())
        .ready_timeout(Duration::from_secs(10))
        .unschedulable_timeout(Duration::ZERO)
        .build();
    Env {
        sim,
        rec,
        templates,
    }
}

fn repo(name: &str) -> Repo {
    Repo::new(
        "devteam",
        name,
        &format!("http://gitea:3000/devteam/{name}.git"),
    )
    .unwrap()
}

fn with_sub(user_id: &str, sub: &str) -> Owner {
    Owner {
        sub: Some(sub.to_owned()),
        ..Owner::new(user_id)
    }
}

/// A stopped instance's record as the 32-bit scheme named it for `user_id` (forwarded
/// headers, no `sub`: the owner key is the name), recording `recorded_user_id`.
fn old_style_record(name: &str, recorded_user_id: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": naming::pvc_name(name),
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/managed-by": "codeserver-service",
                "app.kubernetes.io/name": "code-server",
                "app.kubernetes.io/instance": naming::instance_id(name),
                "devplatform.io/user": name,
                "devplatform.io/owner": name,
            },
            "annotations": {
                "devplatform.io/user-id": recorded_user_id,
                "devplatform.io/repos": "[{\"owner\":\"devteam\",\"name\":\"docs\",\"cloneUrl\":\"http://gitea:3000/devteam/docs.git\"}]",
            },
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}},
        },
    })
}

fn pvcs_of(sim: &Sim, user_id: &str) -> Vec<String> {
    sim.list_objects("persistentvolumeclaims")
        .into_iter()
        .filter(|o| o["metadata"]["annotations"]["devplatform.io/user-id"] == user_id)
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn hashed_names_carry_64_bits_and_an_old_style_instance_keeps_its_name() {
    let e = env().await;
    // A new user with an id that is not a valid name gets 16 hex digits of hash.
    let jane = e
        .rec
        .provision(&Owner::new("Jane.Roe"), repo("docs"))
        .await
        .unwrap();
    let name = jane.instance.id.strip_prefix("code-server-").unwrap();
    let (_, hash) = name.rsplit_once('-').unwrap();
    assert_eq!(hash.len(), 16, "{name}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");

    // john.doe's instance from before, named by eight hex digits, is found and kept.
    let old = "john-doe-30f69670";
    assert_eq!(naming::legacy_safe_name("john.doe").as_deref(), Some(old));
    e.sim.seed(old_style_record(old, "john.doe")).unwrap();
    assert!(world::record_cached(&e.rec, &naming::pvc_name(old)).await);
    let john = Owner::new("john.doe");
    let p = e.rec.provision(&john, repo("docs")).await.unwrap();
    assert!(!p.is_new, "{}", p.message);
    assert_eq!(p.instance.id, naming::instance_id(old));
    assert_eq!(pvcs_of(&e.sim, "john.doe"), [naming::pvc_name(old)]);
    let listed = e.rec.list(&john).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, naming::instance_id(old));
    assert!(e.rec.get(&john, &p.instance.id).await.is_ok());
    // Provisioning again still uses it; no second instance.
    let again = e.rec.provision(&john, repo("api")).await.unwrap();
    assert_eq!(again.instance.id, naming::instance_id(old));
    assert_eq!(pvcs_of(&e.sim, "john.doe"), [naming::pvc_name(old)]);
}

/// Someone else's instance under the old name the caller's id maps to (a 32-bit
/// collision: found by the name, but its record names another user id) is not the
/// caller's: not found, not listed, not acted on; the caller gets their own instance.
#[tokio::test]
async fn an_old_name_collision_does_not_hand_over_the_instance() {
    let e = env().await;
    let old = naming::legacy_safe_name("john.doe").unwrap();
    e.sim.seed(old_style_record(&old, "j.o.h.n.d.o.e")).unwrap();
    assert!(world::record_cached(&e.rec, &naming::pvc_name(&old)).await);
    let john = Owner::new("john.doe");
    let id = naming::instance_id(&old);
    assert!(e.rec.get(&john, &id).await.is_err());
    assert!(e.rec.list(&john).await.unwrap().is_empty());
    assert!(e.rec.delete(&john, &id).await.is_err());
    let p = e.rec.provision(&john, repo("docs")).await.unwrap();
    assert!(p.is_new);
    assert_ne!(p.instance.id, id);
    let theirs = e
        .sim
        .object("persistentvolumeclaims", NS, &naming::pvc_name(&old));
    assert_eq!(
        theirs.unwrap()["metadata"]["annotations"]["devplatform.io/user-id"],
        "j.o.h.n.d.o.e"
    );
}

/// The NetworkPolicy template tightened: only 203.0.113.0/24 on 443 allowed.
fn tightened() -> Templates {
    edited_templates(|d| {
        replace_in(
            d,
            "values.yaml",
            "      - cidr: 0.0.0.0/0\n        ports: [{port: 443, protocol: TCP}, {port: 80, protocol: TCP}]",
            "      - cidr: 203.0.113.0/24\n        ports: [{port: 443, protocol: TCP}]",
        )
    })
}

fn egress_cidrs(sim: &Sim, id: &str) -> String {
    let np = sim.object("networkpolicies", NS, id).unwrap();
    np["spec"]["egress"].to_string()
}

fn pod_uid(sim: &Sim, id: &str) -> Value {
    sim.object("pods", NS, id).unwrap()["metadata"]["uid"].clone()
}

#[tokio::test]
async fn a_tightened_network_policy_reaches_a_running_instance_on_provision() {
    let e = env().await;
    let owner = with_sub("alice", "7d0c1d4e-1111-4222-8333-444455556666");
    let p = e.rec.provision(&owner, repo("docs")).await.unwrap();
    let id = p.instance.id.clone();
    let uid = pod_uid(&e.sim, &id);
    assert!(egress_cidrs(&e.sim, &id).contains("0.0.0.0/0"));
    e.templates.swap(tightened());
    e.sim.reset_requests();
    let again = e.rec.provision(&owner, repo("docs")).await.unwrap();
    assert_eq!(again.message, "Using existing instance");
    let egress = egress_cidrs(&e.sim, &id);
    assert!(!egress.contains("0.0.0.0/0"), "{egress}");
    assert!(egress.contains("203.0.113.0/24"), "{egress}");
    assert_eq!(pod_uid(&e.sim, &id), uid, "the pod was not recreated");
    assert!(
        e.sim
            .writes()
            .iter()
            .all(|w| w.resource != "pods" && w.verb == "patch"),
        "{:?}",
        e.sim.writes()
    );
}

fn culler_settings() -> IdleSettings {
    IdleSettings {
        check_interval: Duration::from_secs(60),
        policy: IdlePolicy {
            timeout: Duration::ZERO,
            warning: Duration::ZERO,
            max_extension: Duration::from_secs(8 * 3600),
        },
        check_concurrency: 4,
        // NB: nothing listens there: no heartbeat, so nothing is ever stopped for idling.
        healthz_url: "http://127.0.0.1:9/{service}/{namespace}/healthz".to_owned(),
        lease_name: "codeserver-service-idle-culler".to_owned(),
        pod_name: Some("replica-a".to_owned()),
    }
}

#[tokio::test]
async fn the_lease_holder_applies_a_tightened_network_policy_after_a_reload() {
    let e = env().await;
    let owner = with_sub("alice", "7d0c1d4e-1111-4222-8333-444455556666");
    let p = e.rec.provision(&owner, repo("docs")).await.unwrap();
    let id = p.instance.id.clone();
    let uid = pod_uid(&e.sim, &id);
    let culler = Culler::new(e.rec.clone(), &culler_settings(), None).unwrap();
    let now = jiff::Timestamp::now();
    let first = culler.check(now).await.unwrap();
    assert!(first.leader);
    assert!(first.guarded.is_empty(), "{first:?}");
    // A reload that leaves the guards as they were writes nothing.
    e.templates.swap(edited_templates(|d| {
        replace_in(d, "values.yaml", "  port: 80\n", "  port: 8000\n")
    }));
    e.sim.reset_requests();
    let unrelated = culler.check(now).await.unwrap();
    assert!(unrelated.guarded.is_empty(), "{unrelated:?}");
    let writes: Vec<String> = e
        .sim
        .writes()
        .iter()
        .filter(|w| w.resource != "leases")
        .map(|w| format!("{} {}", w.verb, w.resource))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    e.templates.swap(tightened());
    e.sim.reset_requests();
    let report = culler.check(now).await.unwrap();
    assert_eq!(report.guarded, std::slice::from_ref(&id), "{report:?}");
    let egress = egress_cidrs(&e.sim, &id);
    assert!(!egress.contains("0.0.0.0/0"), "{egress}");
    assert_eq!(pod_uid(&e.sim, &id), uid, "the pod was not recreated");
    let writes: Vec<String> = e
        .sim
        .writes()
        .iter()
        .filter(|w| w.resource != "leases")
        .map(|w| format!("{} {}", w.verb, w.resource))
        .collect();
    // NB: the sync Job's policy has no allow list: it is left as it was.
    assert_eq!(writes, ["patch networkpolicies"]);
    // Once applied, the same revision is not applied again.
    e.sim.reset_requests();
    let quiet = culler.check(now).await.unwrap();
    assert!(quiet.guarded.is_empty(), "{quiet:?}");
}

/// Position of the first write `verb` of `resource` among `writes`.
fn first(writes: &[(String, String)], verb: &str, resource: &str) -> usize {
    writes
        .iter()
        .position(|(v, r)| v == verb && r == resource)
        .unwrap_or_else(|| panic!("no {verb} {resource} in {writes:?}"))
}

fn last(writes: &[(String, String)], verb: &str, resource: &str) -> usize {
    writes
        .iter()
        .rposition(|(v, r)| v == verb && r == resource)
        .unwrap_or_else(|| panic!("no {verb} {resource} in {writes:?}"))
}

/// A guard that cannot be written stops the create before any route or pod exists.
#[tokio::test]
async fn no_route_or_pod_is_created_when_its_guard_cannot_be() {
    let e = env().await;
    let owner = with_sub("alice", "7d0c1d4e-1111-4222-8333-444455556666");
    // NB: answered late, so that a write sent alongside it would show.
    let refused = Fault {
        latency: Some(Duration::from_millis(200)),
        ..Fault::status(403)
    };
    e.sim
        .inject(refused.verb("patch").resource("networkpolicies"));
    e.sim.reset_requests();
    assert!(e.rec.provision(&owner, repo("docs")).await.is_err());
    let written: Vec<String> = e.sim.writes().into_iter().map(|w| w.resource).collect();
    for route in ["virtualservices", "services", "pods"] {
        assert!(!written.iter().any(|r| r == route), "{route}: {written:?}");
    }
}

#[tokio::test]
async fn guards_are_created_before_routes_and_pods_and_removed_after_them() {
    let e = env().await;
    let owner = with_sub("alice", "7d0c1d4e-1111-4222-8333-444455556666");
    e.sim.reset_requests();
    let p = e.rec.provision(&owner, repo("docs")).await.unwrap();
    let writes: Vec<(String, String)> = e
        .sim
        .writes()
        .into_iter()
        .map(|w| (w.verb, w.resource))
        .collect();
    let guards_done = last(&writes, "patch", "networkpolicies");
    for route in ["virtualservices", "services", "pods"] {
        assert!(
            guards_done < first(&writes, "patch", route),
            "{route} before its guards: {writes:?}"
        );
    }

    e.sim.reset_requests();
    e.rec.delete(&owner, &p.instance.id).await.unwrap();
    let writes: Vec<(String, String)> = e
        .sim
        .writes()
        .into_iter()
        .map(|w| (w.verb, w.resource))
        .collect();
    let guards_go = first(&writes, "delete", "networkpolicies");
    for route in ["virtualservices", "services", "pods"] {
        assert!(
            last(&writes, "delete", route) < guards_go,
            "{route} outlived its guards: {writes:?}"
        );
    }
    assert!(
        last(&writes, "delete", "networkpolicies")
            < first(&writes, "delete", "persistentvolumeclaims")
    );
    // The pod was gone before its guards were removed.
    assert!(e.sim.object("pods", NS, &p.instance.id).is_none());
}
