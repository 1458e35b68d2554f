//! One kind's cached objects and their indexes, kept from the watch events: each object
//! as a cache keeps it ([`Stored`]), instance id and owner key to object names, and the
//! resourceVersions each object was seen at, so that lookups are not scans and writers
//! can wait for their writes. A cache watches one namespace, so names are keys.

use std::{collections::HashMap, sync::Arc};

use super::stored::Stored;

/// An object's name.
pub(super) type Name = Arc<str>;

/// How many past resourceVersions of an object are remembered.
const VERSIONS: usize = 4;

/// A label value an index is keyed by, shared with the entries that carry it.
type Key = Arc<str>;

/// One object as held, with what the indexes keep of it.
#[derive(Debug)]
pub(super) struct Entry {
    instance: Option<Key>,
    owner: Option<Key>,
    /// resourceVersions seen, newest last (at most [`VERSIONS`], allocated exactly).
    versions: Box<[Box<str>]>,
    pub(super) stored: Stored,
}

/// The facts of an event's object the indexes need, and the object as kept.
pub(super) struct Seen {
    pub(super) name: String,
    pub(super) instance: Option<String>,
    pub(super) owner: Option<String>,
    pub(super) version: Option<String>,
    pub(super) stored: Stored,
}

/// A watch event, its object already kept.
pub(super) enum Change {
    /// Created or changed.
    Apply(Seen),
    /// Deleted.
    Delete(String),
    /// A (re)listing starts.
    Init,
    /// An object of the listing.
    InitApply(Seen),
    /// The listing is complete.
    InitDone,
}

/// The objects of one kind and their indexes.
#[derive(Debug, Default)]
pub(super) struct Index {
    entries: HashMap<Name, Entry>,
    by_instance: HashMap<Key, Vec<Name>>,
    by_owner: HashMap<Key, Vec<Name>>,
    /// The listing in progress after a (re)start of the watch, swapped in when complete.
    relist: Option<Box<Index>>,
}

impl Index {
    /// Applies a watch event.
    pub(super) fn apply_change(&mut self, change: Change) {
        match change {
            Change::Apply(seen) => self.apply(seen),
            Change::Delete(name) => {
                self.delete(&name);
            }
            Change::Init => self.relist = Some(Box::default()),
            Change::InitApply(seen) => {
                if let Some(relist) = self.relist.as_mut() {
                    relist.apply(seen);
                }
            }
            Change::InitDone => {
                if let Some(mut fresh) = self.relist.take() {
                    for (name, entry) in &mut fresh.entries {
                        if let Some(old) = self.entries.remove(name) {
                            merge_versions(&mut entry.versions, old.versions);
                        }
                    }
                    *self = *fresh;
                }
            }
        }
    }

    fn apply(&mut self, seen: Seen) {
        let versions = self.delete(&seen.name).unwrap_or_default();
        let name: Name = seen.name.into();
        let versions = match seen.version {
            Some(v) if versions.last().map(|b| &**b) != Some(v.as_str()) => {
                let keep = versions.len().min(VERSIONS - 1);
                let skip = versions.len() - keep;
                let mut newer = Vec::with_capacity(keep + 1);
                newer.extend(versions.into_vec().into_iter().skip(skip));
                newer.push(v.into_boxed_str());
                newer.into_boxed_slice()
            }
            _ => versions,
        };
        let instance = seen.instance.map(|id| key(&mut self.by_instance, id));
        let owner = seen.owner.map(|o| key(&mut self.by_owner, o));
        if let Some(id) = &instance {
            link(&mut self.by_instance, id, &name);
        }
        if let Some(owner) = &owner {
            link(&mut self.by_owner, owner, &name);
        }
        self.entries.insert(
            name,
            Entry {
                instance,
                owner,
                versions,
                stored: seen.stored,
            },
        );
    }

    /// Forgets `name`; answers the versions it was seen at.
    fn delete(&mut self, name: &str) -> Option<Box<[Box<str>]>> {
        let entry = self.entries.remove(name)?;
        if let Some(id) = &entry.instance {
            unlink(&mut self.by_instance, id, name);
        }
        if let Some(owner) = &entry.owner {
            unlink(&mut self.by_owner, owner, name);
        }
        Some(entry.versions)
    }

    /// The object `name`.
    pub(super) fn get(&self, name: &str) -> Option<&Stored> {
        self.entries.get(name).map(|e| &e.stored)
    }

    /// Objects labelled with instance `id`.
    pub(super) fn of_instance(&self, id: &str) -> impl Iterator<Item = &Stored> {
        self.resolve(self.by_instance.get(id))
    }

    /// Objects labelled with owner key `owner`.
    pub(super) fn of_owner(&self, owner: &str) -> impl Iterator<Item = &Stored> {
        self.resolve(self.by_owner.get(owner))
    }

    /// Every object held.
    pub(super) fn all(&self) -> impl Iterator<Item = &Stored> {
        self.entries.values().map(|e| &e.stored)
    }

