//! The indexes of one kind's cache, kept from the same watch events the reflector's store
//! applies: instance id and owner key to objects, and the resourceVersions each object
//! was seen at, so that lookups are not scans and writers can wait for their writes.

use std::collections::{BTreeSet, HashMap, VecDeque};

use kube::{Resource, ResourceExt, runtime::watcher::Event};

use crate::naming;

/// An object's place: (namespace, name).
pub(super) type ObjKey = (String, String);

/// How many past resourceVersions of an object are remembered.
const VERSIONS: usize = 4;

/// What the indexes keep of one object.
#[derive(Debug, Default)]
struct Entry {
    instance: Option<String>,
    owner: Option<String>,
    /// resourceVersions seen, newest last.
    versions: VecDeque<String>,
}

/// The facts of an object the indexes need.
struct Facts {
    key: ObjKey,
    instance: Option<String>,
    owner: Option<String>,
    version: Option<String>,
}

impl Facts {
    fn of<K: Resource>(obj: &K) -> Self {
        let labels = obj.labels();
        Self {
            key: (obj.namespace().unwrap_or_default(), obj.name_any()),
            instance: labels.get(naming::LABEL_INSTANCE).cloned(),
            owner: labels.get(naming::LABEL_OWNER).cloned(),
            version: obj.resource_version(),
        }
    }
}

/// The indexes of one kind.
#[derive(Debug, Default)]
pub(super) struct Index {
    entries: HashMap<ObjKey, Entry>,
    by_instance: HashMap<String, BTreeSet<ObjKey>>,
    by_owner: HashMap<String, BTreeSet<ObjKey>>,
    /// The listing in progress after a (re)start of the watch, swapped in when complete,
    /// as the reflector's store does.
    relist: Option<Box<Index>>,
}

impl Index {
    /// Applies a watch event (after the store has applied it).
    pub(super) fn apply_event<K: Resource>(&mut self, event: &Event<K>) {
        match event {
            Event::Apply(obj) => self.apply(Facts::of(obj)),
            Event::Delete(obj) => {
                self.delete(&Facts::of(obj).key);
            }
            Event::Init => self.relist = Some(Box::default()),
            Event::InitApply(obj) => {
                if let Some(relist) = self.relist.as_mut() {
                    relist.apply(Facts::of(obj));
                }
            }
            Event::InitDone => {
                if let Some(mut fresh) = self.relist.take() {
                    for (key, entry) in &mut fresh.entries {
                        if let Some(old) = self.entries.remove(key) {
                            merge_versions(&mut entry.versions, old.versions);
                        }
                    }
                    *self = *fresh;
                }
            }
        }
    }

    fn apply(&mut self, facts: Facts) {
        let versions = self.delete(&facts.key).unwrap_or_default();
        let mut entry = Entry {
            instance: facts.instance,
            owner: facts.owner,
            versions,
        };
        if let Some(v) = facts.version
            && entry.versions.back() != Some(&v)
        {
            entry.versions.push_back(v);
            if entry.versions.len() > VERSIONS {
                entry.versions.pop_front();
            }
        }
        if let Some(id) = &entry.instance {
            self.by_instance
                .entry(id.clone())
                .or_default()
                .insert(facts.key.clone());
        }
        if let Some(owner) = &entry.owner {
            self.by_owner
                .entry(owner.clone())
                .or_default()
                .insert(facts.key.clone());
        }
        self.entries.insert(facts.key, entry);
    }

    /// Forgets `key`; answers the versions it was seen at.
    fn delete(&mut self, key: &ObjKey) -> Option<VecDeque<String>> {
        let entry = self.entries.remove(key)?;
        if let Some(id) = &entry.instance {
            unlink(&mut self.by_instance, id, key);
        }
        if let Some(owner) = &entry.owner {
            unlink(&mut self.by_owner, owner, key);
        }
        Some(entry.versions)
    }

    /// Objects labelled with instance `id`.
    pub(super) fn of_instance(&self, id: &str) -> impl Iterator<Item = &ObjKey> {
        self.by_instance.get(id).into_iter().flatten()
    }

