//! Live state: the objects of an instance, found through the caches' indexes (or by
//! label selector from the API server, for kinds not cached or not synced yet), and the
//! PVC that records the instance.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, ListParams, TypeMeta},
};

use super::{Error, Reconciler, Result, kinds::Kinds, with_retry};
use crate::{instance::record, naming, render::is_retired_policy, values::Owner};

/// Selector of everything this service manages.
pub fn managed_selector() -> String {
    format!("{}={}", naming::LABEL_MANAGED_BY, naming::MANAGED_BY_VALUE)
}

/// Selector of one instance's objects.
pub fn instance_selector(id: &str) -> String {
    format!("{},{}={id}", managed_selector(), naming::LABEL_INSTANCE)
}

/// Selector of one owner's objects.
pub fn owner_selector(owner_key: &str) -> String {
    format!("{},{}={owner_key}", managed_selector(), naming::LABEL_OWNER)
}

/// The caller's safe name and durable owner key.
pub fn identity(owner: &Owner) -> Result<(String, String)> {
    let safe = naming::safe_name(&owner.user_id).map_err(crate::values::ValuesError::from)?;
    let key = naming::owner_key(owner.sub.as_deref(), &safe);
    Ok((safe, key))
}

/// True when `pvc` belongs to the caller: its owner label is the caller's key, or (for
/// instances created without a `sub`) its user label is the caller's safe name.
pub fn owns(pvc: &PersistentVolumeClaim, safe: &str, key: &str) -> bool {
    labels_own(pvc.metadata.labels.as_ref(), safe, key)
}

/// True when `pvc` is an instance record named by the earlier, 32-bit naming scheme that
/// belongs to `owner`: it carries the name that scheme gave the caller's user id as both
/// its owner and user label (an instance created without a `sub`; one with a `sub` is
/// found by it), and its record names exactly the caller's user id.
///
/// NB: the recorded user id is what decides: an id made to collide with the caller's
/// under eight hex digits of hash has the old name but not the id.
pub fn owns_legacy(pvc: &PersistentVolumeClaim, owner: &Owner) -> bool {
    let Some(legacy) = naming::legacy_safe_name(&owner.user_id) else {
        return false;
    };
    record::user_id(pvc) == Some(owner.user_id.as_str())
        && labels_own(pvc.metadata.labels.as_ref(), &legacy, &legacy)
}

/// True when `pvc` belongs to `owner` (whose safe name and key are `safe` and `key`):
/// by the rule of [`owns`], or as an instance named by the earlier scheme
/// ([`owns_legacy`]).
pub fn owns_record(pvc: &PersistentVolumeClaim, owner: &Owner, safe: &str, key: &str) -> bool {
    owns(pvc, safe, key) || owns_legacy(pvc, owner)
}

/// True when an object with `labels` belongs to the caller (the rule of [`owns`]); an
/// object without an owner label belongs to nobody who may write over it.
pub fn labels_own(labels: Option<&BTreeMap<String, String>>, safe: &str, key: &str) -> bool {
    let Some(labels) = labels else {
        return false;
    };
    let owner = labels.get(naming::LABEL_OWNER).map(String::as_str);
    let user = labels.get(naming::LABEL_USER).map(String::as_str);
    owner == Some(key) || (owner.is_some() && owner == user && user == Some(safe))
}

