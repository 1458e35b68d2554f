//! The object store: serialized objects keyed by resource, namespace and name, a global
//! resourceVersion counter, and the event history that watches replay from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use super::resources::ResId;

/// Labels as stored next to an object, for selector matching without parsing it.
pub type Labels = Arc<[(Box<str>, Box<str>)]>;

/// One stored object.
#[derive(Debug, Clone)]
pub struct Stored {
    /// metadata.labels.
    pub labels: Labels,
    /// uids in metadata.ownerReferences (for garbage collection without parsing).
    pub owners: Box<[Box<str>]>,
    /// The object as JSON.
    pub bytes: Bytes,
}

impl Stored {
    /// Parse the object.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// Look a label up.
    pub fn label(&self, key: &str) -> Option<&str> {
        label_of(&self.labels, key)
    }
}

/// Look a label up in a stored label list.
pub fn label_of<'a>(labels: &'a Labels, key: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// A change, as watches see it.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Resource.
    pub res: ResId,
    /// Namespace ("" for cluster-scoped).
    pub ns: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// Type.
    pub kind: EventKind,
    /// Labels after the change.
    pub labels: Labels,
    /// Labels before the change (for MODIFIED), so selector watches can turn a change that
    /// leaves the selection into DELETED, as the real watch cache does.
    pub prev_labels: Option<Labels>,
    /// The object after the change (for DELETED: the last state).
    pub bytes: Bytes,
}

/// Key of an object.
pub type Key = (ResId, String, String);

/// How many past events a watch can start from.
// NB: old versions stay alive while an event holds them: keep the window modest (a watch
// from an older resourceVersion gets 410 Expired and the client re-lists, as with etcd
// compaction).
const HISTORY: usize = 2048;

/// The store.
#[derive(Debug)]
pub struct Store {
    objects: BTreeMap<Key, Stored>,
    rv: u64,
    history: VecDeque<Event>,
    tx: broadcast::Sender<Event>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

fn labels_from(v: &Value) -> Labels {
    let mut out: Vec<(Box<str>, Box<str>)> = Vec::new();
    if let Some(m) = v.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, val) in m {
            if let Some(s) = val.as_str() {
                out.push((k.as_str().into(), s.into()));
            }
        }
    }
    out.into()
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(2048);
        Store {
            objects: BTreeMap::new(),
            rv: 1000,
            history: VecDeque::new(),
            tx,
        }
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// One object.
    pub fn get(&self, res: ResId, ns: &str, name: &str) -> Option<&Stored> {
        self.objects.get(&(res, ns.to_string(), name.to_string()))
    }

    /// The objects of a resource, in one namespace or all.
    pub fn iter<'a>(
        &'a self,
        res: ResId,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        let start = (res, ns.unwrap_or("").to_string(), String::new());
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.0 == res && ns.is_none_or(|n| k.1 == n))
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Store an object (created or modified), stamping a new resourceVersion; returns it.
    pub fn put(&mut self, res: ResId, ns: &str, name: &str, mut obj: Value) -> Value {
        self.rv += 1;
        let rv = self.rv;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let bytes = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
        let labels = labels_from(&obj);
        let owners: Box<[Box<str>]> = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str))
                    .map(Box::from)
                    .collect()
            })
            .unwrap_or_default();
        let key = (res, ns.to_string(), name.to_string());
        let prev = self.objects.insert(
            key,
            Stored {
                labels: labels.clone(),
                owners,
                bytes: bytes.clone(),
            },
        );
        let (kind, prev_labels) = match prev {
            Some(p) => (EventKind::Modified, Some(p.labels)),
            None => (EventKind::Added, None),
        };
        self.publish(Event {
            rv,
            res,
            ns: ns.into(),
            name: name.into(),
            kind,
            labels,
            prev_labels,
            bytes,
        });
        obj
    }

    /// Remove an object; the DELETED event carries its last state with a new resourceVersion.
    pub fn remove(&mut self, res: ResId, ns: &str, name: &str) -> Option<Value> {
        let stored = self
            .objects
            .remove(&(res, ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let rv = self.rv;
        let mut obj = stored.value();
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let bytes = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
        self.publish(Event {
            rv,
            res,
            ns: ns.into(),
            name: name.into(),
            kind: EventKind::Deleted,
            labels: stored.labels,
            prev_labels: None,
            bytes,
        });
        Some(obj)
    }

    fn publish(&mut self, ev: Event) {
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        // NB: no receivers is not an error for us: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Subscribe to future events (call while holding the store lock, together with
    /// [`Store::history_since`], so that nothing is missed or duplicated).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Events after `rv`, or `None` when `rv` is older than the kept history.
    pub fn history_since(&self, rv: u64) -> Option<Vec<Event>> {
        let oldest = self.history.front().map(|e| e.rv).unwrap_or(self.rv + 1);
        if rv + 1 < oldest && rv < self.rv {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn oldest_rv(&self) -> u64 {
        self.history.front().map(|e| e.rv).unwrap_or(self.rv)
    }
}
