//! Recoverable delete (`crate::instance::retention`): the setting, restoring a deleted
//! instance, and the Lease holder's purge of deleted instances whose recorded purge time
//! has come. The delete itself is [`Reconciler::delete_with`] (`remove`).
//!
//! Races between replicas are settled by the API server, not by timing: a restore clears
//! the marks only if the record is still at the resourceVersion it read, and a purge
//! deletes the PVC only if it is still at the uid and resourceVersion the purge decided
//! on. The Kubernetes API server refuses either with 409 Conflict otherwise: a patch that
//! carries `metadata.resourceVersion` keeps it on the patched object, and the update then
//! requires the stored object to be at that version ("the object has been modified";
//! kubernetes/kubernetes#63104, the patch handler in `staging/src/k8s.io/apiserver/pkg/
//! endpoints/handlers/patch.go`); `Store.Delete` (`staging/src/k8s.io/apiserver/pkg/
//! registry/generic/registry/store.go`) checks `DeleteOptions.preconditions` (`uid`,
//! `resourceVersion`) against the stored object, both when it sets the deletion timestamp
//! of an object with finalizers (a PVC has `kubernetes.io/pvc-protection`) and when it
//! removes it ("Precondition failed").

use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};

use super::{
    Error, Reconciler, Result,
    apply::delete_if_present,
    cached::Written,
    live::{identity, named},
};
use crate::{
    errors::error_chain,
    instance::{Instance, record, retention},
    naming,
    values::Owner,
};

/// Attempts a restore makes when the record changes under it.
const RESTORE_ATTEMPTS: usize = 3;

impl Reconciler {
    /// The same reconciler, keeping a deleted instance's volume for `retention`
    /// (DELETE_RETENTION; zero, the default: a delete removes it at once).
    pub fn with_delete_retention(mut self, retention: Duration) -> Self {
        self.delete_retention = retention;
        self
    }

    /// How long a deleted instance's volume is kept (zero: not at all).
    pub fn delete_retention(&self) -> Duration {
        self.delete_retention
    }

    /// Restores the caller's deleted instance `id`: the same volume (same PVC), its marks
    /// cleared; STOPPED afterwards (`startCodeServer` brings it up, its keys and git
    /// identity made again then). An instance that is not deleted is answered as it is;
    /// a purged or unknown one, or another user's, is `NotFound`.
    pub async fn restore(&self, owner: &Owner, id: &str) -> Result<Instance> {
        let (_, key) = identity(owner)?;
        let guard = self.locks.lock(&key).await;
        let record = self.owned_record_any(owner, id).await?;
        if retention::is_deleted(&record) {
            self.clear_marks(record).await?;
            tracing::info!(instance = id, "restored a deleted instance");
        }
        drop(guard);
        self.get(owner, id).await
    }

    /// Clears the deletion marks of `record`, at the resourceVersion read (read again from
    /// the API server after a conflict, the same PVC only).
    async fn clear_marks(&self, record: PersistentVolumeClaim) -> Result<()> {
        let name = record.metadata.name.clone().unwrap_or_default();
        let uid = record.metadata.uid.clone();
        let mut current = record;
        for _ in 0..RESTORE_ATTEMPTS {
            if current.metadata.deletion_timestamp.is_some() {
                return Err(Error::BeingDeleted);
            }
            if !retention::is_deleted(&current) {
                return Ok(());
            }
            let version = current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            match self
                .record_lifecycle(&name, &retention::on_restore(&version))
                .await
            {
                Err(Error::Kube {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 404 => return Err(Error::NotFound),
                Err(Error::Kube {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 409 => {}
                other => return other,
            }
            let fresh = named(&self.pvcs(), &name)
                .await
                .map_err(|e| Error::kube("read the workspace volume", e))?;
            // NB: a PVC of the same name made since (after a purge) is another instance.
            match fresh.filter(|p| p.metadata.uid == uid) {
                Some(pvc) => current = pvc,
                None => return Err(Error::NotFound),
            }
        }
        Err(Error::Instance(
            "the workspace volume kept changing during the restore; restore it again".to_owned(),
        ))
    }

    /// Purges the deleted instance `id` if its recorded purge time has come at `now` (the
    /// Lease holder's, after each check): decided again under the owner's lock from the
    /// API server, whatever DELETE_RETENTION is now. What a delete that stopped halfway
    /// left goes first, then the PVC, only as it was read (uid and resourceVersion): one
    /// restored meanwhile stays. True when the PVC was deleted.
    pub async fn purge_if_due(&self, id: &str, now: Timestamp) -> Result<bool> {
        let name = naming::parse_instance_id(id).map_err(|_| Error::NotFound)?;
        let pvc_name = naming::pvc_name(name);
        let Some(cached) = self.pvc(&pvc_name).await? else {
            return Ok(false);
        };
        // NB: the lock its owner's own calls take (their key as today's naming derives it,
        // which a record named by the earlier scheme does not carry as its label).
        let (_, key) = identity(&record::owner(&cached))?;
        let _guard = self.locks.lock(&key).await;
        let Some(pvc) = named(&self.pvcs(), &pvc_name)
            .await
            .map_err(|e| Error::kube("read the workspace volume", e))?
        else {
            return Ok(false);
        };
        if record::instance_id(&pvc) != Some(id) || !retention::purge_due(&pvc, now) {
            return Ok(false);
        }
        self.tear_down(&record::owner(&pvc), &pvc, id, true).await?;
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: pvc.metadata.uid.clone(),
                resource_version: pvc.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        let what = format!("purge PersistentVolumeClaim/{pvc_name}");
        let deleted = match delete_if_present(&self.pvcs(), &pvc_name, &params, &what).await {
            Ok(deleted) => deleted,
            // NB: restored (or changed) since it was read: left alone; the next check
            // decides again.
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(false),
            Err(e) => return Err(Error::kube(&what, e)),
        };
        let ns = &self.settings.namespace;
        self.written(
            "v1/PersistentVolumeClaim",
            ns,
            &pvc_name,
            Written::of_delete(&deleted),
        )
        .await;
        tracing::info!(
            instance = id,
            purge_at = %retention::purge_at(&pvc).map(|t| t.to_string()).unwrap_or_default(),
            "purged a deleted instance"
        );
        Ok(true)
    }

    /// The Lease holder's purge pass over the listed records `pvcs` at `now`: every
    /// deleted one whose recorded purge time has come is purged ([`Self::purge_if_due`]),
    /// `concurrency` at once. The ids purged, sorted; failures are logged and tried again
    /// at the next check.
    pub async fn purge_due(
        &self,
        pvcs: &[PersistentVolumeClaim],
        now: Timestamp,
        concurrency: usize,
    ) -> Vec<String> {
        let due: Vec<String> = pvcs
            .iter()
            .filter(|pvc| retention::purge_due(pvc, now))
            .filter_map(|pvc| record::instance_id(pvc).map(str::to_owned))
            .collect();
        let results: Vec<(String, Result<bool>)> = futures::stream::iter(due)
            .map(|id| async move {
                let purged = self.purge_if_due(&id, now).await;
                (id, purged)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut purged = Vec::new();
        for (id, result) in results {
            match result {
                Ok(true) => purged.push(id),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(instance = %id, error = %error_chain(&error), "failed to purge a deleted instance");
                }
            }
        }
        purged.sort();
        purged
    }
}