    /// Objects labelled with owner key `owner`.
    pub(super) fn of_owner(&self, owner: &str) -> impl Iterator<Item = &ObjKey> {
        self.by_owner.get(owner).into_iter().flatten()
    }

    /// Every instance id some object is labelled with.
    pub(super) fn instance_ids(&self) -> impl Iterator<Item = &String> {
        self.by_instance.keys()
    }

    /// True when the object is held.
    pub(super) fn contains(&self, key: &ObjKey) -> bool {
        self.entries.contains_key(key)
    }

    /// True when the object is held at `version` or a later one: it was seen at
    /// `version`, or both its newest version and `version` are numbers (as etcd's are)
    /// and the newest is not smaller.
    pub(super) fn reached(&self, key: &ObjKey, version: &str) -> bool {
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        if entry.versions.iter().any(|v| v == version) {
            return true;
        }
        match (
            entry.versions.back().map(|v| v.parse::<u64>()),
            version.parse::<u64>(),
        ) {
            (Some(Ok(held)), Ok(wanted)) => held >= wanted,
            _ => false,
        }
    }

    /// Objects held.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn unlink(map: &mut HashMap<String, BTreeSet<ObjKey>>, value: &str, key: &ObjKey) {
    if let Some(keys) = map.get_mut(value) {
        keys.remove(key);
        if keys.is_empty() {
            map.remove(value);
        }
    }
}

/// Puts the `older` versions before `newer`'s, keeping the newest [`VERSIONS`].
fn merge_versions(newer: &mut VecDeque<String>, older: VecDeque<String>) {
    for v in older.into_iter().rev() {
        if !newer.contains(&v) {
            newer.push_front(v);
        }
    }
    while newer.len() > VERSIONS {
        newer.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(name: &str, instance: &str, owner: &str, rv: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                labels: Some(
                    [
                        (naming::LABEL_INSTANCE.to_owned(), instance.to_owned()),
                        (naming::LABEL_OWNER.to_owned(), owner.to_owned()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn key(name: &str) -> ObjKey {
        ("ns".into(), name.into())
    }

    #[test]
    fn relabelled_and_deleted_objects_leave_the_indexes() {
        let mut index = Index::default();
        index.apply_event(&Event::Apply(cm("a", "i1", "o1", "5")));
        index.apply_event(&Event::Apply(cm("b", "i1", "o2", "6")));
        assert_eq!(index.of_instance("i1").count(), 2);
        index.apply_event(&Event::Apply(cm("a", "i2", "o1", "7")));
        assert_eq!(index.of_instance("i1").collect::<Vec<_>>(), [&key("b")]);
        assert_eq!(index.of_instance("i2").collect::<Vec<_>>(), [&key("a")]);
        assert!(index.reached(&key("a"), "5") && index.reached(&key("a"), "7"));
        assert!(!index.reached(&key("a"), "8"));
        index.apply_event(&Event::Delete(cm("b", "i1", "o2", "8")));
        assert_eq!(index.of_instance("i1").count(), 0);
        assert_eq!(index.of_owner("o2").count(), 0);
        assert_eq!(index.instance_ids().collect::<Vec<_>>(), ["i2"]);
        assert!(!index.contains(&key("b")) && !index.reached(&key("b"), "6"));
    }

    #[test]
    fn a_relist_replaces_the_indexes_when_it_is_complete() {
        let mut index = Index::default();
        index.apply_event(&Event::Apply(cm("a", "i1", "o1", "x1")));
        index.apply_event(&Event::Apply(cm("gone", "i1", "o1", "x2")));
        index.apply_event(&Event::<ConfigMap>::Init);
        index.apply_event(&Event::InitApply(cm("a", "i1", "o1", "x3")));
        assert!(
            index.contains(&key("gone")),
            "the old state holds until InitDone"
        );
        index.apply_event(&Event::<ConfigMap>::InitDone);
        assert!(!index.contains(&key("gone")));
        assert_eq!(index.len(), 1);
        // Opaque versions: seen ones are reached, unseen ones are not.
        assert!(index.reached(&key("a"), "x1") && index.reached(&key("a"), "x3"));
        assert!(!index.reached(&key("a"), "x4"));
    }
}
