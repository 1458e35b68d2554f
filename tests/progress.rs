//! `wait: false`: provisioning and starting answer as soon as the objects are applied,
//! with the status they have then, instead of waiting for readiness.

#[path = "support/world.rs"]
mod world;

use std::time::Duration;

use codeserver_service::{
    instance::InstanceStatus,
    values::{Owner, Repo},
};
use codeserver_sim::{Sim, SimOptions};
use world::NS;

#[tokio::test]
async fn without_waiting_provision_and_start_answer_pending_at_once() {
    // NB: no scheduler or kubelet: a pod stays as created, so waiting would take the
    // whole (here: one hour) readiness timeout and only an answer at once can pass.
    let sim = Sim::start_with(SimOptions {
        lifecycle: false,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let rec = world::reconciler(&sim)
        .ready_timeout(Duration::from_secs(3600))
        .build();
    let owner = Owner {
        sub: Some("sub-ann".to_owned()),
        ..Owner::new("ann")
    };
    let repo = Repo::new("devteam", "api", "http://gitea:3000/devteam/api.git").unwrap();
    let p = tokio::time::timeout(
        Duration::from_secs(60),
        rec.provision_with(&owner, repo, false),
    )
    .await
    .expect("answered without waiting for readiness")
    .unwrap();
    assert!(p.is_new);
    assert_eq!(p.instance.status.status, InstanceStatus::Pending);
    let id = p.instance.id.clone();
    assert!(sim.object("pods", NS, &id).is_some());

    rec.stop(&owner, &id).await.unwrap();
    assert!(
        sim.wait_for("pods", NS, &id, Duration::from_secs(5), |p| p.is_none())
            .await
    );
    let started = tokio::time::timeout(Duration::from_secs(60), rec.start_with(&owner, &id, false))
        .await
        .expect("answered without waiting for readiness")
        .unwrap();
    assert_eq!(started.value.status.status, InstanceStatus::Pending);
}
