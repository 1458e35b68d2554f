//! Growing a workspace volume (`resizeStorage`): the PVC's storage request, and nothing
//! else, is patched to a larger size, within the largest size the instance may have.
//!
//! The largest size is the smaller of the instance's `storage.maxSize` (its values:
//! values.yaml with its profile's values merged in) and the smallest `max.storage` of
//! the instances namespace's LimitRanges of `type: PersistentVolumeClaim` (which the API
//! server's LimitRanger would enforce anyway; `k8s/11-capacity.yaml` ships one). With
//! neither, volumes cannot grow.
//!
//! What the API server would refuse is refused first, with the reason, and nothing is
//! written: a smaller or equal size (`ValidatePersistentVolumeClaimUpdate`: "field can not
//! be less than previous value"), a volume that is not bound, or one whose StorageClass
//! does not set `allowVolumeExpansion: true` (the `PersistentVolumeClaimResize`
//! admission plugin, `plugin/pkg/admission/storage/persistentvolume/resize/admission.go`:
//! "only dynamically provisioned pvc can be resized and the storageclass that provisions
//! the pvc must support resize"; a claim without a class name never can).
//!
//! The write is a merge patch under its own field manager ([`FIELD_MANAGER`]); the
//! templates' apply never shrinks it back: the plan applies a PVC with at least its live
//! request (`plan::plan`).

use k8s_openapi::api::{
    core::v1::{LimitRange, PersistentVolumeClaim},
    storage::v1::StorageClass,
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

use super::{Error, Reconciler, Result, cached::Written, live::identity, reason, with_retry};
use crate::{
    instance::{Instance, record, storage},
    quantity::{self, Quantity},
    render,
    values::Owner,
};

/// The field manager of the storage request a resize writes.
pub const FIELD_MANAGER: &str = "codeserver-service-resize";
/// The longest `size` argument taken (a quantity such as `20Gi` is a few characters).
pub const MAX_SIZE_LEN: usize = 32;

/// The largest size the instance may have, and where that limit comes from (for people).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Maximum {
    size: Quantity,
    source: String,
}

impl Reconciler {
    /// Grows the workspace volume of the caller's instance `id` to `size` (a Kubernetes
    /// quantity, such as `20Gi`): only larger, at most the instance's maximum. Answers the
    /// instance as it is then: `storage.requested` is the new size; `storage.capacity`
    /// follows once the volume has grown, after `storage.resizePending` when its file
    /// system waits for the next start.
    pub async fn resize_storage(&self, owner: &Owner, id: &str, size: &str) -> Result<Instance> {
        let wanted = parse_size(size)?;
        let (_, key) = identity(owner)?;
        let guard = self.locks.lock(&key).await;
        let record = self.owned_record(owner, id).await?;
        let Some(current) = storage::requested(&record) else {
            return Err(Error::Instance(
                "the workspace volume has no storage request".to_owned(),
            ));
        };
        if wanted <= current {
            return Err(Error::BadInput {
                argument: "size",
                reason: format!(
                    "storage can only grow: the workspace has {}; got {}",
                    current.to_binary_si(),
                    wanted.to_binary_si()
                ),
            });
        }
        let maximum = self.maximum(owner, &record).await?;
        if wanted > maximum.size {
            return Err(Error::BadInput {
                argument: "size",
                reason: format!(
                    "at most {} ({}); got {}",
                    maximum.size.to_binary_si(),
                    maximum.source,
                    wanted.to_binary_si()
                ),
            });
        }
        let phase = record
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        if phase != "Bound" {
            return Err(Error::CannotGrow(format!(
                "the workspace volume is {phase}, not bound yet; it can grow once the instance \
                 has started"
            )));
        }
        self.check_expandable(&record).await?;
        let name = record.metadata.name.clone().unwrap_or_default();
        self.write_request(&name, &wanted).await?;
        tracing::info!(instance = id, from = %current, to = %wanted, "grew the workspace volume");
        drop(guard);
        self.get(owner, id).await
    }

    /// The largest size the instance recorded on `record` may have.
    async fn maximum(&self, owner: &Owner, record: &PersistentVolumeClaim) -> Result<Maximum> {
        let owner = record::caller(owner, Some(record));
        let repos = record::repos(Some(record));
        // NB: the values the instance renders with: its recorded profile's (the default
        // profile's when it has none, or when that one is gone), as a start builds them.
        let templates = self.templates.get();
        let profile = templates
            .profiles()
            .effective(record::profile(record))
            .name
            .clone();
        let values = render::build_profile_values(
            &templates,
            &self.settings,
            &owner,
            &repos,
            Some(&profile),
            &[],
        )?;
        // NB: the values were checked when the template set was loaded.
        let from_values = values
            .storage
            .max_size
            .as_deref()
            .and_then(|q| q.parse::<Quantity>().ok())
            .map(|size| Maximum {
                size,
                source: "storage.maxSize of the instance's values".to_owned(),
            });
        let from_limits = self.limit_range_maximum().await?;
        [from_values, from_limits]
            .into_iter()
            .flatten()
            .min_by_key(|m| m.size)
            .ok_or_else(|| {
                Error::CannotGrow(
                    "no maximum size is set (storage.maxSize in values.yaml, or a LimitRange \
                     max for PersistentVolumeClaims in the instances namespace), so workspaces \
                     cannot grow"
                        .to_owned(),
                )
            })
    }

