//! Pods and claims: phases, logs, watches, deletion, protection, failure modes.

use super::*;

#[tokio::test]
async fn pod_lifecycle_logs_and_graceful_delete() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pod = ready_pod(&pods, "code-server-bob", "codercom/code-server:4.96.4").await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.is_some());
    let init = &status.init_container_statuses.unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );
    assert!(status.container_statuses.unwrap()[0].ready);

    // Logs per container, with tail_lines.
    let lp = LogParams {
        container: Some("code-server".into()),
        tail_lines: Some(1),
        ..LogParams::default()
    };
    let tail = pods.logs("code-server-bob", &lp).await.unwrap();
    assert_eq!(tail.lines().count(), 1);
    let all = pods
        .logs(
            "code-server-bob",
            &LogParams {
                container: Some("code-server".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert!(
        all.contains("HTTP server listening on http://0.0.0.0:8080/"),
        "{all}"
    );
    // One main container: it is the default; init container logs by name.
    let default = pods
        .logs("code-server-bob", &LogParams::default())
        .await
        .unwrap();
    assert_eq!(default, all);
    let init_logs = pods
        .logs(
            "code-server-bob",
            &LogParams {
                container: Some("git-clone".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert!(init_logs.starts_with("Cloning into"), "{init_logs}");
    let err = api_error(
        pods.logs(
            "code-server-bob",
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "container nope is not valid for pod code-server-bob"
    );

    // No previous instance: 400 like the real server.
    let prev = LogParams {
        previous: true,
        ..LogParams::default()
    };
    let err = api_error(pods.logs("code-server-bob", &prev).await.unwrap_err());
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .starts_with("previous terminated container \"code-server\""),
        "{}",
        err.message
    );
    // follow=true keeps the stream open while the container runs.
    use futures::AsyncBufReadExt;
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods
        .log_stream("code-server-bob", &follow)
        .await
        .unwrap()
        .lines();
    let first = lines.try_next().await.unwrap().unwrap();
    assert!(first.contains("code-server 4.96.4"), "{first}");
    let still_open = tokio::time::timeout(Duration::from_millis(300), async {
        while let Some(l) = lines.try_next().await.unwrap() {
            let _ = l;
        }
    })
    .await;
    assert!(still_open.is_err(), "a followed log stays open");

    // Graceful delete: deletionTimestamp first, gone after the grace period.
    let res = pods
        .delete("code-server-bob", &DeleteParams::default())
        .await
        .unwrap();
    let pending = res.left().expect("pods return the object");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(30));
    let uid = pending.metadata.uid.clone().unwrap();
    let gone = await_condition(
        pods.clone(),
        "code-server-bob",
        kube::runtime::conditions::is_deleted(&uid),
    );
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .unwrap()
        .unwrap();
    assert!(sim.object("pods", NS, "code-server-bob").is_none());
}

#[tokio::test]
async fn watch_sees_the_pod_lifecycle() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let wp = WatchParams::default()
        .labels("devplatform.io/user=carol")
        .timeout(20);
    let mut stream = pods.watch(&wp, "0").await.unwrap().boxed();
    let manifest = pod_manifest("carol", "codercom/code-server:4.96.4");
    let created = pods
        .patch(
            "carol",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&manifest),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut phases = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(p) => seen.push(("ADDED", p)),
            WatchEvent::Modified(p) => seen.push(("MODIFIED", p)),
            WatchEvent::Deleted(p) => seen.push(("DELETED", p)),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
        let p = &seen.last().unwrap().1;
        if let Some(ph) = p.status.as_ref().and_then(|s| s.phase.clone())
            && phases.last() != Some(&ph)
        {
            phases.push(ph);
        }
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break;
        }
    }
    assert_eq!(seen[0].0, "ADDED");
    assert_eq!(phases, vec!["Pending", "Running"]);
    let rvs: Vec<u64> = seen
        .iter()
        .map(|(_, p)| {
            p.metadata
                .resource_version
                .clone()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");

    // A watch from a resourceVersion replays what came after it.
    let from = created.metadata.resource_version.clone().unwrap();
    let mut replay = pods
        .watch(&WatchParams::default().timeout(1), &from)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(2), replay.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, WatchEvent::Modified(_)), "{first:?}");

    // Relabelled out of the selection: DELETED for this watch (the object still exists).
    pods.patch(
        "carol",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"devplatform.io/user": "someone-else"}}})),
    )
    .await
    .unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WatchEvent::Deleted(p) = ev {
            assert_eq!(p.metadata.name.as_deref(), Some("carol"));
            assert_eq!(p.labels()["devplatform.io/user"], "someone-else");
            break;
        }
    }
    assert!(sim.object("pods", NS, "carol").is_some());
    pods.delete("carol", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(
        sim.object("pods", NS, "carol").is_none(),
        "grace 0 removes at once"
    );

    // kube's watcher with streaming lists (sendInitialEvents + bookmarks).
    let cfg = kube::runtime::watcher::Config::default().streaming_lists();
    let mut w = kube::runtime::watcher(pods.clone(), cfg).boxed();
    pods.patch(
        "zed",
        &PatchParams::apply(MANAGER),
        &Patch::Apply(pod_manifest("zed", "codercom/code-server:4.96.4")),
    )
    .await
    .unwrap();
    let mut saw_init_done = false;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            kube::runtime::watcher::Event::InitDone => saw_init_done = true,
            kube::runtime::watcher::Event::Apply(p) if p.name_any() == "zed" => break,
            _ => {}
        }
    }
    assert!(saw_init_done);

    // timeoutSeconds ends the stream (on tokio's paused clock, so the second passes at once).
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let mut short = pods
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    while let Ok(Some(_)) = short.try_next().await {}
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test]
async fn pvc_protection_immutability_and_binding() {
    let sim = Sim::start().await.unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(sim.client(), NS);
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    let claim = |size: &str, mode: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "workspace-erin"},
            "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}}})
    };
    let pvc = pvcs
        .patch(
            "workspace-erin",
            &pp,
            &Patch::Apply(claim("1Gi", "ReadWriteOnce")),
        )
        .await
        .unwrap();
    assert_eq!(
        pvc.metadata.finalizers.as_deref(),
        Some(&["kubernetes.io/pvc-protection".to_string()][..])
    );
    assert_eq!(
        pvc.spec.as_ref().unwrap().volume_mode.as_deref(),
        Some("Filesystem")
    );
    let bound = |p: Option<&PersistentVolumeClaim>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Bound")
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(pvcs.clone(), "workspace-erin", bound),
    )
    .await
    .unwrap()
    .unwrap();

    // Growing is allowed, shrinking and other spec changes are not.
    pvcs.patch(
        "workspace-erin",
        &pp,
        &Patch::Apply(claim("2Gi", "ReadWriteOnce")),
    )
    .await
    .unwrap();
    let err = api_error(
        pvcs.patch(
            "workspace-erin",
            &pp,
            &Patch::Apply(claim("1Gi", "ReadWriteOnce")),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains(
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        ),
        "{}",
        err.message
    );
    let err = api_error(
        pvcs.patch(
            "workspace-erin",
            &pp,
            &Patch::Apply(claim("2Gi", "ReadWriteMany")),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.message.contains("spec is immutable after creation"),
        "{}",
        err.message
    );

    // A pod uses the claim: deleting the claim leaves it terminating until the pod is gone.
    let mut pod = pod_manifest("erin", "codercom/code-server:4.96.4");
    pod["spec"]["volumes"] =
        json!([{"name": "workspace", "persistentVolumeClaim": {"claimName": "workspace-erin"}}]);
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "workspace", "mountPath": "/home/coder"}]);
    pods.patch("erin", &pp, &Patch::Apply(&pod)).await.unwrap();
    let res = pvcs
        .delete("workspace-erin", &DeleteParams::default())
        .await
        .unwrap();
    let pending = res.left().unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    // NB: the delete queued the pvc-protection sweep before it answered; on this
    // single-threaded runtime, yielding lets that task run before the check.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    assert!(
        sim.object("persistentvolumeclaims", NS, "workspace-erin")
            .is_some()
    );
    pods.delete("erin", &DeleteParams::default()).await.unwrap();
    let uid = pending.metadata.uid.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(
            pvcs.clone(),
            "workspace-erin",
            kube::runtime::conditions::is_deleted(&uid),
        ),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn failure_modes_on_demand() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    for (name, image) in [
        ("pull", "example.com/errimagepull:1"),
        ("crash", "example.com/crashloop:1"),
        ("config", "example.com/createconfigerror:1"),
        ("nowhere", "example.com/unschedulable:1"),
    ] {
        pods.patch(name, &pp, &Patch::Apply(pod_manifest(name, image)))
            .await
            .unwrap();
    }
    let mut initfail = pod_manifest("clonefail", "codercom/code-server:4.96.4");
    initfail["spec"]["initContainers"][0]["image"] = json!("example.com/initfail:1");
    pods.patch("clonefail", &pp, &Patch::Apply(&initfail))
        .await
        .unwrap();

    wait_pod(&sim, "pull", |p| {
        waiting_reason(p, "containerStatuses") == "ErrImagePull"
    })
    .await;
    wait_pod(&sim, "pull", |p| {
        waiting_reason(p, "containerStatuses") == "ImagePullBackOff"
    })
    .await;
    let crash = wait_pod(&sim, "crash", |p| {
        waiting_reason(p, "containerStatuses") == "CrashLoopBackOff"
    })
    .await;
    assert_eq!(
        crash["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    wait_pod(&sim, "config", |p| {
        waiting_reason(p, "containerStatuses") == "CreateContainerConfigError"
    })
    .await;
    let nowhere = wait_pod(&sim, "nowhere", |p| {
        p["status"]["conditions"][0]["reason"] == "Unschedulable"
    })
    .await;
    assert_eq!(nowhere["status"]["conditions"][0]["status"], "False");
    assert_eq!(nowhere["status"]["phase"], "Pending");
    let clone = wait_pod(&sim, "clonefail", |p| {
        let st = &p["status"]["initContainerStatuses"][0];
        st["state"]["terminated"]["exitCode"] == 1 || st["lastState"]["terminated"]["exitCode"] == 1
    })
    .await;
    assert_eq!(clone["status"]["phase"], "Pending");
    let logs = pods
        .logs(
            "clonefail",
            &LogParams {
                container: Some("git-clone".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert!(
        logs.contains("fatal: repository 'http://gitea:3000/devteam/repo.git/' not found"),
        "{logs}"
    );
    wait_pod(&sim, "clonefail", |p| {
        waiting_reason(p, "initContainerStatuses") == "CrashLoopBackOff"
    })
    .await;
    // Logs of a container that never started.
    let err = api_error(pods.logs("pull", &LogParams::default()).await.unwrap_err());
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .starts_with("container \"code-server\" in pod \"pull\" is waiting to start"),
        "{}",
        err.message
    );

    // Through the handle, for a running pod.
    pods.patch(
        "fine",
        &pp,
        &Patch::Apply(pod_manifest("fine", "codercom/code-server:4.96.4")),
    )
    .await
    .unwrap();
    wait_ready(&pods, "fine").await;
    sim.set_pod_behaviour("fine", PodBehaviour::CrashLoop);
    wait_pod(&sim, "fine", |p| {
        waiting_reason(p, "containerStatuses") == "CrashLoopBackOff"
    })
    .await;
    // And for one created later.
    sim.set_pod_behaviour("later", PodBehaviour::ErrImagePull);
    pods.patch(
        "later",
        &pp,
        &Patch::Apply(pod_manifest("later", "codercom/code-server:4.96.4")),
    )
    .await
    .unwrap();
    wait_pod(&sim, "later", |p| {
        waiting_reason(p, "containerStatuses") == "ImagePullBackOff"
    })
    .await;
}

#[tokio::test]
async fn image_fix_recovers_a_pod_and_claims_grow() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    pods.patch(
        "broken-image",
        &pp,
        &Patch::Apply(pod_manifest("broken-image", "example.com/errimagepull:1")),
    )
    .await
    .unwrap();
    wait_pod(&sim, "broken-image", |p| {
        waiting_reason(p, "containerStatuses") == "ImagePullBackOff"
    })
    .await;
    pods.patch(
        "broken-image",
        &pp,
        &Patch::Apply(pod_manifest("broken-image", "codercom/code-server:4.96.4")),
    )
    .await
    .unwrap();
    let ready = wait_ready(&pods, "broken-image").await;
    assert_eq!(
        ready.status.unwrap().container_statuses.unwrap()[0].image,
        "codercom/code-server:4.96.4"
    );

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(sim.client(), NS);
    let claim = |size: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "grow"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
    };
    pvcs.patch("grow", &pp, &Patch::Apply(claim("1Gi")))
        .await
        .unwrap();
    sim.wait_for(
        "persistentvolumeclaims",
        NS,
        "grow",
        Duration::from_secs(5),
        |p| p.is_some_and(|p| p["status"]["phase"] == "Bound"),
    )
    .await;
    pvcs.patch("grow", &pp, &Patch::Apply(claim("5Gi")))
        .await
        .unwrap();
    // The resizer grows the volume (Resizing, then FileSystemResizePending); the capacity
    // waits for the kubelet to grow the file system when a pod mounts the claim.
    let volume_grown = sim
        .wait_for(
            "persistentvolumeclaims",
            NS,
            "grow",
            Duration::from_secs(5),
            |p| {
                p.is_some_and(|p| {
                    p["status"]["allocatedResourceStatuses"]["storage"] == "NodeResizePending"
                })
            },
        )
        .await;
    assert!(volume_grown);
    let status = sim.object("persistentvolumeclaims", NS, "grow").unwrap()["status"].clone();
    assert_eq!(status["capacity"]["storage"], "1Gi");
    assert_eq!(status["allocatedResources"]["storage"], "5Gi");
    assert_eq!(
        status["conditions"],
        json!([{"type": "FileSystemResizePending", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": status["conditions"][0]["lastTransitionTime"],
            "message": "Waiting for user to (re-)start a pod to finish file system resize of volume on node."}])
    );
    let mut mounting = pod_manifest("mounts-grow", "codercom/code-server:4.96.4");
    mounting["spec"]["volumes"] =
        json!([{"name": "w", "persistentVolumeClaim": {"claimName": "grow"}}]);
    pods.patch("mounts-grow", &pp, &Patch::Apply(mounting))
        .await
        .unwrap();
    let grown = sim
        .wait_for(
            "persistentvolumeclaims",
            NS,
            "grow",
            Duration::from_secs(5),
            |p| p.is_some_and(|p| p["status"]["capacity"]["storage"] == "5Gi"),
        )
        .await;
    assert!(grown);
    let status = sim.object("persistentvolumeclaims", NS, "grow").unwrap()["status"].clone();
    assert!(status["conditions"].is_null(), "{status}");
    assert!(status["allocatedResourceStatuses"].is_null(), "{status}");
}

