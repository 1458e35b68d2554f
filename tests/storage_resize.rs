//! Storage that grows, through GraphQL against the simulated cluster: `resizeStorage`
//! grows a workspace volume (its PVC's storage request, nothing else), the answer and
//! `storage { requested capacity resizePending }` follow the volume as the simulated
//! external-resizer and kubelet grow it (`FileSystemResizePending` until the next start),
//! later applies of the templates never shrink it back, and every refusal (shrink,
//! equal, garbage, over `storage.maxSize`, over the LimitRange, a StorageClass without
//! expansion, another user's instance) says why and writes nothing.

#[path = "support/world.rs"]
mod world;

use std::time::Duration;

use codeserver_service::instance::storage;
use k8s_openapi::api::{core::v1::PersistentVolumeClaim, storage::v1::StorageClass};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use world::{NS, World, error_of, ok};

const STORAGE: &str = "storage { requested capacity resizePending }";

async fn provisioned(w: &World, token: &str) -> (String, String) {
    let body = w.provision(token, "devteam", "backend-api").await;
    let p = ok(&body, "provisionCodeServer");
    assert_eq!(p["instance"]["status"], "RUNNING", "{body}");
    let id = p["instance"]["id"].as_str().unwrap().to_owned();
    let pvc = format!("workspace-{}", id.trim_start_matches("code-server-"));
    let bound = w
        .sim()
        .wait_for(
            "persistentvolumeclaims",
            NS,
            &pvc,
            Duration::from_secs(5),
            |p| p.is_some_and(|p| p["status"]["phase"] == "Bound"),
        )
        .await;
    assert!(bound, "the workspace volume binds");
    until_cached(w, &pvc, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await;
    (id, pvc)
}

async fn resize(w: &World, token: &str, id: &str, size: &str) -> Value {
    w.gql(
        token,
        &format!(
            "mutation($id: String!, $size: String!) {{ resizeStorage(id: $id, size: $size) {{ id {STORAGE} }} }}"
        ),
        json!({"id": id, "size": size}),
    )
    .await
}

async fn storage_of(w: &World, token: &str) -> Value {
    let body = w
        .gql(
            token,
            &format!("{{ myCodeServers {{ {STORAGE} }} }}"),
            json!({}),
        )
        .await;
    ok(&body, "myCodeServers")[0]["storage"].clone()
}

/// Waits (on the service's cache of records, at most 10 s) until the PVC `name` it holds
/// satisfies `done`.
async fn until_cached(w: &World, name: &str, done: impl Fn(&PersistentVolumeClaim) -> bool) {
    let held = tokio::time::timeout(
        Duration::from_secs(10),
        w.reconciler
            .caches()
            .pvcs()
            .wait_object(name, |p| p.is_some_and(&done)),
    )
    .await;
    assert!(
        matches!(held, Ok(Ok(_))),
        "the cache never showed {name} as expected"
    );
}

/// The writes to PVCs recorded since the last reset.
fn pvc_writes(w: &World) -> Vec<String> {
    w.sim()
        .writes()
        .into_iter()
        .filter(|r| r.resource == "persistentvolumeclaims")
        .map(|r| format!("{} {:?}", r.verb, r.name))
        .collect()
}

fn requested_of(w: &World, pvc: &str) -> Value {
    w.pvc(pvc).unwrap()["spec"]["resources"]["requests"]["storage"].clone()
}

#[tokio::test]
async fn a_workspace_grows_its_file_system_on_the_next_start_and_is_never_shrunk_back() {
    let w = World::start().await;
    let alice = w.token("alice");
    let (id, pvc) = provisioned(&w, &alice).await;
    assert_eq!(
        storage_of(&w, &alice).await,
        json!({"requested": "10Gi", "capacity": "10Gi", "resizePending": false})
    );

    w.sim().reset_requests();
    let body = resize(&w, &alice, &id, "20Gi").await;
    let grown = ok(&body, "resizeStorage");
    assert_eq!(grown["id"], id.as_str());
    assert_eq!(grown["storage"]["requested"], "20Gi", "{body}");
    assert_eq!(grown["storage"]["capacity"], "10Gi", "{body}");
    // One write: a merge patch of the storage request, under the resize's own manager.
    assert_eq!(pvc_writes(&w), [format!("patch {:?}", Some(&pvc))]);
    let live = w.pvc(&pvc).unwrap();
    assert_eq!(live["spec"]["resources"]["requests"]["storage"], "20Gi");
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["fieldsV1"].to_string().contains("\"f:requests\"") && m["subresource"].is_null()
        })
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["codeserver-service-resize"], "{live}");

    // The resizer grows the volume; its file system waits for a pod to mount it.
    let pending = w
        .sim()
        .wait_for(
            "persistentvolumeclaims",
            NS,
            &pvc,
            Duration::from_secs(5),
            |p| {
                p.is_some_and(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "FileSystemResizePending"))
                })
            },
        )
        .await;
    assert!(pending, "{}", w.pvc(&pvc).unwrap());
    let status = &w.pvc(&pvc).unwrap()["status"];
    assert_eq!(status["allocatedResources"]["storage"], "20Gi");
    assert_eq!(
        status["allocatedResourceStatuses"]["storage"],
        "NodeResizePending"
    );
    assert_eq!(status["capacity"]["storage"], "10Gi");
    until_cached(&w, &pvc, storage::resize_pending).await;
    assert_eq!(
        storage_of(&w, &alice).await,
        json!({"requested": "20Gi", "capacity": "10Gi", "resizePending": true})
    );

    // Stopped and started: the kubelet mounts the volume and grows its file system.
    let stop = w
        .on_id(
            &alice,
            "mutation($id: String!) { stopCodeServer(id: $id) }",
            &id,
        )
        .await;
    ok(&stop, "stopCodeServer");
    w.until_gone("pods", &id).await;
    assert!(storage::resize_pending(
        &serde_json::from_value(w.pvc(&pvc).unwrap()).unwrap()
    ));
    let start = w
        .on_id(
            &alice,
            &format!(
                "mutation($id: String!) {{ startCodeServer(id: $id) {{ status {STORAGE} }} }}"
            ),
            &id,
        )
        .await;
    assert_eq!(
        ok(&start, "startCodeServer")["status"],
        "RUNNING",
        "{start}"
    );
    until_cached(&w, &pvc, |p| {
        !storage::resize_pending(p) && storage::capacity(p).is_some_and(|c| c.to_string() == "20Gi")
    })
    .await;
    assert_eq!(
        storage_of(&w, &alice).await,
        json!({"requested": "20Gi", "capacity": "20Gi", "resizePending": false})
    );
    let status = &w.pvc(&pvc).unwrap()["status"];
    assert!(status["conditions"].is_null(), "{status}");
    assert!(status["allocatedResourceStatuses"].is_null(), "{status}");
    assert_eq!(requested_of(&w, &pvc), "20Gi");
    let resized_on_mount = w.sim().list_objects("events").into_iter().any(|e| {
        e["involvedObject"]["name"] == id.as_str() && e["reason"] == "FileSystemResizeSuccessful"
    });
    assert!(
        resized_on_mount,
        "the kubelet reports the file system resize"
    );

    // A repository added to the running instance applies the record (the PVC) again:
    // at the size it has, not the templates' 10Gi.
    w.sim().reset_requests();
    let body = w.provision(&alice, "devteam", "docs").await;
    ok(&body, "provisionCodeServer");
    assert_eq!(requested_of(&w, &pvc), "20Gi");
    assert!(
        w.pvc(&pvc).unwrap()["metadata"]["annotations"]["devplatform.io/repos"]
            .as_str()
            .unwrap()
            .contains("\"docs\""),
        "the record was applied"
    );
    assert!(
        w.sim()
            .writes()
            .iter()
            .any(|r| r.resource == "persistentvolumeclaims"
                && r.field_manager.as_deref() == Some("codeserver-service")),
        "the templates' apply wrote the PVC"
    );

    // And it grows again.
    let body = resize(&w, &alice, &id, "25Gi").await;
    assert_eq!(ok(&body, "resizeStorage")["storage"]["requested"], "25Gi");
}

