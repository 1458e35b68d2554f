//! Images pulled ahead: one DaemonSet in the instances namespace (`codeserver-prepull`)
//! whose init containers pull every image a workspace of the active templates and profiles
//! uses, then a pause container that sleeps for nothing, so that no user waits for a pull
//! on a node's first start (the approach of JupyterHub's image pullers).
//!
//! The Lease holder applies it (server-side apply) when what it should be changes, and
//! deletes it when `prepull.enabled` is false. Its pods are locked down like workspaces
//! (non-root, no token, no capabilities, read-only root, tiny requests) and meet the
//! restricted Pod Security Standard; they tolerate every profile's tolerations and keep a
//! node selector only when every profile's workspaces have the same one. An image without `/bin/sh` is still pulled, but its init container
//! fails and the node does not count as ready.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::{Value, json};

use super::{Error, Reconciler, Result, apply, live, with_retry};
use crate::{
    naming,
    values::{Owner, Repo},
};

/// The DaemonSet's name.
pub const PREPULL_NAME: &str = "codeserver-prepull";
/// The digest of what was last applied, on the DaemonSet.
const ANNOTATION_PREPULL_DIGEST: &str = "devplatform.io/prepull-digest";
/// The pause image the DaemonSet's pods sleep in, unless `prepull.pauseImage` says.
pub const DEFAULT_PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// What the pre-pull DaemonSet pulls and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepullStatus {
    /// The images pulled on every node, sorted.
    pub images: Vec<String>,
    /// Nodes where every image is pulled (the DaemonSet's ready pods).
    pub ready_nodes: i32,
    /// Nodes that should have them (the DaemonSet's desired pods).
    pub total_nodes: i32,
}

/// The DaemonSet the active templates want: `None` when pre-pulling is off.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepull {
    /// The images, sorted.
    pub images: Vec<String>,
    /// The DaemonSet, for server-side apply.
    pub daemonset: Value,
}

impl Reconciler {
    /// What the active templates pre-pull: every image of a sample workspace's pod (its
    /// containers and init containers, sidecars included) and every profile's image.
    pub fn prepull(&self) -> Result<Option<Prepull>> {
        let templates = self.templates.get();
        let owner = Owner::new("prepull");
        let repo = Repo::new(
            "prepull",
            "sample",
            "http://gitea.invalid/prepull/sample.git",
        )
        .map_err(|e| Error::Instance(format!("the pre-pull sample repository: {e}")))?;
        let extra = templates.shared_values().clone();
        if extra.pointer("/prepull/enabled") == Some(&Value::Bool(false)) {
            return Ok(None);
        }
        // NB: every profile's sample pod, as a workspace of that profile renders it: its
        // images (a profile's own image or sidecars included) and where it may run.
        let mut images = BTreeSet::new();
        let mut selectors = BTreeSet::new();
        let mut tolerations = BTreeSet::new();
        for profile in templates.profiles().all() {
            let values = crate::render::build_profile_values(
                &templates,
                &self.settings,
                &owner,
                std::slice::from_ref(&repo),
                Some(&profile.name),
                &[],
            )?;
            for object in templates.render(&values)? {
                if object.object.types.as_ref().is_none_or(|t| t.kind != "Pod") {
                    continue;
                }
                let spec = &object.object.data["spec"];
                for list in ["initContainers", "containers"] {
                    for c in spec[list].as_array().into_iter().flatten() {
                        if let Some(image) = c["image"].as_str().filter(|i| !i.is_empty()) {
                            images.insert(image.to_owned());
                        }
                    }
                }
                selectors.insert(spec["nodeSelector"].to_string());
                for t in spec["tolerations"].as_array().into_iter().flatten() {
                    tolerations.insert(t.to_string());
                }
            }
        }
        // NB: one DaemonSet for every profile: it tolerates what any profile tolerates, and
        // keeps a node selector only when every profile has the same one.
        let node_selector = match selectors.len() {
            1 => selectors
                .first()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let tolerations = Value::Array(
            tolerations
                .iter()
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect(),
        );
        let pause = extra
            .pointer("/prepull/pauseImage")
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty())
            .unwrap_or(DEFAULT_PAUSE_IMAGE);
        let images: Vec<String> = images.into_iter().collect();
        let daemonset = daemonset(
            &self.settings.namespace,
            &images,
            pause,
            &node_selector,
            &tolerations,
        );
        Ok(Some(Prepull { images, daemonset }))
    }

