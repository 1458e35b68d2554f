//! The cache of one kind: a `kube::runtime` watcher with the default backoff, and an
//! [`Index`] of the objects as kept ([`Stored`]) applied from its events, with waiters
//! woken after every event.

use std::{
    marker::PhantomData,
    sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard},
};

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    runtime::{
        WatchStreamExt,
        watcher::{self, Event},
    },
};
use prometheus::IntGaugeVec;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    task::AbortHandle,
};

use super::{
    CacheError,
    index::{Change, Index, Seen},
    stored::{Facts, Keep, Stored},
};
use crate::naming;

/// A read of one cache's facts (see [`KindCache::facts_view`]).
pub struct FactsView<'a>(RwLockReadGuard<'a, Index>);

impl FactsView<'_> {
    /// The facts kept of object `name`, if held.
    pub fn get(&self, name: &str) -> Option<&Facts> {
        self.0.get(name).map(|s| &s.facts)
    }

    /// Every object's name and facts.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Facts)> {
        self.0.named().map(|(name, s)| (name, &s.facts))
    }
}

/// Objects asked for per page of a listing.
const LIST_PAGE: u32 = 250;

/// First listings of different kinds that run at once.
const FIRST_LISTINGS: usize = 1;

/// Turns for first listings, shared by the caches of one service: each kind's first
/// listing waits for one of [`FIRST_LISTINGS`] turns and gives it back when it completes
/// or fails (the watcher then retries without one).
///
/// NB: a page of a listing is held parsed, whole, until its objects are kept (a page of
/// pods is about 14 MB parsed); with every kind listing at once, nine such pages could be
/// held at the same moment. Taking turns bounds that to one; with 10,000 instances the
/// caches still sync in about 4 s on two cores, as parsing is what the listings wait on.
#[derive(Clone)]
pub struct Listings(Arc<Semaphore>);

impl Default for Listings {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(FIRST_LISTINGS)))
    }
}

impl Listings {
    /// A turn, once one is free.
    async fn turn(&self) -> Option<OwnedSemaphorePermit> {
        // NB: the semaphore is never closed; were it, the listing would go on unbounded.
        self.0.clone().acquire_owned().await.ok()
    }
}