#[tokio::test]
async fn every_refusal_says_why_and_writes_nothing() {
    let w = World::start().await;
    let alice = w.token("alice");
    let (id, pvc) = provisioned(&w, &alice).await;
    w.sim().reset_requests();

    let refused = |body: &Value| -> (String, String, String) {
        let (message, code) = error_of(body);
        let reason = body["errors"][0]["extensions"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (message.to_owned(), code.to_owned(), reason)
    };

    // Not larger than it is.
    for size in ["10Gi", "10240Mi", "5Gi"] {
        let (message, code, _) = refused(&resize(&w, &alice, &id, size).await);
        assert_eq!(code, "BAD_USER_INPUT", "{size}");
        assert!(
            message.starts_with(
                "invalid argument size: storage can only grow: the workspace has 10Gi"
            ),
            "{size}: {message}"
        );
    }
    // Not a size.
    let long = "9".repeat(40);
    for size in [
        "",
        "lots",
        "-1Gi",
        "0",
        "1.5",
        "500m",
        "20 Gi",
        long.as_str(),
        "20Gi; rm -rf /",
    ] {
        let (message, code, _) = refused(&resize(&w, &alice, &id, size).await);
        assert_eq!(code, "BAD_USER_INPUT", "{size:?}");
        assert!(
            message.starts_with("invalid argument size:"),
            "{size:?}: {message}"
        );
        assert!(!message.contains("rm -rf"), "{message}");
    }
    // Over storage.maxSize (values.yaml: 50Gi).
    let (message, code, _) = refused(&resize(&w, &alice, &id, "60Gi").await);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(
        message.contains("at most 50Gi (storage.maxSize of the instance's values); got 60Gi"),
        "{message}"
    );
    // Over the namespace's LimitRange, when it is the smaller maximum.
    w.sim()
        .seed(json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": "workspace-limits", "namespace": NS},
            "spec": {"limits": [
                {"type": "Container", "max": {"cpu": "4"}},
                {"type": "PersistentVolumeClaim", "max": {"storage": "30Gi"}},
            ]},
        }))
        .unwrap();
    let (message, code, _) = refused(&resize(&w, &alice, &id, "40Gi").await);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(
        message.contains(
            "at most 30Gi (the LimitRange workspace-limits of the instances namespace); got 40Gi"
        ),
        "{message}"
    );
    // Someone else's instance: not found, as a missing one.
    let bob = w.token("bob");
    let (message, code, _) = refused(&resize(&w, &bob, &id, "20Gi").await);
    assert_eq!(
        (message.as_str(), code.as_str()),
        ("instance not found", "NOT_FOUND")
    );
    let (_, code, _) = refused(&resize(&w, &alice, "code-server-nobody", "20Gi").await);
    assert_eq!(code, "NOT_FOUND");

    // A StorageClass that does not allow expansion, then none at all.
    let classes: Api<StorageClass> = Api::all(w.sim().client());
    classes
        .patch(
            "standard",
            &PatchParams::default(),
            &Patch::Merge(json!({"allowVolumeExpansion": false})),
        )
        .await
        .unwrap();
    let (message, code, reason) = refused(&resize(&w, &alice, &id, "20Gi").await);
    assert_eq!(
        (message.as_str(), code.as_str()),
        ("storage cannot grow", "FAILED_PRECONDITION")
    );
    assert!(
        reason.contains("StorageClass standard does not allow volume expansion"),
        "{reason}"
    );
    classes
        .delete("standard", &DeleteParams::default())
        .await
        .unwrap();
    let (_, code, reason) = refused(&resize(&w, &alice, &id, "20Gi").await);
    assert_eq!(code, "FAILED_PRECONDITION");
    assert!(
        reason.contains("StorageClass standard does not exist"),
        "{reason}"
    );

    assert!(pvc_writes(&w).is_empty(), "{:?}", pvc_writes(&w));
    assert_eq!(requested_of(&w, &pvc), "10Gi");
    assert_eq!(
        storage_of(&w, &alice).await,
        json!({"requested": "10Gi", "capacity": "10Gi", "resizePending": false})
    );
}