    /// Applies the pre-pull DaemonSet of the active templates over `live` (the one there
    /// now, as [`Self::prepull_daemonset`] read it), or deletes it when pre-pulling is
    /// off. The images it pulls now (`None` when `live` is already what the templates want:
    /// nothing is written then, so a reload that changes no image makes no request; empty
    /// when it was deleted), and the DaemonSet in effect afterwards.
    pub async fn apply_prepull(
        &self,
        live: Option<DaemonSet>,
    ) -> Result<(Option<Vec<String>>, Option<DaemonSet>)> {
        let api = self.daemonsets();
        let Some(mut prepull) = self.prepull()? else {
            if live.is_none() {
                return Ok((None, None));
            }
            let what = format!("delete DaemonSet/{PREPULL_NAME}");
            apply::delete_if_present(&api, PREPULL_NAME, &DeleteParams::default(), &what)
                .await
                .map_err(|e| Error::kube(&what, e))?;
            return Ok((Some(Vec::new()), None));
        };
        // NB: the digest of what is applied, on the object: equal means nothing to write.
        let digest = {
            let text = serde_json::to_string(&prepull.daemonset).unwrap_or_default();
            let hash = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
            hash.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let applied = live
            .as_ref()
            .and_then(|ds| ds.metadata.annotations.as_ref())
            .and_then(|a| a.get(ANNOTATION_PREPULL_DIGEST));
        if applied == Some(&digest) {
            return Ok((None, live));
        }
        prepull.daemonset["metadata"]["annotations"] = json!({ANNOTATION_PREPULL_DIGEST: digest});
        let params = PatchParams::apply(naming::FIELD_MANAGER).force();
        let patch = Patch::Apply(&prepull.daemonset);
        let written = with_retry("apply the pre-pull DaemonSet", || {
            api.patch(PREPULL_NAME, &params, &patch)
        })
        .await
        .map_err(|e| Error::kube("apply the pre-pull DaemonSet", e))?;
        Ok((Some(prepull.images), Some(written)))
    }

    /// The pre-pull DaemonSet, if there is one (one read).
    pub async fn prepull_daemonset(&self) -> Result<Option<DaemonSet>> {
        live::named(&self.daemonsets(), PREPULL_NAME)
            .await
            .map_err(|e| Error::kube("read the pre-pull DaemonSet", e))
    }

    /// The pre-pull DaemonSet's images and progress (one read); `None` when pre-pulling
    /// is off or the DaemonSet is not there yet.
    pub async fn prepull_status(&self) -> Result<Option<PrepullStatus>> {
        Ok(self.prepull_daemonset().await?.as_ref().map(status_of))
    }

    fn daemonsets(&self) -> Api<DaemonSet> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }
}

/// The images and progress of the pre-pull DaemonSet `ds`.
pub fn status_of(ds: &DaemonSet) -> PrepullStatus {
    let pod = ds.spec.template.spec.as_ref();
    let mut images: Vec<String> = pod
        .and_then(|p| p.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.image.clone())
        .collect();
    images.sort();
    let status = ds.status.clone().unwrap_or_default();
    PrepullStatus {
        images,
        ready_nodes: status.number_ready,
        total_nodes: status.desired_number_scheduled,
    }
}

/// The DaemonSet: one init container per image (`/bin/sh -c true`: the pull is the point),
/// then the pause container.
fn daemonset(
    namespace: &str,
    images: &[String],
    pause: &str,
    node_selector: &Value,
    tolerations: &Value,
) -> Value {
    let labels = json!({
        naming::LABEL_MANAGED_BY: naming::MANAGED_BY_VALUE,
        "app.kubernetes.io/name": PREPULL_NAME,
    });
    let resources = json!({
        "requests": {"cpu": "1m", "memory": "8Mi", "ephemeral-storage": "1Mi"},
        "limits": {"cpu": "50m", "memory": "32Mi", "ephemeral-storage": "16Mi"},
    });
    let security = json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
    });
    let init: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            json!({
                "name": format!("pull-{i}"),
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", "-c", "true"],
                "resources": resources,
                "securityContext": security,
            })
        })
        .collect();
    let node_selector = if node_selector.is_object() {
        node_selector.clone()
    } else {
        json!({})
    };
    let tolerations = if tolerations.is_array() {
        tolerations.clone()
    } else {
        json!([])
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": PREPULL_NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": PREPULL_NAME}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 0,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65534,
                        "runAsGroup": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "nodeSelector": node_selector,
                    "tolerations": tolerations,
                    "initContainers": init,
                    "containers": [{
                        "name": "pause",
                        "image": pause,
                        "imagePullPolicy": "IfNotPresent",
                        "resources": resources,
                        "securityContext": security,
                    }],
                },
            },
        },
    })
}