    /// The smallest `max.storage` of the instances namespace's LimitRanges for
    /// PersistentVolumeClaims, as the LimitRanger admission plugin enforces each of them
    /// (`PersistentVolumeClaimValidateLimitFunc`).
    async fn limit_range_maximum(&self) -> Result<Option<Maximum>> {
        let api: Api<LimitRange> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let lp = ListParams::default();
        let ranges = with_retry("list LimitRanges", || api.list(&lp))
            .await
            .map_err(|e| Error::kube("read the instances namespace's LimitRanges", e))?;
        Ok(ranges
            .items
            .iter()
            .flat_map(|range| {
                let name = range.metadata.name.clone().unwrap_or_default();
                range
                    .spec
                    .iter()
                    .flat_map(|spec| spec.limits.iter())
                    .filter(|limit| limit.type_ == "PersistentVolumeClaim")
                    .filter_map(|limit| limit.max.as_ref()?.get("storage")?.0.parse().ok())
                    .map(move |size| Maximum {
                        size,
                        source: format!("the LimitRange {name} of the instances namespace"),
                    })
            })
            .min_by_key(|m| m.size))
    }

    /// Refuses a volume whose StorageClass does not allow expansion, as the
    /// PersistentVolumeClaimResize admission plugin would (its `allowResize`): the claim
    /// must name a class (the DefaultStorageClass admission plugin wrote the default
    /// class's name on it when it was created, if there was one), the class must exist and
    /// set `allowVolumeExpansion: true`.
    async fn check_expandable(&self, record: &PersistentVolumeClaim) -> Result<()> {
        let class = record
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            .unwrap_or_default();
        if class.is_empty() {
            return Err(Error::CannotGrow(
                "the workspace volume has no StorageClass; only a dynamically provisioned \
                 volume can grow"
                    .to_owned(),
            ));
        }
        let api: Api<StorageClass> = Api::all(self.client.clone());
        let found = with_retry("read the StorageClass", || api.get_opt(class))
            .await
            .map_err(|e| Error::kube("read the workspace volume's StorageClass", e))?;
        match found {
            None => Err(Error::CannotGrow(format!(
                "the workspace volume's StorageClass {class} does not exist"
            ))),
            Some(sc) if sc.allow_volume_expansion != Some(true) => Err(Error::CannotGrow(format!(
                "the workspace volume's StorageClass {class} does not allow volume \
                     expansion (allowVolumeExpansion is not true); an admin can allow it"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Patches the storage request of the PVC `name` to `size` (and nothing else); later
    /// reads show it.
    async fn write_request(&self, name: &str, size: &Quantity) -> Result<()> {
        let patch = json!({"spec": {"resources": {"requests": {"storage": size.canonical()}}}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let api = self.pvcs();
        let what = "grow the workspace volume";
        let merge = Patch::Merge(&patch);
        let pvc = match with_retry(what, || api.patch(name, &params, &merge)).await {
            Ok(pvc) => pvc,
            // NB: the API server's refusals name quotas, policies and the service
            // account: they go to the log, the caller gets the gist.
            Err(kube::Error::Api(s)) if matches!(s.code, 403 | 422) => {
                tracing::warn!(pvc = name, reason = %reason(&kube::Error::Api(s)), "the cluster refused to grow a workspace volume");
                return Err(Error::CannotGrow(
                    "the cluster refused to grow the volume (a storage quota, a LimitRange or \
                     an admission policy); nothing was changed"
                        .to_owned(),
                ));
            }
            Err(e) => return Err(Error::kube(what, e)),
        };
        if let Some(version) = pvc.metadata.resource_version {
            let ns = &self.settings.namespace;
            self.written("v1/PersistentVolumeClaim", ns, name, Written::At(version))
                .await;
        }
        Ok(())
    }
}

/// `size`, a positive whole number of bytes as a Kubernetes quantity (`20Gi`, `50G`).
fn parse_size(size: &str) -> Result<Quantity> {
    let bad = |reason: String| Error::BadInput {
        argument: "size",
        reason,
    };
    if size.is_empty() || size.len() > MAX_SIZE_LEN {
        return Err(bad(format!(
            "a size such as 20Gi, at most {MAX_SIZE_LEN} characters"
        )));
    }
    // NB: the argument is not echoed back: the answer says what is expected.
    let wanted = quantity::parse_positive(size).map_err(|_| {
        bad("not a size: expected a positive quantity such as 20Gi or 50G".to_owned())
    })?;
    if Quantity::from_units(wanted.ceil_units()) != wanted {
        return Err(bad("a size is a whole number of bytes".to_owned()));
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_positive_whole_quantities() {
        assert_eq!(parse_size("20Gi").unwrap().to_binary_si(), "20Gi");
        assert_eq!(
            parse_size("21474836480").unwrap(),
            parse_size("20Gi").unwrap()
        );
        assert_eq!(parse_size("20Gi").unwrap().canonical(), "20Gi");
        for bad in [
            "", "0", "-1Gi", "lots", "1.5", "500m", "20 Gi", "1e400", "20GB",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadInput {
                        argument: "size",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        assert!(parse_size(&"9".repeat(MAX_SIZE_LEN + 1)).is_err());
    }
}
