//! Where reads come from, and reading one's own writes.
//!
//! Reads come from the watch-backed caches once the caches of the kinds read have
//! synced, and from the API server before (kinds the caches do not hold are always
//! listed). After each write the reconciler waits, bounded by [`WRITE_VISIBLE`], until
//! the caches hold what the API server answered (or no longer hold what it deleted), so
//! that a mutation's answer and every later read see the write. A write the caches do
//! not show in time is reported, and reads go to the API server until they show it.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use kube::{ResourceExt, api::DynamicObject};

use super::{
    Reconciler,
    apply::{Deleted, Outcome},
    plan::{Action, Plan},
};
use crate::cache::{CacheError, Caches};

/// How long a write may take to show in the caches before reads bypass them.
pub const WRITE_VISIBLE: Duration = Duration::from_secs(5);
/// How long a lagging write is waited for in the background before reads trust the
/// caches again anyway.
const LAGGING_GIVE_UP: Duration = Duration::from_secs(300);

/// What a write left for the caches to show.
#[derive(Debug, Clone)]
pub(super) enum Written {
    /// The object at this resourceVersion (or later).
    At(String),
    /// No object at all.
    Gone,
    /// The object being deleted, at this resourceVersion (or later), or gone.
    Deleting(String),
}

impl Written {
    /// What a delete answered: the object as it is being deleted (finalizers, grace
    /// period), or nothing when it is already gone.
    pub(super) fn of_delete<K: kube::Resource>(deleted: &Deleted<K>) -> Self {
        match deleted {
            // NB: an object answered without a deletion timestamp went at once (its
            // resourceVersion may be the one the cache holds already).
            Deleted::Accepted(Some(obj)) if obj.meta().deletion_timestamp.is_some() => obj
                .meta()
                .resource_version
                .clone()
                .map_or(Self::Gone, Self::Deleting),
            Deleted::Accepted(_) | Deleted::Absent => Self::Gone,
        }
    }
}

impl Reconciler {
    /// The caches, when reads of records (PVCs) and pods may come from them: both have
    /// synced and no write of ours is outstanding.
    pub(super) fn cached(&self) -> Option<&Caches> {
        let caches = &*self.caches;
        (self.lagging.load(Ordering::Acquire) == 0
            && caches.pvcs().synced()
            && caches.pods().synced())
        .then_some(caches)
    }

    /// The caches, when reads of `kind` (`apiVersion/Kind`) may come from them.
    pub(super) fn cached_kind(&self, kind: &str) -> Option<&Caches> {
        let caches = &*self.caches;
        (self.lagging.load(Ordering::Acquire) == 0 && caches.is_synced(kind)).then_some(caches)
    }

    /// Waits until the caches show the write of `kind` `namespace`/`name`. Kinds not
    /// cached need no wait; a kind whose cache has not synced yet is read from the API
    /// server until its cache shows the write (its listing may predate it).
    pub(super) async fn written(&self, kind: &str, namespace: &str, name: &str, w: Written) {
        if !self.caches.is_cached(kind) {
            return;
        }
        if !self.caches.is_synced(kind) {
            self.lag(kind, namespace, name, w);
            return;
        }
        let shown =
            tokio::time::timeout(WRITE_VISIBLE, show(&self.caches, kind, namespace, name, &w))
                .await;
        match shown {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%kind, %name, %error, "the cache cannot show a write; reading from the API server");
                self.lag(kind, namespace, name, w);
            }
            Err(_) => {
                tracing::warn!(
                    %kind,
                    %name,
                    seconds = WRITE_VISIBLE.as_secs(),
                    "the cache did not show a write in time; reading from the API server until it does"
                );
                self.lag(kind, namespace, name, w);
            }
        }
    }

    /// Waits until the caches show every write of an apply of `plan`.
    pub(super) async fn applied(&self, plan: &Plan, outcome: &Outcome) {
        let default_ns = &self.settings.namespace;
        let applied = outcome.applied.iter().filter_map(|obj| {
            let types = obj.types.as_ref()?;
            let version = obj.resource_version()?;
            let ns = obj.namespace().unwrap_or_else(|| default_ns.clone());
            Some((
                format!("{}/{}", types.api_version, types.kind),
                ns,
                obj.name_any(),
                Written::At(version),
            ))
        });
        let pruned = plan
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Prune) && outcome.deleted.contains(&s.object))
            .map(|s| {
                let ns = if s.namespace.is_empty() {
                    default_ns.clone()
                } else {
                    s.namespace.clone()
                };
                (
                    format!("{}/{}", s.api_version, s.kind),
                    ns,
                    s.name.clone(),
                    Written::Gone,
                )
            });
        let writes: Vec<_> = applied.chain(pruned).collect();
        futures::future::join_all(
            writes
                .into_iter()
                .map(|(kind, ns, name, w)| async move { self.written(&kind, &ns, &name, w).await }),
        )
        .await;
    }

    /// Reads bypass the caches until they show the write, or [`LAGGING_GIVE_UP`] passes.
    fn lag(&self, kind: &str, namespace: &str, name: &str, w: Written) {
        self.lagging.fetch_add(1, Ordering::AcqRel);
        let (caches, lagging) = (Arc::clone(&self.caches), Arc::clone(&self.lagging));
        let (kind, namespace, name) = (kind.to_owned(), namespace.to_owned(), name.to_owned());
        tokio::spawn(async move {
            let shown =
                tokio::time::timeout(LAGGING_GIVE_UP, show(&caches, &kind, &namespace, &name, &w))
                    .await;
            if !matches!(shown, Ok(Ok(()))) {
                tracing::warn!(%kind, %name, "the cache never showed a write; reading from it again");
            }
            lagging.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn show(
    caches: &Caches,
    kind: &str,
    namespace: &str,
    name: &str,
    w: &Written,
) -> Result<(), CacheError> {
    match w {
        Written::At(version) => caches.wait_for(kind, namespace, name, version).await,
        Written::Gone => caches.wait_gone(kind, namespace, name).await,
        Written::Deleting(version) => {
            let at = std::pin::pin!(caches.wait_for(kind, namespace, name, version));
            let gone = std::pin::pin!(caches.wait_gone(kind, namespace, name));
            futures::future::select(at, gone).await.factor_first().0
        }
    }
}

/// A cached object of `DynamicObject` form as the typed `K`.
pub(super) fn typed<K: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Option<K> {
    serde_json::to_value(obj)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}
