//! What a cache keeps of one object: the object as compact JSON (trimmed, and for pods
//! slimmed to what reads use), compressed against a sample of its kind and parsed again
//! on each read, and the few facts that reads over every instance need without parsing
//! anything (`instanceStats`, the capacity count). Parsed objects take five to ten times
//! the memory of their JSON, objects of one kind differ in little more than names (so the
//! JSON shrinks several times against a sample), and a read parses one instance's
//! objects only.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodSpec};
use kube::{Resource, ResourceExt};
use serde::{Serialize, de::DeserializeOwned};

use super::key::trim;
use crate::{
    instance::{StatusSummary, record},
    naming,
    quantity::Quantity,
};

/// The facts of a record (PVC) that totals read.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFacts {
    /// The instance id (`app.kubernetes.io/instance`).
    pub instance: Option<Box<str>>,
    /// The owner's safe name (`devplatform.io/user`).
    pub safe_name: Option<Box<str>>,
    /// The workspace's storage: its capacity once bound, else its request.
    pub storage: Option<Quantity>,
    /// Marked deleted, its volume kept until its purge time (`instance::retention`).
    pub deleted: bool,
}

/// The facts of a pod that totals and the capacity count read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodFacts {
    /// An instance's code-server pod (not a sync Job's).
    pub code_server: bool,
    /// Being deleted.
    pub deleting: bool,
    /// Its status, at any time.
    pub status: StatusSummary,
}

/// The facts kept beside an object, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    /// A kind no total reads.
    None,
    /// A PVC.
    Record(Box<RecordFacts>),
    /// A pod.
    Pod(PodFacts),
}

/// How a kind's objects are kept: slimmed by `slim` (after trimming), with the facts
/// `facts` gives.
pub trait Keep:
    Resource + Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// Drops what no read of this kind uses.
    fn slim(&mut self) {}

    /// Whether objects of this kind are looked up by owner key (records are).
    const BY_OWNER: bool = false;

    /// The facts totals read.
    fn facts(&self) -> Facts {
        Facts::None
    }
}

impl Keep for kube::api::DynamicObject {
    /// NB: plans compare these objects on what the templates render, and nothing reads
    /// when or as which incarnation they were made.
    fn slim(&mut self) {
        self.metadata.uid = None;
        self.metadata.creation_timestamp = None;
        self.metadata.generation = None;
    }
}

#[cfg(test)]
impl Keep for k8s_openapi::api::core::v1::ConfigMap {}

impl Keep for PersistentVolumeClaim {
    const BY_OWNER: bool = true;

    fn facts(&self) -> Facts {
        Facts::Record(Box::new(RecordFacts {
            instance: record::instance_id(self).map(Into::into),
            safe_name: record::safe_name(self).map(Into::into),
            storage: record::storage(self),
            deleted: crate::instance::retention::is_deleted(self),
        }))
    }
}

impl Keep for Pod {
    /// NB: plans compare a pod by its spec hash and its metadata, never its spec (which
    /// is immutable); reads use the node it runs on and the status. What the status says
    /// of images and addresses is not read.
    fn slim(&mut self) {
        let node_name = self.spec.as_ref().and_then(|s| s.node_name.clone());
        self.spec = Some(PodSpec {
            node_name,
            ..PodSpec::default()
        });
        if let Some(status) = self.status.as_mut() {
            status.host_ip = None;
            status.host_ips = None;
            status.pod_ip = None;
            status.pod_ips = None;
            status.qos_class = None;
            // NB: statuses are derived from the Ready and PodScheduled conditions only.
            if let Some(conditions) = status.conditions.as_mut() {
                conditions.retain(|c| c.type_ == "Ready" || c.type_ == "PodScheduled");
            }
            for c in [
                &mut status.container_statuses,
                &mut status.init_container_statuses,
                &mut status.ephemeral_container_statuses,
            ]
            .into_iter()
            .flatten()
            .flatten()
            {
                c.image.clear();
                c.image_id.clear();
                c.container_id = None;
                if let Some(t) = c.state.as_mut().and_then(|s| s.terminated.as_mut()) {
                    t.container_id = None;
                }
                if let Some(t) = c.last_state.as_mut().and_then(|s| s.terminated.as_mut()) {
                    t.container_id = None;
                }
                c.allocated_resources = None;
                c.resources = None;
                c.volume_mounts = None;
            }
        }
    }

    fn facts(&self) -> Facts {
        Facts::Pod(PodFacts {
            code_server: self
                .labels()
                .get(naming::LABEL_NAME)
                .is_some_and(|v| v == naming::APP_NAME_VALUE),
            deleting: self.metadata.deletion_timestamp.is_some(),
            status: StatusSummary::of(Some(self)),
        })
    }
}

/// One object as a cache keeps it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object's JSON, with its `apiVersion` and `kind`, LZ4-compressed against
    /// `sample` (its length first).
    packed: Box<[u8]>,
    /// The JSON of an object of the same kind the compression refers to.
    sample: Arc<[u8]>,
    /// What totals read of it.
    pub facts: Facts,
}

impl Stored {
    /// Keeps `obj` (trimmed and slimmed), with `types` (`apiVersion`, `kind`) written
    /// into its JSON: listed items carry none. The first object kept of a kind becomes
    /// `sample`, which later ones are compressed against. `None` when it cannot be
    /// serialized.
    pub fn keep<K: Keep>(
        mut obj: K,
        types: &(String, String),
        sample: &mut Option<Arc<[u8]>>,
    ) -> Option<Self> {
        trim(obj.meta_mut());
        obj.slim();
        let facts = obj.facts();
        let mut value = serde_json::to_value(&obj).ok()?;
        let map = value.as_object_mut()?;
        map.insert("apiVersion".into(), types.0.clone().into());
        map.insert("kind".into(), types.1.clone().into());
        let json = serde_json::to_vec(&value).ok()?;
        let sample = sample.get_or_insert_with(|| json.as_slice().into()).clone();
        let packed = lz4_flex::block::compress_prepend_size_with_dict(&json, &sample);
        Some(Self {
            packed: packed.into_boxed_slice(),
            sample,
            facts,
        })
    }

    /// The object, parsed as `T`; `None` (logged) when it does not parse as one.
    pub fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        let json = match lz4_flex::block::decompress_size_prepended_with_dict(
            &self.packed,
            &self.sample,
        ) {
            Ok(json) => json,
            Err(error) => {
                tracing::error!(%error, "a cached object could not be unpacked");
                return None;
            }
        };
        match serde_json::from_slice(&json) {
            Ok(obj) => Some(obj),
            Err(error) => {
                tracing::error!(%error, "a cached object could not be parsed");
                None
            }
        }
    }
}
