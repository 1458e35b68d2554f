//! Stop (the pod goes, the workspace stays) and delete (every object, the PVC last).

use kube::{
    Api,
    api::{DeleteParams, DynamicObject, PropagationPolicy},
};

use super::{
    Error, Reconciler, Result,
    apply::delete_if_present,
    cached::Written,
    live::{dedupe_versions, identity, kinds_of},
};
use crate::{instance::record, values::Owner};

impl Reconciler {
    /// Stop: delete the pod; the PVC and the work in it stay. Answers at once (STOPPING).
    pub async fn stop(&self, owner: &Owner, id: &str) -> Result<()> {
        let (_, key) = identity(owner)?;
        let _guard = self.locks.lock(&key).await;
        self.owned_record(owner, id).await?;
        let what = format!("delete Pod/{id}");
        let (pods, params) = (self.pods(), DeleteParams::default());
        let deleted = delete_if_present(&pods, id, &params, &what)
            .await
            .map_err(|e| Error::Instance(format!("{what}: {}", super::reason(&e))))?;
        let ns = &self.settings.namespace;
        self.written("v1/Pod", ns, id, Written::of_delete(&deleted))
            .await;
        Ok(())
    }
    /// Delete: every object of the instance, the PVC (and the work in it) last; only
    /// that instance's.
    pub async fn delete(&self, owner: &Owner, id: &str) -> Result<()> {
        let (_, key) = identity(owner)?;
        let _guard = self.locks.lock(&key).await;
        let record = match self.owned_record(owner, id).await {
            // NB: deleting again is not an error; the objects are already going.
            Err(Error::BeingDeleted) => return Ok(()),
            other => other?,
        };
        let mut kinds = record::kinds(Some(&record));
        let owner = record::caller(owner, Some(&record));
        // NB: the instance's deploy keys go first: a failure leaves the instance whole
        // rather than its keys behind.
        if let Some(name) = owner.known_name.as_deref() {
            self.remove_keys(name).await?;
        }
        // NB: a render failure must not stop a delete; the recorded kinds still list
        // everything ever applied.
        if let Ok(desired) = self.desired(&owner, &record::repos(Some(&record)), &kinds, &[]) {
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
        let (pvcs, rest): (Vec<_>, Vec<_>) = live.into_iter().partition(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| t.kind == "PersistentVolumeClaim")
        });
        for batch in [rest, pvcs] {
            futures::future::try_join_all(batch.iter().map(|o| self.delete_object(o, &params)))
                .await?;
        }
        Ok(())
    }

    async fn delete_object(&self, o: &DynamicObject, params: &DeleteParams) -> Result<()> {
        let t = o.types.clone().unwrap_or_default();
        let ar = self
            .kinds
            .resolve(&self.client, &t.api_version, &t.kind)
            .await?;
        let ns = super::live::namespace_of(&self.settings, &ar.api_version, &ar.kind);
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