impl Reconciler {
    pub(super) fn pvcs(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    pub(super) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    /// The owner's instance record (PVC): found by the durable owner label `key`, else,
    /// for an instance created under the earlier naming scheme, under the name that
    /// scheme gave the owner's user id, where the record names exactly that user id
    /// (see [`owns_legacy`]): such an instance keeps its name.
    pub(super) async fn find_record(
        &self,
        owner: &Owner,
        key: &str,
    ) -> Result<Option<PersistentVolumeClaim>> {
        if let Some(pvc) = self.records_of_key(key).await?.into_iter().next() {
            return Ok(Some(pvc));
        }
        let Some(legacy) = naming::legacy_safe_name(&owner.user_id) else {
            return Ok(None);
        };
        Ok(self
            .records_of_key(&legacy)
            .await?
            .into_iter()
            .find(|pvc| owns_legacy(pvc, owner)))
    }

    /// The records whose owner label is `key`, oldest first.
    async fn records_of_key(&self, key: &str) -> Result<Vec<PersistentVolumeClaim>> {
        let mut items = match self.cached() {
            Some(caches) => caches
                .records_of_owner(key)
                .iter()
                .map(|pvc| PersistentVolumeClaim::clone(pvc))
                .collect(),
            None => {
                let lp = ListParams::default().labels(&owner_selector(key));
                let api = self.pvcs();
                with_retry("list the owner's PVCs", || api.list(&lp))
                    .await
                    .map_err(|e| Error::kube("list the owner's workspace volumes", e))?
                    .items
            }
        };
        items.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        Ok(items)
    }

    /// The record of instance `id` if it belongs to the caller; `NotFound` otherwise
    /// (another user's instance is indistinguishable from a missing one), `BeingDeleted`
    /// when it is the caller's but has a deletion timestamp, and `Deleted` when it is
    /// marked deleted (kept for DELETE_RETENTION): every operation but a read, a restore
    /// and a purge refuses it (see [`Self::owned_record_any`]).
    pub(super) async fn owned_record(
        &self,
        owner: &Owner,
        id: &str,
    ) -> Result<PersistentVolumeClaim> {
        let pvc = self.owned_record_any(owner, id).await?;
        if crate::instance::retention::is_deleted(&pvc) {
            return Err(Error::Deleted);
        }
        Ok(pvc)
    }

    /// [`Self::owned_record`], a record marked deleted included: for reads, restore and
    /// delete.
    pub(super) async fn owned_record_any(
        &self,
        owner: &Owner,
        id: &str,
    ) -> Result<PersistentVolumeClaim> {
        let name = naming::parse_instance_id(id).map_err(|_| Error::NotFound)?;
        let (safe, key) = identity(owner)?;
        let pvc = self.pvc(&naming::pvc_name(name)).await?;
        match pvc {
            Some(pvc) if owns_record(&pvc, owner, &safe, &key) => {
                if pvc.metadata.deletion_timestamp.is_some() {
                    Err(Error::BeingDeleted)
                } else {
                    Ok(pvc)
                }
            }
            _ => Err(Error::NotFound),
        }
    }

    /// The PVC `name`, if it exists.
    pub(super) async fn pvc(&self, name: &str) -> Result<Option<PersistentVolumeClaim>> {
        if let Some(caches) = self.cached() {
            return Ok(caches
                .pvc(name)
                .map(|pvc| PersistentVolumeClaim::clone(&pvc)));
        }
        named(&self.pvcs(), name)
            .await
            .map_err(|e| Error::kube("read the workspace volume", e))
    }

    /// The pod `name`, if it exists.
    pub(super) async fn pod(&self, name: &str) -> Result<Option<Pod>> {
        if let Some(caches) = self.cached() {
            return Ok(caches.pod(name).map(|pod| Pod::clone(&pod)));
        }
        named(&self.pods(), name)
            .await
            .map_err(|e| Error::kube("read the instance's pod", e))
    }

    /// Every live object of instance `id` of the given kinds (`apiVersion/Kind`): from
    /// the caches for kinds they hold and have synced, listed for the others (a kind
    /// found here for the first time is cached from now on).
    pub(super) async fn live_objects(
        &self,
        id: &str,
        kinds: &BTreeSet<String>,
    ) -> Result<Vec<DynamicObject>> {
        let selector = instance_selector(id);
        let mut objects = Vec::new();
        let mut resources = Vec::new();
        for k in kinds {
            let Some((api_version, kind)) = k.rsplit_once('/') else {
                continue;
            };
            // NB: the per-instance access policy earlier versions applied in the gateway's
            // namespace, still in the records of instances provisioned then: the service
            // may no longer read or delete it there (admins remove the old ones once, see
            // docs/admin-guide.md, Upgrading).
            if is_retired_policy(api_version, kind) {
                continue;
            }
            let ar = self.kinds.resolve(&self.client, api_version, kind).await?;
            let full = format!("{}/{}", ar.api_version, ar.kind);
            if let Some(caches) = self.cached_kind(&full) {
                let cached = caches.by_instance(&full, id).map_err(|e| {
                    Error::Instance(format!("read the cached {} objects: {e}", ar.kind))
                })?;
                objects.extend(cached);
                continue;
            }
            if !self.caches.is_cached(&full) {
                self.caches.watch_kind(&ar);
            }
            resources.push(ar);
        }
        if resources.is_empty() {
            return Ok(objects);
        }
        let lists = try_join_all(resources.iter().map(|ar| list_kind(self, ar, &selector))).await?;
        objects.extend(lists.into_iter().flatten());
        Ok(objects)
    }
}

/// The object `name` through `api`, if it exists: read while the caches cannot answer,
/// with a list pinned to the name (which the API server serves as a read of that one
/// key), so that reading needs no more rights than the caches' `list` and `watch`.
pub(super) async fn named<K>(api: &Api<K>, name: &str) -> Result<Option<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let lp = ListParams::default().fields(&format!("metadata.name={name}"));
    let what = format!("read {name}");
    let list = with_retry(&what, || api.list(&lp)).await?;
    Ok(list
        .items
        .into_iter()
        .find(|o| o.meta().name.as_deref() == Some(name)))
}

