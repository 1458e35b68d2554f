//! The instance record: what the workspace PVC records about its instance. The only
//! reader and the only writer of it.
//!
//! Labels (also on every other object, checked by the render): the instance id
//! (`app.kubernetes.io/instance`), the owner's safe name (`devplatform.io/user`) and
//! durable owner key (`devplatform.io/owner`). Annotations, written by [`stamp`] on the
//! rendered PVC whatever its template says: the user id, email and `sub`
//! (`devplatform.io/user-id`, `email`, `sub`), the repositories (`devplatform.io/repos`),
//! every kind ever applied (`devplatform.io/kinds`) and, when values.yaml declares
//! profiles, the workspace profile (`devplatform.io/profile`). The last activity
//! (`devplatform.io/last-accessed-at`) is patched by the activity recorder and read here.
//!
//! NB: a template cannot break the record: [`stamp`] runs after every render of an
//! instance (provisioning, the dry runs, the render command) and overwrites these keys.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::DynamicObject;

use crate::{
    naming,
    values::{Owner, Repo, Values},
};

/// The kind of the object that holds the record.
const RECORD_KIND: &str = "PersistentVolumeClaim";

fn labels(pvc: &PersistentVolumeClaim) -> Option<&BTreeMap<String, String>> {
    pvc.metadata.labels.as_ref()
}

/// The annotation `key` of `pvc`.
pub(super) fn annotation<'a>(pvc: &'a PersistentVolumeClaim, key: &str) -> Option<&'a str> {
    pvc.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The instance id the record belongs to.
pub fn instance_id(pvc: &PersistentVolumeClaim) -> Option<&str> {
    labels(pvc)?.get(naming::LABEL_INSTANCE).map(String::as_str)
}

/// The owner's safe name (the user label).
pub fn safe_name(pvc: &PersistentVolumeClaim) -> Option<&str> {
    labels(pvc)?.get(naming::LABEL_USER).map(String::as_str)
}

/// The durable owner key (the owner label).
pub fn owner_key(pvc: &PersistentVolumeClaim) -> Option<&str> {
    labels(pvc)?.get(naming::LABEL_OWNER).map(String::as_str)
}

/// The owner's original user id, when recorded.
pub fn user_id(pvc: &PersistentVolumeClaim) -> Option<&str> {
    annotation(pvc, naming::ANNOTATION_USER_ID)
}

/// The repositories of the workspace, in the order they were added.
pub fn repos(pvc: Option<&PersistentVolumeClaim>) -> Vec<Repo> {
    pvc.and_then(|p| annotation(p, naming::ANNOTATION_REPOS))
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default()
}

/// The record's repositories with `repo` added (if it is new), and whether it was.
pub fn repos_with(pvc: Option<&PersistentVolumeClaim>, repo: Repo) -> (Vec<Repo>, bool) {
    let mut repos = repos(pvc);
    let added = !repos
        .iter()
        .any(|r| r.owner == repo.owner && r.name == repo.name);
    if added {
        repos.push(repo);
    }
    (repos, added)
}

/// The recorded workspace profile; none for an instance of a set without profiles or from
/// before them (it uses the default profile).
pub fn profile(pvc: &PersistentVolumeClaim) -> Option<&str> {
    annotation(pvc, naming::ANNOTATION_PROFILE)
}

