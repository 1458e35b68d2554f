//! Stop (the pod goes, the workspace stays) and delete (every object, the PVC last; with
//! DELETE_RETENTION, every object but the PVC, which stays marked deleted).

use kube::{
    Api,
    api::{DeleteParams, DynamicObject, PropagationPolicy},
};

use super::{
    Error, Reconciler, Result,
    apply::{self, delete_if_present, is_guard},
    cached::Written,
    live::{dedupe_versions, identity, kinds_of},
};
use crate::{
    instance::{record, retention},
    values::Owner,
};

impl Reconciler {
    /// Delete: every object of the instance, only that instance's: routes and the pod
    /// first (the pod waited out), then the guards, the PVC (and the work in it) last.
    /// With DELETE_RETENTION set the PVC stays, marked deleted until its purge time
    /// ([`Self::delete_with`]).
    pub async fn delete(&self, owner: &Owner, id: &str) -> Result<()> {
        self.delete_with(owner, id, false).await
    }

    /// [`Self::delete`]. With `purge`, or without DELETE_RETENTION, the PVC goes too (a
    /// deleted instance's included). Otherwise the PVC stays, marked deleted with its
    /// purge time (`crate::instance::retention`) before anything else goes; deleting a
    /// deleted instance again only finishes a delete that stopped halfway.
    pub async fn delete_with(&self, owner: &Owner, id: &str, purge: bool) -> Result<()> {
        let (_, key) = identity(owner)?;
        let _guard = self.locks.lock(&key).await;
        let record = match self.owned_record_any(owner, id).await {
            // NB: deleting again is not an error; the objects are already going.
            Err(Error::BeingDeleted) => return Ok(()),
            other => other?,
        };
        let keep_volume = !purge && !self.delete_retention.is_zero();
        let meant_to_run = crate::instance::lifecycle::runs_since(&record).is_some();
        let name = record.metadata.name.clone().unwrap_or_default();
        if keep_volume && !retention::is_deleted(&record) {
            // NB: marked before anything goes: from then on nobody opens it, the Lease
            // holder never takes the pod's removal for a loss, and a start or provision
            // on any replica refuses it.
            let stop = meant_to_run.then_some(crate::instance::StopReason::User);
            let now = jiff::Timestamp::now();
            let marks = retention::on_delete(now, self.delete_retention, stop);
            self.record_lifecycle(&name, &marks).await?;
        } else if meant_to_run {
            // NB: no longer meant to run, before the pod goes: the Lease holder (maybe on
            // another replica) must not take the pod's removal for a loss and start it
            // again.
            let stop = crate::instance::lifecycle::on_stop(crate::instance::StopReason::User);
            self.record_lifecycle(&name, &stop).await?;
        }
        self.tear_down(owner, &record, id, keep_volume).await
    }

    /// Removes the objects of instance `id` recorded by `record`: its deploy keys and git
    /// identity, the routes and the pod (waited out), the guards, and, unless
    /// `keep_volume`, the PVC.
    pub(super) async fn tear_down(
        &self,
        owner: &Owner,
        record: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
        id: &str,
        keep_volume: bool,
    ) -> Result<()> {
        let mut kinds = record::kinds(Some(record));
        let owner = record::caller(owner, Some(record));
        // NB: the instance's deploy keys go first: a failure leaves the instance whole
        // rather than its keys behind.
        if let Some(name) = owner.known_name.as_deref() {
            self.remove_keys(name).await?;
            self.remove_git_identity(&owner, name).await?;
        }
        // NB: a render failure must not stop a delete; the recorded kinds still list
        // everything ever applied.
        let repos = record::repos(Some(record));
        if let Ok(desired) = self.desired(&owner, &repos, &kinds, &[], record::profile(record)) {
            kinds.extend(kinds_of(&desired.objects));
        }
        kinds.insert("batch/v1/Job".to_owned());
        kinds.insert("v1/Pod".to_owned());
        let kinds = dedupe_versions(kinds, &self.kinds);
        let live = self.live_objects(id, &kinds).await?;
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        let [routes, guards, pvcs] = removal_order(live);
        // NB: routes and pods first, and the pod waited out: a terminating pod still
        // runs, and its guards must hold until it is gone. A pod that does not go in
        // time fails the delete with its guards and volume in place; deleting again
        // finishes it.
        self.delete_batch(&routes, &params).await?;
        if let Some(pod) = routes.iter().find(|o| is_instance_pod(o, id)) {
            self.wait_pod_gone(id, pod.metadata.uid.as_deref()).await?;
        }
        self.delete_batch(&guards, &params).await?;
        if keep_volume {
            return Ok(());
        }
        self.delete_batch(&pvcs, &params).await
    }

