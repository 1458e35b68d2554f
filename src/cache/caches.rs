//! Every managed kind's cache, and the lookups the reconciler reads instead of listing.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, OnceLock, PoisonError, RwLock},
};

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject},
};
use prometheus::IntGaugeVec;

use super::{
    CacheError, Facts, KindCache, KindKey, PodFacts, RecordFacts,
    kind::{Gauge, Listings},
};
use crate::{naming, reconcile::kinds::Kinds, values::InstanceSettings};

/// The kinds cached from the start (`apiVersion`, `Kind`): every kind the built-in
/// templates render and the credentials Secret. PVCs and pods are cached typed; the others
/// as `DynamicObject`s. The VirtualService is cached at the version the cluster serves,
/// when it serves one; kinds an admin adds (a ConfigMap is here already; a
/// ServiceAccount, Role, ...) are cached from their first use with
/// [`Caches::watch_kind`].
pub const CACHED_KINDS: &[(&str, &str)] = &[
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("batch/v1", "Job"),
    ("networking.istio.io/v1", "VirtualService"),
];

/// The watch-backed caches of everything this service manages (objects labelled
/// `app.kubernetes.io/managed-by=codeserver-service`), in the instances namespace and,
/// the instances namespace. Dropping it stops every watch.
pub struct Caches {
    client: Client,
    selector: String,
    namespace: String,
    gauges: Arc<OnceLock<IntGaugeVec>>,
    listings: Listings,
    pvcs: KindCache<PersistentVolumeClaim>,
    pods: KindCache<Pod>,
    dynamic: RwLock<BTreeMap<KindKey, Arc<KindCache<DynamicObject>>>>,
}

/// The cache a kind is held in.
enum Held {
    Pvcs,
    Pods,
    Dynamic(Arc<KindCache<DynamicObject>>),
}

impl Caches {
    /// Starts a watch for every kind of [`CACHED_KINDS`] that `kinds` knows (the
    /// VirtualService only when the cluster serves it), counting objects per kind in
    /// `gauges` (`codeserver_cache_objects{kind}`). Must run inside a tokio runtime.
    pub fn start(
        client: Client,
        settings: &InstanceSettings,
        kinds: &Kinds,
        gauges: Option<IntGaugeVec>,
    ) -> Self {
        let selector = managed_selector();
        let namespace = settings.namespace.clone();
        let gauges = Arc::new(gauges.map(OnceLock::from).unwrap_or_default());
        let gauge = |kind: &KindKey| Gauge::new(gauges.clone(), kind.to_string());
        let types = |kind: &str| ("v1".to_owned(), kind.to_owned());
        let listings = Listings::default();
        let pvcs = KindCache::spawn(
            Api::namespaced(client.clone(), &namespace),
            types("PersistentVolumeClaim"),
            &namespace,
            &selector,
            gauge(&KindKey::of("v1", "PersistentVolumeClaim")),
            &listings,
        );
        let pods = KindCache::spawn(
            Api::namespaced(client.clone(), &namespace),
            types("Pod"),
            &namespace,
            &selector,
            gauge(&KindKey::of("v1", "Pod")),
            &listings,
        );
        let caches = Self {
            client,
            selector,
            namespace,
            gauges,
            listings,
            pvcs,
            pods,
            dynamic: RwLock::new(BTreeMap::new()),
        };
        for (api_version, kind) in &CACHED_KINDS[2..] {
            match kinds.known(api_version, kind) {
                Ok(Some(ar)) => caches.watch_kind(&ar),
                Ok(None) => {}
                Err(error) => tracing::info!(%kind, %error, "kind not cached"),
            }
        }
        caches
    }