/// Kinds ever applied to the instance (`apiVersion/Kind`).
pub fn kinds(pvc: Option<&PersistentVolumeClaim>) -> BTreeSet<String> {
    pvc.and_then(|p| annotation(p, naming::ANNOTATION_KINDS))
        .and_then(|k| serde_json::from_str::<Vec<String>>(k).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The workspace's storage: the volume's capacity once bound, else its request.
pub fn storage(pvc: &PersistentVolumeClaim) -> Option<crate::quantity::Quantity> {
    super::storage::capacity(pvc).or_else(|| super::storage::requested(pvc))
}

/// The recorded last activity.
pub fn last_accessed(pvc: &PersistentVolumeClaim) -> Option<jiff::Timestamp> {
    crate::activity::recorded(pvc)
}

/// The caller `owner` with the safe name of their existing instance (kept when the
/// username changes).
pub fn caller(owner: &Owner, pvc: Option<&PersistentVolumeClaim>) -> Owner {
    let mut owner = owner.clone();
    owner.known_name = pvc.and_then(safe_name).map(str::to_owned);
    owner
}

/// The owner recorded on `pvc`: user id, safe name, email and, when the owner key is not
/// that name, the `sub` it was derived from. For acting on another user's instance
/// (admins, dry runs) and for reading an instance.
pub fn owner(pvc: &PersistentVolumeClaim) -> Owner {
    let user_id = user_id(pvc).or_else(|| safe_name(pvc)).unwrap_or_default();
    owner_as_recorded(Owner::new(user_id), pvc)
}

/// `owner` as recorded on `pvc`: its safe name and, when the owner key is not that name,
/// the `sub` it was derived from; the recorded email when `owner` has none.
pub fn owner_as_recorded(mut owner: Owner, pvc: &PersistentVolumeClaim) -> Owner {
    owner.known_name = safe_name(pvc).map(str::to_owned);
    if owner.email.is_none() {
        owner.email = annotation(pvc, naming::ANNOTATION_EMAIL).map(str::to_owned);
    }
    let key = owner_key(pvc);
    // NB: the owner key is recomputed from `sub`; a key that is not the safe name was a
    // sub, unless it had to be hashed, in which case the record keeps the `sub` itself.
    let recorded_sub = annotation(pvc, naming::ANNOTATION_SUB)
        .filter(|sub| key == Some(naming::owner_key(Some(sub), "").as_str()))
        .map(str::to_owned);
    owner.sub = recorded_sub.or_else(|| {
        key.filter(|k| Some(*k) != owner.known_name.as_deref())
            .map(str::to_owned)
    });
    owner
}

/// The kinds record of an instance rendered as `objects`: every kind it has ever had
/// (`recorded`) and has now, one version each (`dedupe` keeps one per kind).
pub fn kinds_json<'a>(
    objects: impl IntoIterator<Item = &'a DynamicObject>,
    recorded: &BTreeSet<String>,
    dedupe: impl FnOnce(BTreeSet<String>) -> BTreeSet<String>,
) -> String {
    let mut kinds: BTreeSet<String> = objects
        .into_iter()
        .filter_map(|o| {
            o.types
                .as_ref()
                .map(|t| format!("{}/{}", t.api_version, t.kind))
        })
        .collect();
    kinds.extend(recorded.iter().cloned());
    serde_json::to_string(&dedupe(kinds)).unwrap_or_else(|_| "[]".to_owned())
}

/// Writes the record on the rendered PVC among `objects`: the owner's user id, email and
/// `sub` as `values` has them, the repositories, `kinds` (see [`kinds_json`]) and the
/// profile (only when the set declares profiles).
pub fn stamp<'a>(
    objects: impl IntoIterator<Item = &'a mut DynamicObject>,
    values: &Values,
    kinds: &str,
) {
    for object in objects {
        if object.types.as_ref().is_some_and(|t| t.kind == RECORD_KIND) {
            let annotations = object
                .metadata
                .annotations
                .get_or_insert_with(Default::default);
            for key in [
                naming::ANNOTATION_EMAIL,
                naming::ANNOTATION_SUB,
                naming::ANNOTATION_PROFILE,
            ] {
                annotations.remove(key);
            }
            if let Some(profile) = values.profile.recorded_name() {
                annotations.insert(naming::ANNOTATION_PROFILE.to_owned(), profile.to_owned());
            }
            annotations.extend(values.annotations.clone());
            annotations.insert(
                naming::ANNOTATION_REPOS.to_owned(),
                values.repos_json.clone(),
            );
            annotations.insert(naming::ANNOTATION_KINDS.to_owned(), kinds.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pvc(labels: serde_json::Value, annotations: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "workspace-jd", "labels": labels, "annotations": annotations}}))
            .unwrap()
    }

    #[test]
    fn the_owner_is_read_back_as_recorded() {
        let hashed = naming::owner_key(Some("a sub that is not a label"), "");
        let p = pvc(
            json!({"devplatform.io/user": "jd", "devplatform.io/owner": hashed}),
            json!({"devplatform.io/user-id": "J.D", "devplatform.io/email": "jd@corp",
                "devplatform.io/sub": "a sub that is not a label"}),
        );
        let o = owner(&p);
        assert_eq!(o.user_id, "J.D");
        assert_eq!(o.known_name.as_deref(), Some("jd"));
        assert_eq!(o.email.as_deref(), Some("jd@corp"));
        assert_eq!(o.sub.as_deref(), Some("a sub that is not a label"));
        let plain = pvc(
            json!({"devplatform.io/user": "jd", "devplatform.io/owner": "sub-1"}),
            json!({}),
        );
        assert_eq!(owner(&plain).sub.as_deref(), Some("sub-1"));
        assert_eq!(owner(&plain).user_id, "jd");
    }

    #[test]
    fn repositories_and_kinds_are_read_back() {
        let p = pvc(
            json!({}),
            json!({"devplatform.io/repos": "[{\"owner\":\"o\",\"name\":\"n\",\"cloneUrl\":\"u\"}]",
                "devplatform.io/kinds": "[\"v1/Pod\"]"}),
        );
        assert_eq!(repos(Some(&p))[0].name, "n");
        assert!(kinds(Some(&p)).contains("v1/Pod"));
        let (with, added) = repos_with(Some(&p), Repo::new("o", "n", "http://g/o/n.git").unwrap());
        assert_eq!((with.len(), added), (1, false));
        assert!(repos(None).is_empty());
    }
}