    /// Waits (bounded) until the pod `id` (with `uid`, when known) is gone: watching the
    /// caches once they have synced, else the API server.
    async fn wait_pod_gone(&self, id: &str, uid: Option<&str>) -> Result<()> {
        let ns = &self.settings.namespace;
        if let Some(caches) = self.cached() {
            let gone = caches.pods().wait_gone(ns, id);
            match tokio::time::timeout(apply::POD_GONE_TIMEOUT, gone).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(error)) => {
                    tracing::warn!(pod = id, %error, "the cache cannot show a pod go; watching the API server");
                }
                Err(_) => {
                    return Err(Error::Instance(format!(
                        "Pod/{id} is still terminating after {}s; its network policies and \
                         volume stay until it is gone (delete again to finish)",
                        apply::POD_GONE_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        apply::wait_pod_gone(&self.client, ns, id, uid).await?;
        self.written("v1/Pod", ns, id, Written::Gone).await;
        Ok(())
    }

    /// Deletes `objects` concurrently.
    async fn delete_batch(&self, objects: &[DynamicObject], params: &DeleteParams) -> Result<()> {
        futures::future::try_join_all(objects.iter().map(|o| self.delete_object(o, params)))
            .await
            .map(drop)
    }

    async fn delete_object(&self, o: &DynamicObject, params: &DeleteParams) -> Result<()> {
        let t = o.types.clone().unwrap_or_default();
        let ar = self
            .kinds
            .resolve(&self.client, &t.api_version, &t.kind)
            .await?;
        let ns = self.settings.namespace.as_str();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let name = o.metadata.name.clone().unwrap_or_default();
        let what = format!("delete {}/{name}", t.kind);
        let deleted = delete_if_present(&api, &name, params, &what)
            .await
            .map_err(|e| Error::kube(&what, e))?;
        let kind = format!("{}/{}", ar.api_version, ar.kind);
        self.written(&kind, ns, &name, Written::of_delete(&deleted))
            .await;
        Ok(())
    }
}

/// The objects of an instance in the order a delete removes them: routes, the pod and
/// everything else that is not a guard; then the guards ([`is_guard`]); then the PVC
/// (the instance record and the work in it).
fn removal_order(live: Vec<DynamicObject>) -> [Vec<DynamicObject>; 3] {
    let (mut routes, mut guards, mut pvcs) = (Vec::new(), Vec::new(), Vec::new());
    for o in live {
        let (api_version, kind) = o
            .types
            .as_ref()
            .map_or(("", ""), |t| (t.api_version.as_str(), t.kind.as_str()));
        if kind == "PersistentVolumeClaim" {
            pvcs.push(o);
        } else if is_guard(api_version, kind) {
            guards.push(o);
        } else {
            routes.push(o);
        }
    }
    [routes, guards, pvcs]
}

/// True for the instance's code-server pod `id` among listed objects.
fn is_instance_pod(o: &DynamicObject, id: &str) -> bool {
    o.types.as_ref().is_some_and(|t| t.kind == "Pod") && o.metadata.name.as_deref() == Some(id)
}