    /// Every object held, with its name.
    pub(super) fn named(&self) -> impl Iterator<Item = (&str, &Stored)> {
        self.entries.iter().map(|(name, e)| (&**name, &e.stored))
    }

    /// Every instance id some object is labelled with.
    pub(super) fn instance_ids(&self) -> impl Iterator<Item = &str> {
        self.by_instance.keys().map(|k| &**k)
    }

    /// True when the object is held.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// True when the object is held at `version` or a later one: it was seen at
    /// `version`, or both its newest version and `version` are numbers (as etcd's are)
    /// and the newest is not smaller.
    pub(super) fn reached(&self, name: &str, version: &str) -> bool {
        let Some(entry) = self.entries.get(name) else {
            return false;
        };
        if entry.versions.iter().any(|v| &**v == version) {
            return true;
        }
        match (
            entry.versions.last().map(|v| v.parse::<u64>()),
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

    fn resolve<'a>(&'a self, names: Option<&'a Vec<Name>>) -> impl Iterator<Item = &'a Stored> {
        names
            .into_iter()
            .flatten()
            .filter_map(|name| self.get(name))
    }
}

/// The key `value` of `map`: the one held already, shared, or a new one.
fn key(map: &mut HashMap<Key, Vec<Name>>, value: String) -> Key {
    match map.get_key_value(value.as_str()) {
        Some((held, _)) => held.clone(),
        None => value.into(),
    }
}

fn link(map: &mut HashMap<Key, Vec<Name>>, value: &Key, name: &Name) {
    let names = map
        .entry(value.clone())
        .or_insert_with(|| Vec::with_capacity(1));
    if !names.contains(name) {
        names.push(name.clone());
    }
}

fn unlink(map: &mut HashMap<Key, Vec<Name>>, value: &str, name: &str) {
    if let Some(names) = map.get_mut(value) {
        names.retain(|n| &**n != name);
        if names.is_empty() {
            map.remove(value);
        }
    }
}

/// Puts the `older` versions before `newer`'s, keeping the newest [`VERSIONS`].
fn merge_versions(newer: &mut Box<[Box<str>]>, older: Box<[Box<str>]>) {
    let mut merged: Vec<Box<str>> = older
        .into_vec()
        .into_iter()
        .filter(|v| !newer.contains(v))
        .collect();
    merged.extend(std::mem::take(newer).into_vec());
    let skip = merged.len().saturating_sub(VERSIONS);
    *newer = merged.into_iter().skip(skip).collect();
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::naming;

    fn cm(name: &str, instance: &str, owner: &str, rv: &str) -> Seen {
        let obj = ConfigMap {
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
        };
        Seen {
            name: name.into(),
            instance: Some(instance.into()),
            owner: Some(owner.into()),
            version: Some(rv.into()),
            stored: Stored::keep(obj, &("v1".into(), "ConfigMap".into()), &mut None).unwrap(),
        }
    }

    fn names<'a>(stored: impl Iterator<Item = &'a Stored>) -> Vec<String> {
        stored
            .map(|s| s.parse::<ConfigMap>().unwrap().metadata.name.unwrap())
            .collect()
    }

    #[test]
    fn relabelled_and_deleted_objects_leave_the_indexes() {
        let mut index = Index::default();
        index.apply_change(Change::Apply(cm("a", "i1", "o1", "5")));
        index.apply_change(Change::Apply(cm("b", "i1", "o2", "6")));
        assert_eq!(index.of_instance("i1").count(), 2);
        index.apply_change(Change::Apply(cm("a", "i2", "o1", "7")));
        assert_eq!(names(index.of_instance("i1")), ["b"]);
        assert_eq!(names(index.of_instance("i2")), ["a"]);
        assert!(index.reached("a", "5") && index.reached("a", "7"));
        assert!(!index.reached("a", "8"));
        index.apply_change(Change::Delete("b".into()));
        assert_eq!(index.of_instance("i1").count(), 0);
        assert_eq!(index.of_owner("o2").count(), 0);
        assert_eq!(index.instance_ids().collect::<Vec<_>>(), ["i2"]);
        assert!(!index.contains("b") && !index.reached("b", "6"));
    }

    #[test]
    fn a_relist_replaces_the_indexes_when_it_is_complete() {
        let mut index = Index::default();
        index.apply_change(Change::Apply(cm("a", "i1", "o1", "x1")));
        index.apply_change(Change::Apply(cm("gone", "i1", "o1", "x2")));
        index.apply_change(Change::Init);
        index.apply_change(Change::InitApply(cm("a", "i1", "o1", "x3")));
        assert!(index.contains("gone"), "the old state holds until InitDone");
        index.apply_change(Change::InitDone);
        assert!(!index.contains("gone"));
        assert_eq!(index.len(), 1);
        // Opaque versions: seen ones are reached, unseen ones are not.
        assert!(index.reached("a", "x1") && index.reached("a", "x3"));
        assert!(!index.reached("a", "x4"));
    }
}
