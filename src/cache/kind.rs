//! The cache of one kind: a reflector's store, fed by a watcher with the default backoff,
//! and the [`Index`] kept from the same events.

use std::{
    fmt::Debug,
    hash::Hash,
    sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard},
};

use futures::StreamExt;
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{ObjectRef, Store, store::Writer},
        watcher::{self, Event},
    },
};
use prometheus::IntGaugeVec;
use serde::de::DeserializeOwned;
use tokio::{sync::watch, task::AbortHandle};

use super::{
    CacheError,
    index::{Index, ObjKey},
    key::trim,
};

/// The cache of one kind in one namespace. Its watch task stops when it is dropped.
pub struct KindCache<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    kind: String,
    namespace: String,
    dyntype: K::DynamicType,
    store: Store<K>,
    index: Arc<RwLock<Index>>,
    changed: watch::Receiver<u64>,
    synced: watch::Receiver<bool>,
    gauge: Gauge,
    task: AbortHandle,
}

/// Where a cache reports how many objects it holds: its label in
/// `codeserver_cache_objects{kind}`, once the gauges are given to the caches (they may be
/// given after the watches started, without restarting them).
#[derive(Clone)]
pub struct Gauge {
    gauges: Arc<OnceLock<IntGaugeVec>>,
    label: String,
}

impl Gauge {
    /// The gauge labelled `label` of whatever `gauges` will hold.
    pub fn new(gauges: Arc<OnceLock<IntGaugeVec>>, label: String) -> Self {
        Self { gauges, label }
    }

