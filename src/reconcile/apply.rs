//! Apply: carry out a plan with server-side apply (one field manager, `force`, so manual
//! drift is taken back), in dependency order, independent objects concurrently: the PVC;
//! then the guards (the kinds that only restrict, see [`is_guard`]); then Service,
//! VirtualService and other kinds (routes); then the pod; then prunes, guards last. So a
//! route or a pod never exists unguarded, not even for the length of one request.
//! Unchanged objects get no request at all, and a fetched object is never applied back:
//! only rendered ones are.

use std::time::Duration;

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy},
    runtime::wait::{await_condition, conditions},
};

use super::{
    Error,
    error::{reason, with_retry},
    kinds::Kinds,
    plan::{Action, Plan, Step},
};
use crate::naming::FIELD_MANAGER;

/// Which updates an apply may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updates {
    /// Every create and update.
    All,
    /// Creates, and updates of the PVC (the instance record) and of the guards (see
    /// [`is_guard`]) only: a running instance's other objects are left as they are until
    /// it is restarted.
    RecordOnly,
}

/// What an apply may do beyond creating and updating.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Which updates are made.
    pub updates: Updates,
    /// Delete and create again a pod whose rendered spec changed.
    pub recreate: bool,
    /// Delete objects labelled ours that are no longer rendered.
    pub prune: bool,
}

/// What an apply did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Objects applied (created or updated), as the server returned them.
    pub applied: Vec<DynamicObject>,
    /// Objects deleted (pruned or recreated).
    pub deleted: Vec<String>,
    /// Steps held back (e.g. a running pod's pending recreate), `Kind/name`.
    pub held: Vec<String>,
}

/// How long a deleted pod may take to go before a recreate gives up.
pub(super) const POD_GONE_TIMEOUT: Duration = Duration::from_secs(90);

/// Applies `plan` in `namespace`.
pub async fn apply(
    client: &Client,
    kinds: &Kinds,
    namespace: &str,
    plan: &Plan,
    opts: ApplyOptions,
) -> Result<Outcome, Error> {
    let mut outcome = Outcome::default();
    for stage in 0..=LAST_STAGE {
        let steps: Vec<&Step> = plan.steps.iter().filter(|s| stage_of(s) == stage).collect();
        let results = try_join_all(
            steps
                .iter()
                .map(|s| run_step(client, kinds, namespace, s, opts)),
        )
        .await?;
        for (step, result) in steps.iter().zip(results) {
            match result {
                StepResult::Applied(obj) => outcome.applied.push(*obj),
                StepResult::Deleted => outcome.deleted.push(step.object.clone()),
                StepResult::Recreated(obj) => {
                    outcome.deleted.push(step.object.clone());
                    outcome.applied.push(*obj);
                }
                StepResult::Held => outcome.held.push(step.object.clone()),
                StepResult::Nothing => {}
            }
        }
    }
    Ok(outcome)
}

/// The last stage of [`stage_of`].
const LAST_STAGE: u8 = 5;

/// When a step runs: creates and updates of the PVC, the guards, the routes and other
/// kinds, the pod; then prunes of everything but guards, then of guards.
fn stage_of(step: &Step) -> u8 {
    let guard = is_guard(&step.api_version, &step.kind);
    match (&step.action, step.kind.as_str()) {
        (Action::Prune, _) if guard => 5,
        (Action::Prune, _) => 4,
        (_, "PersistentVolumeClaim") => 0,
        _ if guard => 1,
        (_, "Pod") => 3,
        _ => 2,
    }
}

/// True for the kinds that only restrict what an instance may do or who may reach it: a
/// NetworkPolicy. They are applied before the routes and the pod they guard and
/// removed after them, and they follow the templates on a running instance: changing
/// one never needs a restart, and holding a tightened one back until the next restart
/// would leave the running pod with the looser rules.
///
/// NB: the Service and VirtualService are routes (a change can open a way in), a Secret
/// or ConfigMap is mounted in the running pod, a Job runs code; none of them is a guard.
pub fn is_guard(api_version: &str, kind: &str) -> bool {
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    kind == "NetworkPolicy" && group == "networking.k8s.io"
}

enum StepResult {
    Applied(Box<DynamicObject>),
    Recreated(Box<DynamicObject>),
    Deleted,
    Held,
    Nothing,
}

/// True for the kinds a `RecordOnly` apply still updates: the instance record, and the
/// guards ([`is_guard`]: what a running instance may reach and who may reach it must
/// follow the templates at once; changing them never restarts the pod).
fn updated_while_running(step: &Step) -> bool {
    step.kind == "PersistentVolumeClaim" || is_guard(&step.api_version, &step.kind)
}