async fn list_kind(r: &Reconciler, ar: &ApiResource, selector: &str) -> Result<Vec<DynamicObject>> {
    let ns = &r.settings.namespace;
    let api: Api<DynamicObject> = Api::namespaced_with(r.client.clone(), ns, ar);
    let lp = ListParams::default().labels(selector);
    let what = format!("list {}", ar.plural);
    let list = with_retry(&what, || api.list(&lp))
        .await
        .map_err(|e| Error::kube(&what, e))?;
    // NB: list items carry no apiVersion/kind; the plan keys objects by kind.
    Ok(list
        .items
        .into_iter()
        .map(|mut o| {
            o.types = Some(TypeMeta {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
            });
            o
        })
        .collect())
}

/// `apiVersion/Kind` of every object, Istio kinds at the rendered version.
pub fn kinds_of(objects: &[DynamicObject]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| {
            o.types
                .as_ref()
                .map(|t| format!("{}/{}", t.api_version, t.kind))
        })
        .collect()
}

/// Stamps the instance record on the rendered `objects` of the instance with `values`:
/// its kinds record holds every kind it has ever had (`recorded`) and has now.
///
/// NB: render, the dry runs and provisioning all stamp it, so that what `render` prints
/// is what provisioning applies.
pub fn stamp_record(
    objects: Vec<&mut DynamicObject>,
    values: &crate::values::Values,
    recorded: &BTreeSet<String>,
    k: &Kinds,
) {
    // NB: the retired access policy leaves the record with the next stamp.
    let recorded: BTreeSet<String> = recorded
        .iter()
        .filter(|full| {
            full.rsplit_once('/')
                .is_none_or(|(api_version, kind)| !is_retired_policy(api_version, kind))
        })
        .cloned()
        .collect();
    let kinds = record::kinds_json(objects.iter().map(|o| &**o), &recorded, |all| {
        dedupe_versions(all, k)
    });
    record::stamp(objects, values, &kinds);
}

/// Keeps one version per kind (v1 and v1beta1 VirtualServices are one stored object).
pub fn dedupe_versions(kinds: BTreeSet<String>, k: &Kinds) -> BTreeSet<String> {
    let mut by_kind: BTreeMap<String, String> = BTreeMap::new();
    for full in kinds {
        let Some((api_version, kind)) = full.rsplit_once('/') else {
            continue;
        };
        let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        let key = format!("{group}/{kind}");
        let served = match k.known(api_version, kind) {
            Ok(Some(ar)) => format!("{}/{}", ar.api_version, kind),
            _ => full.clone(),
        };
        by_kind.insert(key, served);
    }
    by_kind.into_values().collect()
}
