//! Capacity limits against the simulated cluster: beyond MAX_RUNNING_INSTANCES a
//! provision or start is refused with `capacity reached` (CAPACITY_REACHED) and creates
//! nothing; stopped instances free capacity; starts beyond MAX_CONCURRENT_STARTS wait
//! their turn in arrival order.

#[path = "support/world.rs"]
mod world;

use std::{sync::Arc, time::Duration};

use async_graphql::ErrorExtensions;
use codeserver_service::{
    capacity::{Capacity, CapacityGauges, CapacitySettings},
    graphql::ApiError,
    instance::InstanceStatus,
    reconcile::{Error, Reconciler},
    values::{Owner, Repo},
};
use codeserver_sim::Sim;
use prometheus::IntGauge;
use world::NS;

async fn env(max_running: u64) -> (Sim, Arc<Reconciler>) {
    let sim = Sim::start().await.unwrap();
    let rec = world::reconciler(&sim)
        .unschedulable_timeout(Duration::ZERO)
        .capacity(Capacity::new(
            &CapacitySettings {
                max_running_instances: max_running,
                max_concurrent_starts: 20,
                mutations_per_minute: 0,
            },
            None,
        ))
        .build();
    (sim, rec)
}

fn user(name: &str) -> Owner {
    Owner {
        user_id: name.into(),
        email: None,
        sub: Some(format!("sub-{name}")),
        known_name: None,
        gitea_token: None,
    }
}

fn repo() -> Repo {
    Repo::new("devteam", "api", "http://gitea:3000/devteam/api.git").unwrap()
}

#[tokio::test]
async fn a_third_instance_beyond_the_limit_is_refused_and_creates_nothing() {
    let (sim, rec) = env(2).await;
    let a = rec.provision(&user("ann"), repo()).await.unwrap();
    let b = rec.provision(&user("bob"), repo()).await.unwrap();
    assert_eq!(a.instance.status.status, InstanceStatus::Running);
    assert_eq!(b.instance.status.status, InstanceStatus::Running);

    sim.reset_requests();
    let refused = rec.provision(&user("cat"), repo()).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Error::CapacityReached {
                running: 2,
                limit: 2
            }
        ),
        "{refused:?}"
    );
    assert!(sim.writes().is_empty(), "{:?}", sim.writes());
    assert_eq!(sim.list_objects("persistentvolumeclaims").len(), 2);
    let answer = ApiError::from(refused).extend();
    assert_eq!(answer.message, "capacity reached");
    let code = answer
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .map(|c| c.to_string());
    assert_eq!(code.as_deref(), Some("\"CAPACITY_REACHED\""));

    // A running instance may still be provisioned again (it starts nothing).
    rec.provision(&user("ann"), repo()).await.unwrap();

    // Stopping one frees its place; starting it again while full is refused.
    rec.stop(&user("ann"), &a.instance.id).await.unwrap();
    assert!(
        sim.wait_for("pods", NS, &a.instance.id, Duration::from_secs(5), |p| p
            .is_none())
            .await
    );
    let c = rec.provision(&user("cat"), repo()).await.unwrap();
    assert_eq!(c.instance.status.status, InstanceStatus::Running);
    sim.reset_requests();
    let again = rec.start(&user("ann"), &a.instance.id).await.unwrap_err();
    assert!(matches!(again, Error::CapacityReached { .. }), "{again:?}");
    assert!(sim.writes().is_empty(), "{:?}", sim.writes());
    assert!(sim.object("pods", NS, &a.instance.id).is_none());
}

#[tokio::test]
async fn no_limit_by_default() {
    let (_sim, rec) = env(0).await;
    for name in ["ann", "bob", "cat"] {
        let p = rec.provision(&user(name), repo()).await.unwrap();
        assert_eq!(p.instance.status.status, InstanceStatus::Running);
    }
}

#[tokio::test]
async fn starts_beyond_the_limit_wait_their_turn_in_order() {
    let gauges = CapacityGauges {
        limit: IntGauge::new("limit", "limit").unwrap(),
        queue: IntGauge::new("queue", "queue").unwrap(),
    };
    let capacity = Arc::new(Capacity::new(
        &CapacitySettings {
            max_running_instances: 5,
            max_concurrent_starts: 1,
            mutations_per_minute: 0,
        },
        Some(gauges.clone()),
    ));
    assert_eq!(gauges.limit.get(), 5);
    let first = capacity.turn().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for n in 0..3 {
        let (capacity, tx) = (capacity.clone(), tx.clone());
        waiters.push(tokio::spawn(async move {
            let turn = capacity.turn().await;
            tx.send(n).unwrap();
            drop(turn);
        }));
        // Each waiter is queued before the next one arrives.
        while gauges.queue.get() < n + 1 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(gauges.queue.get(), 3);
    assert!(
        rx.try_recv().is_err(),
        "nobody starts while the one turn is taken"
    );
    drop(first);
    let order: Vec<i64> = vec![
        rx.recv().await.unwrap(),
        rx.recv().await.unwrap(),
        rx.recv().await.unwrap(),
    ];
    assert_eq!(order, vec![0, 1, 2]);
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(gauges.queue.get(), 0);
}

#[tokio::test]
async fn concurrent_provisions_cannot_both_take_the_last_place() {
    let (sim, rec) = env(1).await;
    let (ann, bob) = (user("ann"), user("bob"));
    let (a, b) = tokio::join!(rec.provision(&ann, repo()), rec.provision(&bob, repo()));
    let refused = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(Error::CapacityReached { .. })))
        .count();
    assert_eq!(refused, 1, "{a:?} {b:?}");
    assert!(a.is_ok() || b.is_ok());
    assert_eq!(sim.list_objects("pods").len(), 1);
    assert_eq!(sim.list_objects("persistentvolumeclaims").len(), 1);
}
