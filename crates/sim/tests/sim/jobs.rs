//! Jobs: pods, success, failure, propagation, TTL.

use super::*;

fn job_manifest(name: &str, image: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "sync", "image": image, "args": ["sync"]}]}}}})
}

fn job_condition(j: Option<&Job>, ty: &str) -> bool {
    j.and_then(|j| j.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == ty && c.status == "True"))
}

#[tokio::test]
async fn jobs_run_succeed_and_fail() {
    let sim = Sim::start().await.unwrap();
    let jobs: Api<Job> = Api::namespaced(sim.client(), NS);
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    let job = jobs
        .patch(
            "sync-ok",
            &pp,
            &Patch::Apply(job_manifest("sync-ok", "alpine/git:2.45.2")),
        )
        .await
        .unwrap();
    let uid = job.metadata.uid.clone().unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(jobs.clone(), "sync-ok", |j: Option<&Job>| {
            job_condition(j, "Complete")
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(done.status.as_ref().unwrap().succeeded, Some(1));
    let owned = pods
        .list(&ListParams::default().labels("job-name=sync-ok"))
        .await
        .unwrap()
        .items;
    assert_eq!(owned.len(), 1);
    let labels = owned[0].labels();
    assert_eq!(labels["batch.kubernetes.io/job-name"], "sync-ok");
    assert_eq!(labels["controller-uid"], uid);
    assert_eq!(
        owned[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );

    jobs.patch(
        "sync-bad",
        &pp,
        &Patch::Apply(job_manifest("sync-bad", "example.com/jobfail:1")),
    )
    .await
    .unwrap();
    let failed = tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(jobs.clone(), "sync-bad", |j: Option<&Job>| {
            job_condition(j, "Failed")
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let st = failed.status.unwrap();
    assert_eq!(st.failed, Some(2), "backoffLimit 1 means two attempts");
    let cond = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("BackoffLimitExceeded"));
    let attempts = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=sync-bad"))
        .await
        .unwrap()
        .items;
    assert_eq!(attempts.len(), 2);
    let logs = pods
        .logs(&attempts[0].name_any(), &LogParams::default())
        .await
        .unwrap();
    assert!(logs.contains("fatal: repository not found"), "{logs}");

    // By the handle.
    sim.set_job_behaviour("sync-later", JobBehaviour::Fail);
    jobs.patch(
        "sync-later",
        &pp,
        &Patch::Apply(job_manifest("sync-later", "alpine/git:2.45.2")),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(jobs.clone(), "sync-later", |j: Option<&Job>| {
            job_condition(j, "Failed")
        }),
    )
    .await
    .unwrap()
    .unwrap();

    // Background propagation removes the job's pods.
    jobs.delete("sync-ok", &DeleteParams::background())
        .await
        .unwrap();
    let gone = sim
        .wait_for(
            "pods",
            NS,
            &owned[0].name_any(),
            Duration::from_secs(5),
            |p| p.is_none(),
        )
        .await;
    assert!(gone);

    // Foreground: the job waits for its pods, then goes.
    let attempt = attempts[0].name_any();
    let pending = jobs
        .delete("sync-bad", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(
        pending
            .finalizers()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(pending.metadata.deletion_timestamp.is_some());
    let job_uid = pending.metadata.uid.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(
            jobs.clone(),
            "sync-bad",
            kube::runtime::conditions::is_deleted(&job_uid),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        sim.object("pods", NS, &attempt).is_none(),
        "dependents went first"
    );

    // ttlSecondsAfterFinished: 0 removes the finished job.
    let mut ttl = job_manifest("sync-ttl", "alpine/git:2.45.2");
    ttl["spec"]["ttlSecondsAfterFinished"] = json!(0);
    jobs.patch("sync-ttl", &pp, &Patch::Apply(&ttl))
        .await
        .unwrap();
    let gone = sim
        .wait_for("jobs", NS, "sync-ttl", Duration::from_secs(5), |j| {
            j.is_none()
        })
        .await;
    assert!(gone);
}
