//! RBAC is checked, not guessed: the reconciler runs every lifecycle operation against
//! the simulated cluster, which records each request in authorisation terms; every
//! request must be allowed by the Role in `k8s/03-rbac.yaml` (the only one, in the
//! instances namespace) or, for a cluster-scoped one, by its one ClusterRole, and every
//! grant of either must have been used.

mod support;
#[path = "support/world.rs"]
mod world;

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    activity::{Culler, IdlePolicy, IdleSettings},
    gitea::{GiteaClient, GiteaSettings},
    reconcile::{Kinds, Timeouts},
    values::{Owner, Repo},
};
use codeserver_sim::{
    PodBehaviour, Sim, SimOptions,
    gitea::{SimGitea, SimRepo},
    issuer::Issuer,
};
use support::rbac::{self, Comparison, Request};

fn quick() -> SimOptions {
    let step = Duration::from_millis(20);
    SimOptions {
        schedule_delay: step,
        init_delay: step,
        start_delay: step,
        ready_delay: step,
        backoff_delay: step,
        job_duration: step,
        pvc_bind_delay: step,
        ..SimOptions::default()
    }
}

fn repo(name: &str) -> Repo {
    let url = format!("http://gitea:3000/devteam/{name}.git");
    Repo::new("devteam", name, &url).expect("a valid repository")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_grants_exactly_what_the_service_uses() {
    let sim = Sim::start_with(quick())
        .await
        .expect("the simulated cluster starts");
    let client = sim.client();
    let kinds = Kinds::discover(&client).await.expect("discovery works");
    // Gitea, for access checks and the instance's deploy keys (a Secret of its own).
    let issuer = Arc::new(Issuer::start().await.expect("the issuer starts"));
    let repos = ["backend-api", "frontend"].map(|n| SimRepo::new("devteam", n, false));
    let gitea = SimGitea::start_with(issuer.clone(), repos.to_vec())
        .await
        .expect("the simulated Gitea starts");
    gitea.add_user("John.Doe");
    let keys = GiteaClient::new(GiteaSettings::sudo(
        &gitea.url(),
        codeserver_sim::gitea::SERVICE_TOKEN,
    ))
    .expect("a Gitea client");
    let reconciler = world::reconciler(&sim)
        .kinds(kinds)
        .settings(support::validate_templates_settings(&[]))
        .timeouts(Timeouts {
            ready: Duration::from_secs(20),
            unschedulable: Duration::from_secs(20),
            sync: Duration::from_secs(20),
        })
        .gitea(keys)
        .build();
    // NB: the caller's token links them to their Gitea account (sudo mode acts only as
    // a linked account).
    let spec = codeserver_sim::issuer::TokenSpec::new("John.Doe");
    let token = issuer.mint(&spec).expect("a token");
    let owner = Owner {
        email: Some("john.doe@corp.example".to_owned()),
        sub: Some(spec.sub.clone()),
        gitea_token: Some(codeserver_service::config::Secret::new(token)),
        ..Owner::new("John.Doe")
    };

    // Every operation the API offers, in the order a user meets them.
    let provisioned = reconciler
        .provision(&owner, repo("backend-api"))
        .await
        .expect("provision");
    let id = provisioned.instance.id.clone();
    reconciler.get(&owner, &id).await.expect("get");
    reconciler.list(&owner).await.expect("list");
    reconciler.status(&owner, &id).await.expect("status");
    reconciler.logs(&owner, &id, 10).await.expect("logs");
    reconciler.stats().await.expect("stats");
    reconciler
        .render_for(&owner, repo("backend-api"))
        .await
        .expect("render");
    reconciler
        .plan_for(&owner, repo("backend-api"))
        .await
        .expect("plan");
    reconciler.sync(&owner, &id).await.expect("sync");
    reconciler
        .provision(&owner, repo("frontend"))
        .await
        .expect("a second repository");
    // resizeStorage: the namespace's LimitRanges and the volume's StorageClass (cluster
    // scoped) are read, then the PVC's request patched.
    reconciler
        .resize_storage(&owner, &id, "20Gi")
        .await
        .expect("resize storage");
    // The idle culler: elected (Lease created, then renewed), records activity on the
    // PVC and stops the idle instance.
    let code_servers = sim
        .code_servers()
        .await
        .expect("code-server endpoints start");
    let culler = Culler::new(
        reconciler.clone(),
        &IdleSettings {
            check_interval: Duration::from_secs(60),
            policy: IdlePolicy {
                timeout: Duration::from_secs(600),
                warning: Duration::from_secs(60),
                max_extension: Duration::from_secs(8 * 3600),
            },
            check_concurrency: 2,
            healthz_url: code_servers.url_template(),
            lease_name: "codeserver-service-idle-culler".to_owned(),
            pod_name: Some("codeserver-service-0".to_owned()),
        },
        None,
    )
    .expect("the culler builds");
    let now = jiff::Timestamp::now();
    let first = culler.check(now).await.expect("an idle check");
    assert_eq!(first.recorded, vec![id.clone()]);
    let later = now + jiff::SignedDuration::from_secs(601);
    let idle = culler.check(later).await.expect("an idle stop");
    assert_eq!(idle.stopped, vec![id.clone()]);
    reconciler.stop(&owner, &id).await.expect("stop");
    reconciler.start(&owner, &id).await.expect("start");
    // A pod lost without a stop: the Lease holder starts it again (and records an Event).
    sim.evict_pod(
        "codeserver-instances",
        &id,
        "The node was low on resource: memory.",
    );
    let healed = culler
        .check(later + jiff::SignedDuration::from_secs(60))
        .await
        .expect("a check that restarts the lost pod");
    assert_eq!(healed.restarted, vec![id.clone()]);
    // Images pulled ahead: the DaemonSet was applied at the first check; its status read;
    // turned off, it is deleted at the next check.
    assert!(first.prepulled.is_some());
    reconciler
        .prepull_status()
        .await
        .expect("the pre-pull DaemonSet's status");
    reconciler
        .templates()
        .swap(support::templates::edited_templates(|d| {
            support::templates::replace_in(
                d,
                "values.yaml",
                "prepull:\n",
                "prepull:\n  enabled: false\n",
            );
            support::templates::replace_in(
                d,
                "values.yaml",
                "  enabled: true\n  # The image its pods",
                "  # The image its pods",
            );
        }));
    let off = culler
        .check(later + jiff::SignedDuration::from_secs(120))
        .await
        .expect("a check that removes the pre-pull DaemonSet");
    assert_eq!(off.prepulled, Some(Vec::new()));
    reconciler
        .templates()
        .swap(codeserver_service::render::Templates::builtin().expect("the built-in set"));
    reconciler.events(&id).await.expect("events");
    // The codeServerEvents subscription watches the pod and the events of one instance
    // (a pod that never becomes ready keeps it going until the kubelet's events arrive).
    reconciler.stop(&owner, &id).await.expect("stop again");
    assert!(
        sim.wait_for(
            "pods",
            "codeserver-instances",
            &id,
            Duration::from_secs(10),
            |p| p.is_none()
        )
        .await
    );
    sim.set_pod_behaviour(&id, PodBehaviour::NeverReady);
    reconciler
        .start_with(&owner, &id, false)
        .await
        .expect("start without waiting");
    let progress = reconciler.progress(&owner, &id).await.expect("progress");
    let mut progress = std::pin::pin!(progress);
    // NB: an event that appears after one the stream reported can only come from the
    // watch that follows the list.
    for reason in ["SeenFirst", "SeenSecond"] {
        sim.seed(serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{id}.{}", reason.to_ascii_lowercase()), "namespace": "codeserver-instances"},
            "involvedObject": {"kind": "Pod", "name": id, "namespace": "codeserver-instances"},
            "reason": reason, "message": "seeded", "type": "Normal", "count": 1,
        }))
        .expect("an event");
        let seen = tokio::time::timeout(Duration::from_secs(30), async {
            use futures::StreamExt as _;
            while let Some(item) = progress.next().await {
                if item.event.as_ref().is_some_and(|e| e.reason == reason) {
                    return true;
                }
            }
            false
        })
        .await
        .expect("the event in time");
        assert!(seen, "{reason}");
    }
    reconciler.delete(&owner, &id).await.expect("delete");
    // Provisioning right after a delete watches the old volume go.
    reconciler
        .provision(&owner, repo("backend-api"))
        .await
        .expect("provision after delete");

    let requests: Vec<Request> = sim
        .requests()
        .into_iter()
        .map(|r| Request {
            apply: r.verb == "patch" && r.field_manager.is_some(),
            verb: r.verb,
            group: r.api_group,
            resource: r.resource,
            subresource: r.subresource,
            namespace: r.namespace,
        })
        .collect();
    assert!(
        !requests.is_empty(),
        "the simulated cluster recorded nothing"
    );
    // Who opens a workspace is the service's own decision: it reads and writes no access
    // policy, anywhere.
    let policies: Vec<String> = requests
        .iter()
        .filter(|r| r.resource == "authorizationpolicies")
        .map(|r| format!("{} in {:?}", r.verb, r.namespace))
        .collect();
    assert!(
        policies.is_empty(),
        "requests for AuthorizationPolicies: {policies:?}"
    );
    let comparison = rbac::compare_with_cluster(&rbac::roles(), &rbac::cluster_role(), &requests);
    assert_eq!(
        comparison,
        Comparison::default(),
        "k8s/03-rbac.yaml and the service disagree: `denied` would fail in a real cluster, \
         `unused` is wider than needed"
    );
}