async fn run_step(
    client: &Client,
    kinds: &Kinds,
    default_ns: &str,
    step: &Step,
    opts: ApplyOptions,
) -> Result<StepResult, Error> {
    // NB: rendered objects were checked to name their namespace (the instances one);
    // listed ones carry the namespace they live in.
    let ns = if step.namespace.is_empty() {
        default_ns
    } else {
        step.namespace.as_str()
    };
    match &step.action {
        Action::Unchanged => Ok(StepResult::Nothing),
        Action::Update { .. }
            if opts.updates == Updates::RecordOnly && !updated_while_running(step) =>
        {
            Ok(StepResult::Held)
        }
        Action::Create | Action::Update { .. } => {
            let Some(obj) = &step.desired else {
                return Ok(StepResult::Nothing);
            };
            Ok(StepResult::Applied(Box::new(
                server_side_apply(client, kinds, ns, obj).await?,
            )))
        }
        Action::Recreate { .. } if !opts.recreate => Ok(StepResult::Held),
        Action::Recreate { .. } => {
            let Some(obj) = &step.desired else {
                return Ok(StepResult::Nothing);
            };
            delete_pod_and_wait(client, ns, &step.name).await?;
            Ok(StepResult::Recreated(Box::new(
                server_side_apply(client, kinds, ns, obj).await?,
            )))
        }
        Action::Prune if !opts.prune => Ok(StepResult::Held),
        Action::Prune => {
            let ar = kinds.resolve(client, &step.api_version, &step.kind).await?;
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            let what = format!("prune {}", step.object);
            let params = background();
            delete_if_present(&api, &step.name, &params, &what)
                .await
                .map_err(|e| classify(&step.kind, &what, e))?;
            Ok(StepResult::Deleted)
        }
    }
}

/// Server-side apply of one rendered object with the service's field manager and force,
/// in the namespace the object names (`ns` when it names none).
pub async fn server_side_apply(
    client: &Client,
    kinds: &Kinds,
    ns: &str,
    obj: &DynamicObject,
) -> Result<DynamicObject, Error> {
    let ns = obj.metadata.namespace.as_deref().unwrap_or(ns);
    let types = obj.types.clone().unwrap_or_default();
    let ar = kinds
        .resolve(client, &types.api_version, &types.kind)
        .await
        .map_err(|e| match e {
            Error::Degraded(m) => Error::Routing(m),
            other => other,
        })?;
    let mut body = obj.clone();
    // NB: the served version may differ from the rendered one (Istio v1beta1 clusters);
    // both versions share one schema.
    if let Some(t) = body.types.as_mut() {
        t.api_version.clone_from(&ar.api_version);
    }
    let name = obj.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let what = format!("apply {}/{name}", types.kind);
    let patch = Patch::Apply(&body);
    with_retry(&what, || api.patch(&name, &params, &patch))
        .await
        .map_err(|e| classify(&types.kind, &what, e))
}

/// Maps a failed write to the specification's error for its kind.
fn classify(kind: &str, what: &str, e: kube::Error) -> Error {
    let detail = format!("{what}: {}", reason(&e));
    match kind {
        "PersistentVolumeClaim" => Error::Storage(detail),
        "Service" | "VirtualService" | "NetworkPolicy" => Error::Routing(detail),
        _ => Error::Instance(detail),
    }
}

/// What a delete found.
#[derive(Debug)]
pub enum Deleted<K> {
    /// The object was already gone.
    Absent,
    /// The delete was accepted: the object as it is being deleted, when the server
    /// answered with it rather than with a status.
    Accepted(Option<K>),
}

/// Deletes `name` through `api` (retried as [`with_retry`] retries), an object that is
/// already gone counting as deleted: the one delete every removal goes through.
pub async fn delete_if_present<K>(
    api: &Api<K>,
    name: &str,
    params: &DeleteParams,
    what: &str,
) -> Result<Deleted<K>, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match with_retry(what, || api.delete(name, params)).await {
        Ok(either) => Ok(Deleted::Accepted(either.left())),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::Absent),
        Err(e) => Err(e),
    }
}

fn background() -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    }
}

/// Deletes a pod (404 is fine) and waits until it is gone.
pub async fn delete_pod_and_wait(client: &Client, ns: &str, name: &str) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let what = format!("delete Pod/{name}");
    let params = DeleteParams::default();
    let uid = match delete_if_present(&api, name, &params, &what).await {
        Ok(Deleted::Accepted(pod)) => pod.and_then(|p| p.metadata.uid),
        Ok(Deleted::Absent) => return Ok(()),
        Err(e) => return Err(Error::Instance(format!("{what}: {}", reason(&e)))),
    };
    wait_pod_gone(client, ns, name, uid.as_deref()).await
}

/// Waits until the pod `name` (with `uid`, when known) no longer exists.
pub async fn wait_pod_gone(
    client: &Client,
    ns: &str,
    name: &str,
    uid: Option<&str>,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let gone = match uid {
        Some(uid) => {
            tokio::time::timeout(
                POD_GONE_TIMEOUT,
                await_condition(api, name, conditions::is_deleted(uid)),
            )
            .await
        }
        None => {
            tokio::time::timeout(
                POD_GONE_TIMEOUT,
                await_condition(api, name, |p: Option<&Pod>| p.is_none()),
            )
            .await
        }
    };
    match gone {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Instance(format!(
            "waiting for Pod/{name} to go: {e}"
        ))),
        Err(_) => Err(Error::Instance(format!(
            "Pod/{name} is still terminating after {}s",
            POD_GONE_TIMEOUT.as_secs()
        ))),
    }
}