    /// Sets the gauge to `count`, when the gauges are known.
    fn set(&self, count: usize) {
        if let Some(gauges) = self.gauges.get() {
            gauges
                .with_label_values(&[self.label.as_str()])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}

impl<K> Drop for KindCache<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> KindCache<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync + Debug,
{
    /// Starts watching `api` (one namespace) for objects matching `selector`, storing
    /// them trimmed after `prepare` has seen them. `kind` (`apiVersion/Kind`) names the
    /// cache in errors and logs; `gauge` follows the number of objects held.
    pub fn spawn(
        api: Api<K>,
        kind: &str,
        namespace: &str,
        dyntype: K::DynamicType,
        selector: &str,
        prepare: impl FnMut(&mut K) + Send + 'static,
        gauge: Gauge,
    ) -> Self {
        let writer = Writer::new(dyntype.clone());
        let store = writer.as_reader();
        let index = Arc::new(RwLock::new(Index::default()));
        let (changed_tx, changed) = watch::channel(0u64);
        let (synced_tx, synced) = watch::channel(false);
        let mut prepare = prepare;
        let events = watcher::watcher(api, watcher::Config::default().labels(selector))
            .default_backoff()
            .modify(move |obj: &mut K| {
                trim(obj.meta_mut());
                prepare(obj);
            })
            .reflect(writer);
        let task = tokio::spawn(follow(
            events,
            Follow {
                kind: kind.to_owned(),
                store: store.clone(),
                index: index.clone(),
                changed: changed_tx,
                synced: synced_tx,
                gauge: gauge.clone(),
            },
        ))
        .abort_handle();
        Self {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            dyntype,
            store,
            index,
            changed,
            synced,
            gauge,
            task,
        }
    }
}

impl<K> KindCache<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    /// Sets this cache's gauge to the number of objects it holds now.
    pub fn report(&self) {
        self.gauge.set(self.store.len());
    }

    /// `apiVersion/Kind` of the cached objects.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The namespace watched.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// True once the first listing is complete.
    pub fn synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Resolves once the first listing is complete.
    pub async fn wait_synced(&self) -> Result<(), CacheError> {
        let mut synced = self.synced.clone();
        synced
            .wait_for(|s| *s)
            .await
            .map(|_| ())
            .map_err(|_| CacheError::Stopped(self.kind.clone()))
    }

    /// The object `name`, if held.
    pub fn get(&self, name: &str) -> Option<Arc<K>> {
        self.store.get(&self.object_ref(&self.namespace, name))
    }

    /// Objects labelled with instance id `id` (`app.kubernetes.io/instance`).
    pub fn by_instance(&self, id: &str) -> Vec<Arc<K>> {
        let keys: Vec<ObjKey> = self.index().of_instance(id).cloned().collect();
        self.resolve(keys)
    }

    /// Objects labelled with owner key `owner` (`devplatform.io/owner`).
    pub fn by_owner(&self, owner: &str) -> Vec<Arc<K>> {
        let keys: Vec<ObjKey> = self.index().of_owner(owner).cloned().collect();
        self.resolve(keys)
    }

    /// Every instance id an object of this kind is labelled with.
    pub fn instance_ids(&self) -> Vec<String> {
        self.index().instance_ids().cloned().collect()
    }

    /// Every object held.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    /// True when no object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when the cache holds `namespace`/`name` at resourceVersion `version` or
    /// a later one (see `Caches::wait_for`).
    pub async fn wait_for(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> Result<(), CacheError> {
        let key = (namespace.to_owned(), name.to_owned());
        self.wait_until(|index| index.reached(&key, version)).await
    }

    /// Resolves when the cache no longer holds `namespace`/`name`.
    pub async fn wait_gone(&self, namespace: &str, name: &str) -> Result<(), CacheError> {
        let key = (namespace.to_owned(), name.to_owned());
        self.wait_until(|index| !index.contains(&key)).await
    }

    /// Resolves with the object `name` (or its absence) once `done` holds for it, looked
    /// at now and after every event. It does not time out: wrap it in
    /// `tokio::time::timeout`.
    pub async fn wait_object(
        &self,
        name: &str,
        done: impl Fn(Option<&K>) -> bool,
    ) -> Result<Option<Arc<K>>, CacheError> {
        let mut changed = self.changed.clone();
        loop {
            changed.borrow_and_update();
            let obj = self.get(name);
            if done(obj.as_deref()) {
                return Ok(obj);
            }
            changed
                .changed()
                .await
                .map_err(|_| CacheError::Stopped(self.kind.clone()))?;
        }
    }

    async fn wait_until(&self, done: impl Fn(&Index) -> bool) -> Result<(), CacheError> {
        let mut changed = self.changed.clone();
        loop {
            // NB: mark the current generation seen before looking, so that an event
            // applied between the look and the wait still wakes us.
            changed.borrow_and_update();
            if done(&self.index()) {
                return Ok(());
            }
            changed
                .changed()
                .await
                .map_err(|_| CacheError::Stopped(self.kind.clone()))?;
        }
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        // NB: the index is rebuilt whole or changed in one step; a panic elsewhere
        // cannot leave it half written.
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn object_ref(&self, namespace: &str, name: &str) -> ObjectRef<K> {
        ObjectRef::new_with(name, self.dyntype.clone()).within(namespace)
    }

    fn resolve(&self, keys: Vec<ObjKey>) -> Vec<Arc<K>> {
        keys.iter()
            .filter_map(|(ns, name)| self.store.get(&self.object_ref(ns, name)))
            .collect()
    }
}

/// What the watch task updates besides the store.
struct Follow<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    kind: String,
    store: Store<K>,
    index: Arc<RwLock<Index>>,
    changed: watch::Sender<u64>,
    synced: watch::Sender<bool>,
    gauge: Gauge,
}

/// Applies every event the reflector has stored to the index, then wakes the waiters.
async fn follow<K, S>(events: S, f: Follow<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                f.index
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .apply_event(&event);
                if matches!(event, Event::InitDone) {
                    f.synced.send_replace(true);
                    tracing::debug!(kind = %f.kind, objects = f.store.len(), "cache synced");
                }
                f.gauge.set(f.store.len());
                f.changed.send_modify(|generation| *generation += 1);
            }
            // NB: the watcher re-lists and re-watches by itself, with the default
            // backoff; an error here is only reported.
            Err(error) => {
                tracing::warn!(kind = %f.kind, %error, "watch failed; retrying with backoff");
            }
        }
    }
}
