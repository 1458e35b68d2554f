//! Whether a live pod was rendered from other templates or inputs than the current ones
//! (`restartPending`), answered without rendering on reads. A rendered pod carries a
//! digest of what it was rendered from (`devplatform.io/rendered-from`: template
//! revision, settings, owner, repositories and recorded profile); a pod whose digest is the one the record
//! and the active templates give is current. Otherwise every render of an instance
//! records the pod spec hash its inputs give under the active template revision, and a
//! read compares the live pod's recorded hash (`devplatform.io/spec-hash`, stamped when
//! it was rendered) with that. Only inputs never rendered under the active revision (a
//! template change) are rendered, once per revision.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::DynamicObject;

use super::Reconciler;
use crate::{
    instance::record,
    naming,
    values::{Owner, Repo},
};

/// The pod spec hash per instance inputs, for one template revision.
#[derive(Debug, Default)]
pub(super) struct PodHashes {
    cache: Mutex<Revision>,
}

#[derive(Debug, Default)]
struct Revision {
    revision: String,
    hashes: HashMap<String, Option<String>>,
}

impl PodHashes {
    /// The hash recorded for `inputs` under `revision`: `None` when not known yet.
    fn get(&self, revision: &str, inputs: &str) -> Option<Option<String>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        (cache.revision == revision)
            .then(|| cache.hashes.get(inputs).cloned())
            .flatten()
    }

    /// Records that `inputs` render to a pod with `hash` under `revision`; entries of
    /// another revision are dropped.
    pub(super) fn insert(&self, revision: &str, inputs: String, hash: Option<String>) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.revision != revision {
            cache.revision = revision.to_owned();
            cache.hashes.clear();
        }
        cache.hashes.insert(inputs, hash);
    }
}

/// What an instance's pod is rendered from, besides the templates: the owner as values
/// see them, the repositories and the recorded profile.
///
/// NB: no profile adds nothing, so that the pods of a set without profiles keep the
/// digest they had before profiles.
pub(super) fn inputs(owner: &Owner, repos: &[Repo], profile: Option<&str>) -> String {
    let repos = serde_json::to_string(repos).unwrap_or_default();
    let mut text = format!(
        "{}\0{:?}\0{:?}\0{:?}\0{repos}",
        owner.user_id, owner.email, owner.sub, owner.known_name
    );
    if let Some(profile) = profile {
        text.push_str("\0profile=");
        text.push_str(profile);
    }
    naming::hex_digest(text.as_bytes())
}

/// The inputs a read derives from the record (the PVC) among `objects`, as stamped by
/// this render: reads know the owner and repositories only as recorded.
fn record_inputs(objects: &[&mut DynamicObject]) -> Option<String> {
    let pvc = objects.iter().find(|o| {
        o.types
            .as_ref()
            .is_some_and(|t| t.kind == "PersistentVolumeClaim")
    })?;
    let record = PersistentVolumeClaim {
        metadata: pvc.metadata.clone(),
        ..PersistentVolumeClaim::default()
    };
    record::instance_id(&record)?;
    Some(inputs(
        &record::owner(&record),
        &record::repos(Some(&record)),
        record::profile(&record),
    ))
}

/// The spec hash stamped on the rendered pod among `objects`.
pub(super) fn pod_hash(objects: &[DynamicObject]) -> Option<String> {
    objects
        .iter()
        .find(|o| o.types.as_ref().is_some_and(|t| t.kind == "Pod"))?
        .metadata
        .annotations
        .as_ref()?
        .get(naming::ANNOTATION_SPEC_HASH)
        .cloned()
}

impl Reconciler {
    /// True when `pod`, the live pod of the instance recorded by `pvc` with `repos`, was
    /// rendered from other templates or inputs than the current ones: a restart applies
    /// the change.
    pub(super) fn restart_pending(
        &self,
        pvc: &PersistentVolumeClaim,
        pod: &Pod,
        repos: &[Repo],
    ) -> bool {
        let annotations = pod.metadata.annotations.as_ref();
        let owner = record::owner(pvc);
        let profile = record::profile(pvc);
        let from = annotations.and_then(|a| a.get(naming::ANNOTATION_RENDERED_FROM));
        if let Some(from) = from {
            let revision = self.templates.get().revision().to_owned();
            if *from == self.rendered_from(&revision, &inputs(&owner, repos, profile)) {
                return false;
            }
        }
        let live = annotations.and_then(|a| a.get(naming::ANNOTATION_SPEC_HASH));
        let want = self.desired_pod_hash(&owner, repos, profile);
        want.is_some() && live != want.as_ref()
    }

    /// Stamps on the rendered pod among `objects` (rendered under `revision`, the record
    /// stamped) the digest of what it was rendered from, as a read will compute it.
    pub(super) fn stamp_rendered_from(&self, revision: &str, mut objects: Vec<&mut DynamicObject>) {
        let Some(read) = record_inputs(&objects) else {
            return;
        };
        let from = self.rendered_from(revision, &read);
        if let Some(pod) = objects
            .iter_mut()
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == "Pod"))
        {
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(naming::ANNOTATION_RENDERED_FROM.to_owned(), from);
        }
    }

    /// The digest of what a pod is rendered from: the template `revision`, the settings
    /// and the owner's `inputs` (see [`inputs`]).
    pub(super) fn rendered_from(&self, revision: &str, inputs: &str) -> String {
        let text = format!("{revision}\0{}\0{inputs}", self.settings_digest);
        naming::hex_digest(text.as_bytes())
    }

    /// The spec hash of the pod the current templates give `owner` with `repos` and the
    /// recorded `profile`: from the cache, else rendered once (and recorded by
    /// [`Self::desired`]).
    fn desired_pod_hash(
        &self,
        owner: &Owner,
        repos: &[Repo],
        profile: Option<&str>,
    ) -> Option<String> {
        let revision = self.templates.get().revision().to_owned();
        let cached = self
            .pod_hashes
            .get(&revision, &inputs(owner, repos, profile));
        if let Some(hash) = cached {
            return hash;
        }
        self.desired(owner, repos, &Default::default(), &[], profile)
            .ok()
            .and_then(|d| pod_hash(&d.objects))
    }
}