#[tokio::test]
async fn the_scheduler_and_kubelet_record_events_with_counts() {
    use k8s_openapi::api::core::v1::Event;
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let events: Api<Event> = Api::namespaced(sim.client(), NS);
    sim.set_pod_behaviour("code-server-eve", PodBehaviour::CrashLoop);
    let manifest = pod_manifest("code-server-eve", "codercom/code-server:4.96.4");
    pods.patch(
        "code-server-eve",
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap();
    let lp =
        ListParams::default().fields("involvedObject.kind=Pod,involvedObject.name=code-server-eve");
    let repeated = |e: &Value| e["reason"] == "BackOff" && e["count"].as_i64().unwrap_or(0) >= 2;
    sim.wait_until(Duration::from_secs(10), |sim| {
        sim.list_objects("events").iter().any(repeated)
    })
    .await;
    let back_off = events
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("BackOff") && e.count.unwrap_or(0) >= 2);
    let back_off = back_off.expect("a repeated back-off is one event with a count");
    assert_eq!(back_off.type_.as_deref(), Some("Warning"));
    assert_eq!(
        back_off.involved_object.field_path.as_deref(),
        Some("spec.containers{code-server}")
    );
    assert!(back_off.last_timestamp >= back_off.first_timestamp);
    let all = events.list(&lp).await.unwrap();
    let reasons: Vec<_> = all.items.iter().filter_map(|e| e.reason.clone()).collect();
    for reason in ["Scheduled", "Pulled", "Created", "Started", "BackOff"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
    let other = ListParams::default().fields("involvedObject.name=someone-else");
    assert!(events.list(&other).await.unwrap().items.is_empty());
    let unsupported = ListParams::default().fields("message=x");
    match events.list(&unsupported).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400);
            assert!(
                s.message.contains("field label not supported: message"),
                "{}",
                s.message
            );
        }
        other => panic!("an unindexed field is refused: {other:?}"),
    }
}

#[tokio::test]
async fn log_limit_bytes_cuts_at_a_byte_like_the_kubelet() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    ready_pod(&pods, "code-server-eve", "codercom/code-server:4.96.4").await;
    sim.set_logs(NS, "code-server-eve", "code-server", &["héllo"]);
    let params = |limit| LogParams {
        container: Some("code-server".into()),
        limit_bytes: Some(limit),
        ..LogParams::default()
    };
    assert_eq!(pods.logs("code-server-eve", &params(1)).await.unwrap(), "h");
    // NB: two bytes end inside 'é': the body is those bytes, not an error or a panic.
    match pods.logs("code-server-eve", &params(2)).await {
        Err(kube::Error::FromUtf8(cut)) => assert_eq!(cut.into_bytes(), b"h\xc3"),
        other => panic!("expected the raw cut bytes, got {other:?}"),
    }
}