    /// Starts caching objects of `ar` unless its kind is cached already, at any version.
    /// Call it for a kind the cluster serves (one `Kinds::resolve` found): until its first
    /// listing succeeds, [`Caches::synced`] is false.
    pub fn watch_kind(&self, ar: &ApiResource) {
        let key = KindKey::of(&ar.api_version, &ar.kind);
        if self.held_key(&key).is_some() {
            return;
        }
        let namespace = &self.namespace;
        // NB: listed items carry no apiVersion/kind; the cache writes them in, since the
        // plan keys objects by kind.
        let cache = KindCache::spawn(
            Api::namespaced_with(self.client.clone(), namespace, ar),
            (ar.api_version.clone(), ar.kind.clone()),
            namespace,
            &self.selector,
            Gauge::new(self.gauges.clone(), key.to_string()),
            &self.listings,
        );
        self.dynamic
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| Arc::new(cache));
    }

    /// Reports the number of objects per kind in `gauges` from now on
    /// (`codeserver_cache_objects{kind}`), without restarting any watch. Gauges given
    /// already (at start or before) stay; these are then ignored.
    pub fn report_to(&self, gauges: IntGaugeVec) {
        let _already_given = self.gauges.set(gauges);
        self.pvcs.report();
        self.pods.report();
        for cache in self.dynamics() {
            cache.report();
        }
    }

    /// True when every cache has completed its first listing.
    pub fn synced(&self) -> bool {
        self.pvcs.synced() && self.pods.synced() && self.dynamics().iter().all(|c| c.synced())
    }

    /// Resolves when every cache has completed its first listing.
    pub async fn wait_synced(&self) -> Result<(), CacheError> {
        self.pvcs.wait_synced().await?;
        self.pods.wait_synced().await?;
        let dynamics = self.dynamics();
        try_join_all(dynamics.iter().map(|c| c.wait_synced())).await?;
        Ok(())
    }

    /// True when objects of `kind` (`apiVersion/Kind`, any version) are cached and their
    /// cache has completed its first listing: what it answers is then complete.
    pub fn is_synced(&self, kind: &str) -> bool {
        match self.held(kind) {
            Ok(Held::Pvcs) => self.pvcs.synced(),
            Ok(Held::Pods) => self.pods.synced(),
            Ok(Held::Dynamic(cache)) => cache.synced(),
            Err(_) => false,
        }
    }

    /// True when objects of `kind` (`apiVersion/Kind`, any version) are cached.
    pub fn is_cached(&self, kind: &str) -> bool {
        KindKey::parse(kind).is_some_and(|key| self.held_key(&key).is_some())
    }

    /// The PVC cache (instance records), in the instances namespace.
    pub fn pvcs(&self) -> &KindCache<PersistentVolumeClaim> {
        &self.pvcs
    }

    /// The pod cache, in the instances namespace.
    pub fn pods(&self) -> &KindCache<Pod> {
        &self.pods
    }

    /// The PVC `name` (`workspace-<safe-name>`), if it exists.
    pub fn pvc(&self, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.pvcs.get(name)
    }

    /// The pod `name`, if it exists.
    pub fn pod(&self, name: &str) -> Option<Arc<Pod>> {
        self.pods.get(name)
    }

    /// The record (PVC) of instance `id`, if there is one.
    pub fn record(&self, id: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.pvcs.by_instance(id).into_iter().next()
    }

    /// The owner's records (PVCs labelled with `owner_key`), oldest first.
    pub fn records_of_owner(&self, owner_key: &str) -> Vec<Arc<PersistentVolumeClaim>> {
        let mut records = self.pvcs.by_owner(owner_key);
        records.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, &a.metadata.name)
                .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
        });
        records
    }

    /// The ids of the owner's instances, oldest first.
    pub fn instances_of_owner(&self, owner_key: &str) -> Vec<String> {
        self.records_of_owner(owner_key)
            .iter()
            .filter_map(|pvc| pvc.labels().get(naming::LABEL_INSTANCE).cloned())
            .collect()
    }

    /// The records of the user with safe name `safe`, found by the facts kept of every
    /// record (only those are parsed).
    pub fn records_of_user(&self, safe: &str) -> Vec<Arc<PersistentVolumeClaim>> {
        let ids: Vec<String> = self
            .pvcs
            .facts_view()
            .iter()
            .filter_map(|(_, facts)| match facts {
                Facts::Record(r) if r.safe_name.as_deref() == Some(safe) => {
                    r.instance.as_deref().map(str::to_owned)
                }
                _ => None,
            })
            .collect();
        ids.iter().filter_map(|id| self.record(id)).collect()
    }

    /// Every instance record (PVC).
    pub fn records(&self) -> Vec<Arc<PersistentVolumeClaim>> {
        self.pvcs.all()
    }

    /// The id of every instance that has a record, sorted.
    pub fn instance_ids(&self) -> BTreeSet<String> {
        self.pvcs.instance_ids().into_iter().collect()
    }

    /// Calls `each` with the facts of every instance record (PVC) and of its
    /// code-server pod, if it has one, without parsing any object.
    pub fn each_record(&self, mut each: impl FnMut(&RecordFacts, Option<&PodFacts>)) {
        let pods = self.pods.facts_view();
        for (_, facts) in self.pvcs.facts_view().iter() {
            let Facts::Record(record) = facts else {
                continue;
            };
            let pod = record
                .instance
                .as_deref()
                .and_then(|id| pods.get(id))
                .and_then(|facts| match facts {
                    Facts::Pod(pod) if pod.code_server => Some(pod),
                    _ => None,
                });
            each(record, pod);
        }
    }

    /// How many code-server pods exist that are not being deleted, other than `except`,
    /// counted under one read of the pod cache.
    pub fn running_code_servers(&self, except: &str) -> usize {
        self.pods
            .facts_view()
            .iter()
            .filter(|(name, facts)| {
                *name != except && matches!(facts, Facts::Pod(p) if p.code_server && !p.deleting)
            })
            .count()
    }

    /// The pods of instance `id` (its code-server pod and, while one runs, its sync
    /// Job's pod).
    pub fn pods_of_instance(&self, id: &str) -> Vec<Arc<Pod>> {
        self.pods.by_instance(id)
    }

    /// The objects of `kind` (`apiVersion/Kind`) labelled with instance `id`, as
    /// `DynamicObject`s with their `apiVersion`/`kind` set, as listing them would give.
    pub fn by_instance(&self, kind: &str, id: &str) -> Result<Vec<DynamicObject>, CacheError> {
        let objects = match self.held(kind)? {
            Held::Pvcs => self.pvcs.by_instance_as(id),
            Held::Pods => self.pods.by_instance_as(id),
            Held::Dynamic(cache) => cache.by_instance(id),
        };
        Ok(objects.into_iter().map(unshared).collect())
    }

    /// The object of `kind` (`apiVersion/Kind`) named `name` in the namespace its cache
    /// watches, as a `DynamicObject` with its `apiVersion`/`kind` set.
    pub fn get(&self, kind: &str, name: &str) -> Result<Option<DynamicObject>, CacheError> {
        let object = match self.held(kind)? {
            Held::Pvcs => self.pvcs.get_as(name),
            Held::Pods => self.pods.get_as(name),
            Held::Dynamic(cache) => cache.get(name),
        };
        Ok(object.map(unshared))
    }

    /// Every live object of instance `id` of the given `kinds` (`apiVersion/Kind`): what
    /// the reconciler's `live_objects` lists, from the caches. Fails on the first kind
    /// that has no cache.
    pub fn objects_of_instance(
        &self,
        id: &str,
        kinds: &BTreeSet<String>,
    ) -> Result<Vec<DynamicObject>, CacheError> {
        let mut objects = Vec::new();
        for kind in kinds {
            objects.extend(self.by_instance(kind, id)?);
        }
        Ok(objects)
    }

    /// Resolves when the cache of `kind` holds `namespace`/`name` at resourceVersion
    /// `version` or later: an event for the object at exactly `version` has been
    /// applied, or (resourceVersions being numbers, as etcd's are) one at a version not
    /// below it. Call it with the resourceVersion an apply answered, to read one's own
    /// write. It does not time out: wrap it in `tokio::time::timeout`.
    pub async fn wait_for(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> Result<(), CacheError> {
        match self.held(kind)? {
            Held::Pvcs => self.pvcs.wait_for(namespace, name, version).await,
            Held::Pods => self.pods.wait_for(namespace, name, version).await,
            Held::Dynamic(cache) => cache.wait_for(namespace, name, version).await,
        }
    }

    /// Resolves with the object `name` of `kind` (a kind held as `DynamicObject`s, not
    /// PVCs or pods: see [`KindCache::wait_object`] for those) once `done` holds for it,
    /// looked at now and after every event of its cache. It does not time out: wrap it
    /// in `tokio::time::timeout`.
    pub async fn wait_object(
        &self,
        kind: &str,
        name: &str,
        done: impl Fn(Option<&DynamicObject>) -> bool,
    ) -> Result<Option<DynamicObject>, CacheError> {
        match self.held(kind)? {
            Held::Dynamic(cache) => Ok(cache.wait_object(name, done).await?.map(unshared)),
            Held::Pvcs | Held::Pods => Err(CacheError::NotCached(format!("{kind} (typed)"))),
        }
    }

    /// Resolves when the cache of `kind` no longer holds `namespace`/`name` (after a
    /// delete). It does not time out: wrap it in `tokio::time::timeout`.
    pub async fn wait_gone(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), CacheError> {
        match self.held(kind)? {
            Held::Pvcs => self.pvcs.wait_gone(namespace, name).await,
            Held::Pods => self.pods.wait_gone(namespace, name).await,
            Held::Dynamic(cache) => cache.wait_gone(namespace, name).await,
        }
    }

    /// Objects held per cached kind (`apiVersion/Kind`).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::from([
            (self.pvcs.kind().to_owned(), self.pvcs.len()),
            (self.pods.kind().to_owned(), self.pods.len()),
        ]);
        for cache in self.dynamics() {
            counts.insert(cache.kind().to_owned(), cache.len());
        }
        counts
    }

    fn held(&self, kind: &str) -> Result<Held, CacheError> {
        KindKey::parse(kind)
            .and_then(|key| self.held_key(&key))
            .ok_or_else(|| CacheError::NotCached(kind.to_owned()))
    }

    fn held_key(&self, key: &KindKey) -> Option<Held> {
        if *key == KindKey::of("v1", "PersistentVolumeClaim") {
            return Some(Held::Pvcs);
        }
        if *key == KindKey::of("v1", "Pod") {
            return Some(Held::Pods);
        }
        self.dynamic
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .map(Held::Dynamic)
    }

    fn dynamics(&self) -> Vec<Arc<KindCache<DynamicObject>>> {
        self.dynamic
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// The selector of everything this service manages (the reconciler's
/// `managed_selector`).
pub fn managed_selector() -> String {
    format!("{}={}", naming::LABEL_MANAGED_BY, naming::MANAGED_BY_VALUE)
}

/// A parsed object, owned (the cache parsed it for this read alone).
fn unshared(obj: Arc<DynamicObject>) -> DynamicObject {
    Arc::try_unwrap(obj).unwrap_or_else(|shared| DynamicObject::clone(&shared))
}