/// The cache of one kind in one namespace, read as `K`. Its watch task stops when it is
/// dropped.
pub struct KindCache<K> {
    kind: String,
    namespace: String,
    index: Arc<RwLock<Index>>,
    changed: watch::Receiver<u64>,
    synced: watch::Receiver<bool>,
    gauge: Gauge,
    task: AbortHandle,
    read_as: PhantomData<fn() -> K>,
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

impl<K> Drop for KindCache<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K: Keep> KindCache<K>
where
    K::DynamicType: Clone + Send + Sync,
{
    /// Starts watching `api` (one namespace) for objects matching `selector`, keeping
    /// them with `types` (`apiVersion`, `kind`) as a listing would give them, its first
    /// listing in turn with the others of `listings`. `apiVersion/Kind` names the cache in
    /// errors and logs; `gauge` follows the number of objects held.
    pub fn spawn(
        api: Api<K>,
        types: (String, String),
        namespace: &str,
        selector: &str,
        gauge: Gauge,
        listings: &Listings,
    ) -> Self {
        let kind = format!("{}/{}", types.0, types.1);
        let index = Arc::new(RwLock::new(Index::default()));
        let (changed_tx, changed) = watch::channel(0u64);
        let (synced_tx, synced) = watch::channel(false);
        // NB: small pages bound what a listing holds at once: each page is parsed whole
        // before its objects are kept.
        let config = watcher::Config::default()
            .labels(selector)
            .page_size(LIST_PAGE);
        let events = watcher::watcher(api, config).default_backoff();
        let task = tokio::spawn(follow(
            events,
            Follow {
                kind: kind.clone(),
                // NB: a Secret is never the sample others are compressed against: its
                // data would outlive it in memory.
                sample: (types.1 == "Secret").then(|| Arc::from([].as_slice())),
                types,
                index: index.clone(),
                changed: changed_tx,
                synced: synced_tx,
                gauge: gauge.clone(),
                listings: listings.clone(),
            },
        ))
        .abort_handle();
        Self {
            kind,
            namespace: namespace.to_owned(),
            index,
            changed,
            synced,
            gauge,
            task,
            read_as: PhantomData,
        }
    }
}

impl<K> KindCache<K> {
    /// Sets this cache's gauge to the number of objects it holds now.
    pub fn report(&self) {
        self.gauge.set(self.len());
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

    /// Every instance id an object of this kind is labelled with.
    pub fn instance_ids(&self) -> Vec<String> {
        self.index().instance_ids().map(str::to_owned).collect()
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    /// True when no object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The facts of every object held, under one read of the cache (which does not
    /// change while the view is held: keep it briefly).
    pub fn facts_view(&self) -> FactsView<'_> {
        FactsView(self.index())
    }

    /// Resolves when the cache holds `namespace`/`name` at resourceVersion `version` or
    /// a later one (see `Caches::wait_for`).
    pub async fn wait_for(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> Result<(), CacheError> {
        let here = namespace == self.namespace;
        self.wait_until(|index| here && index.reached(name, version))
            .await
    }

    /// Resolves when the cache no longer holds `namespace`/`name`.
    pub async fn wait_gone(&self, namespace: &str, name: &str) -> Result<(), CacheError> {
        let here = namespace == self.namespace;
        self.wait_until(|index| !here || !index.contains(name))
            .await
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
}

impl<K: serde::de::DeserializeOwned> KindCache<K> {
    /// The object `name`, if held.
    pub fn get(&self, name: &str) -> Option<Arc<K>> {
        self.get_as(name)
    }

    /// The object `name` parsed as `T` (the kind itself, or a `DynamicObject`).
    pub fn get_as<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<Arc<T>> {
        self.index().get(name).and_then(parsed)
    }

    /// Objects labelled with instance `id`.
    pub fn by_instance(&self, id: &str) -> Vec<Arc<K>> {
        self.by_instance_as(id)
    }

    /// Objects labelled with instance `id`, parsed as `T`.
    pub fn by_instance_as<T: serde::de::DeserializeOwned>(&self, id: &str) -> Vec<Arc<T>> {
        self.index().of_instance(id).filter_map(parsed).collect()
    }

    /// Objects labelled with owner key `owner` (`devplatform.io/owner`), of a kind
    /// indexed by owner ([`Keep::BY_OWNER`]; none otherwise).
    pub fn by_owner(&self, owner: &str) -> Vec<Arc<K>> {
        self.index().of_owner(owner).filter_map(parsed).collect()
    }

    /// Every object held.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.index().all().filter_map(parsed).collect()
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
}

/// A kept object parsed as `T`; one that does not parse (never the case for what the
/// cache serialized itself) is left out.
fn parsed<T: serde::de::DeserializeOwned>(stored: &Stored) -> Option<Arc<T>> {
    stored.parse().map(Arc::new)
}

/// What the watch task updates.
struct Follow {
    kind: String,
    types: (String, String),
    /// The JSON of the first object kept, which later ones are compressed against (none,
    /// empty, for Secrets).
    sample: Option<Arc<[u8]>>,
    index: Arc<RwLock<Index>>,
    changed: watch::Sender<u64>,
    synced: watch::Sender<bool>,
    gauge: Gauge,
    listings: Listings,
}

impl Follow {
    /// What the index keeps of `obj`; `None` (logged) when it cannot be kept.
    fn seen<K: Keep>(&mut self, obj: K) -> Option<Seen> {
        let labels = obj.labels();
        let instance = labels.get(naming::LABEL_INSTANCE).cloned();
        let owner = K::BY_OWNER
            .then(|| labels.get(naming::LABEL_OWNER).cloned())
            .flatten();
        let name = obj.name_any();
        let version = obj.resource_version();
        match Stored::keep(obj, &self.types, &mut self.sample) {
            Some(stored) => Some(Seen {
                name,
                instance,
                owner,
                version,
                stored,
            }),
            None => {
                tracing::warn!(kind = %self.kind, %name, "an object could not be cached");
                None
            }
        }
    }

    fn change<K: Keep>(&mut self, event: Event<K>) -> Option<Change> {
        Some(match event {
            Event::Apply(obj) => Change::Apply(self.seen(obj)?),
            Event::Delete(obj) => Change::Delete(obj.name_any()),
            Event::Init => Change::Init,
            Event::InitApply(obj) => Change::InitApply(self.seen(obj)?),
            Event::InitDone => Change::InitDone,
        })
    }
}

/// Applies every watch event to the index, then wakes the waiters. The first listing
/// starts on a turn of `f.listings` (the watcher lists when first polled).
async fn follow<K, S>(events: S, mut f: Follow)
where
    K: Keep,
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut turn = f.listings.turn().await;
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let done = matches!(event, Event::InitDone);
                if done {
                    drop(turn.take());
                }
                let Some(change) = f.change(event) else {
                    continue;
                };
                let len = {
                    let mut index = f.index.write().unwrap_or_else(PoisonError::into_inner);
                    index.apply_change(change);
                    index.len()
                };
                if done {
                    f.synced.send_replace(true);
                    tracing::debug!(kind = %f.kind, objects = len, "cache synced");
                }
                f.gauge.set(len);
                f.changed.send_modify(|generation| *generation += 1);
            }
            // NB: the watcher re-lists and re-watches by itself, with the default
            // backoff; an error here is only reported.
            Err(error) => {
                drop(turn.take());
                tracing::warn!(kind = %f.kind, %error, "watch failed; retrying with backoff");
            }
        }
    }
}