#[tokio::test]
async fn the_cluster_refuses_what_the_service_refuses() {
    // The simulated API server answers a resize the way the real one does, whoever asks.
    let w = World::start().await;
    let alice = w.token("alice");
    let (_, pvc) = provisioned(&w, &alice).await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(w.sim().client(), NS);
    let grow =
        |size: &str| Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": size}}}}));
    let shrink = pvcs
        .patch(&pvc, &PatchParams::default(), &grow("5Gi"))
        .await
        .unwrap_err();
    let kube::Error::Api(shrink) = shrink else {
        panic!("{shrink}")
    };
    assert_eq!(shrink.code, 422);
    assert!(
        shrink.message.ends_with(
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        ),
        "{}",
        shrink.message
    );
    let classes: Api<StorageClass> = Api::all(w.sim().client());
    classes
        .patch(
            "standard",
            &PatchParams::default(),
            &Patch::Merge(json!({"allowVolumeExpansion": false})),
        )
        .await
        .unwrap();
    let fixed = pvcs
        .patch(&pvc, &PatchParams::default(), &grow("20Gi"))
        .await
        .unwrap_err();
    let kube::Error::Api(fixed) = fixed else {
        panic!("{fixed}")
    };
    assert_eq!((fixed.code, fixed.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        fixed.message,
        format!(
            "persistentvolumeclaims \"{pvc}\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
        )
    );
    w.sim()
        .seed(json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": "workspace-limits", "namespace": NS},
            "spec": {"limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "15Gi"}}]},
        }))
        .unwrap();
    classes
        .patch(
            "standard",
            &PatchParams::default(),
            &Patch::Merge(json!({"allowVolumeExpansion": true})),
        )
        .await
        .unwrap();
    let over = pvcs
        .patch(&pvc, &PatchParams::default(), &grow("20Gi"))
        .await
        .unwrap_err();
    let kube::Error::Api(over) = over else {
        panic!("{over}")
    };
    assert_eq!(
        over.message,
        format!(
            "persistentvolumeclaims \"{pvc}\" is forbidden: maximum storage usage per PersistentVolumeClaim is 15Gi, but request is 20Gi"
        )
    );
    assert_eq!(requested_of(&w, &pvc), "10Gi");
    pvcs.patch(&pvc, &PatchParams::default(), &grow("15Gi"))
        .await
        .expect("within every limit, a bound claim of an expandable class grows");
}
