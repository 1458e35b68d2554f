//! The admission plugins a PersistentVolumeClaim write passes after validation, as the
//! real API server runs them (both skip subresources):
//!
//! - LimitRanger (`plugin/pkg/admission/limitranger/admission.go`,
//!   `PersistentVolumeClaimValidateLimitFunc`): the storage request within the `min` and
//!   `max` of every LimitRange of `type: PersistentVolumeClaim` in the namespace; on update
//!   only a changed request is checked ("maximum storage usage per PersistentVolumeClaim
//!   is 100Gi, but request is 200Gi").
//! - PersistentVolumeClaimResize
//!   (`plugin/pkg/admission/storage/persistentvolume/resize/admission.go`): a grown request
//!   needs a bound claim ("Only bound persistent volume claims can be expanded") whose
//!   StorageClass, named the same before and after, exists and sets
//!   `allowVolumeExpansion: true` ("only dynamically provisioned pvc can be resized and the
//!   storageclass that provisions the pvc must support resize").

use serde_json::Value;

use crate::quantity::quantity_of;
use crate::resources::{ResourceDef, ids};
use crate::status::ApiError;
use crate::store::Store;

/// The beta annotation that named a claim's class before `spec.storageClassName`
/// (upstream's `GetPersistentVolumeClaimClass` reads it first).
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// Admits the write of claim `ns`/`name` from `old` (none on create) to `new`.
pub(crate) fn admit_claim(
    store: &Store,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    limit_ranger(store, ns, old, new).map_err(|why| ApiError::forbidden(def, name, &why))?;
    if let Some(old) = old {
        resize(store, old, new).map_err(|why| ApiError::forbidden(def, name, why))?;
    }
    Ok(())
}

fn request(claim: &Value) -> Option<&Value> {
    claim.pointer("/spec/resources/requests/storage")
}

fn limit_ranger(store: &Store, ns: &str, old: Option<&Value>, new: &Value) -> Result<(), String> {
    let Some(wanted) = request(new) else {
        return Ok(());
    };
    // NB: a stored request is valid as stored: only a changed one is checked again.
    if old.and_then(request).and_then(quantity_of) == quantity_of(wanted) {
        return Ok(());
    }
    let Some(amount) = quantity_of(wanted) else {
        return Ok(());
    };
    let shown = amount.canonical();
    let mut errors = Vec::new();
    for (_, stored) in store.iter(ids::LIMITRANGES, Some(ns)) {
        let range = stored.value();
        let limits = range
            .pointer("/spec/limits")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for limit in limits
            .iter()
            .filter(|l| l["type"] == "PersistentVolumeClaim")
        {
            if let Some(min) = limit.pointer("/min/storage").and_then(quantity_of)
                && amount < min
            {
                errors.push(format!(
                    "minimum storage usage per PersistentVolumeClaim is {}, but request is {shown}",
                    min.canonical()
                ));
            }
            if let Some(max) = limit.pointer("/max/storage").and_then(quantity_of)
                && amount > max
            {
                errors.push(format!(
                    "maximum storage usage per PersistentVolumeClaim is {}, but request is {shown}",
                    max.canonical()
                ));
            }
        }
    }
    // NB: upstream aggregates the errors (`utilerrors.NewAggregate`): one is shown as it
    // is, more in brackets.
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

fn resize(store: &Store, old: &Value, new: &Value) -> Result<(), &'static str> {
    let (Some(before), Some(after)) = (
        request(old).and_then(quantity_of),
        request(new).and_then(quantity_of),
    ) else {
        return Ok(());
    };
    if after <= before {
        return Ok(());
    }
    if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
        return Err("Only bound persistent volume claims can be expanded");
    }
    let (class, old_class) = (class_of(new), class_of(old));
    let allowed = !class.is_empty()
        && class == old_class
        && store
            .get(ids::STORAGECLASSES, "", class)
            .is_some_and(|sc| sc.value()["allowVolumeExpansion"] == Value::Bool(true));
    if allowed {
        Ok(())
    } else {
        Err(
            "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        )
    }
}

/// The claim's class: the beta annotation if set, else `spec.storageClassName`, else "".
fn class_of(claim: &Value) -> &str {
    claim
        .pointer(&format!(
            "/metadata/annotations/{}",
            BETA_CLASS_ANNOTATION.replace('/', "~1")
        ))
        .or_else(|| claim.pointer("/spec/storageClassName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::def;

    fn claim(size: &str, phase: &str, class: &str) -> Value {
        json!({"metadata": {"name": "c", "namespace": "ns"},
               "spec": {"storageClassName": class, "resources": {"requests": {"storage": size}}},
               "status": {"phase": phase}})
    }

    fn store() -> Store {
        let mut store = Store::new();
        store.put(
            ids::STORAGECLASSES,
            "",
            "standard",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": "standard"}, "provisioner": "p", "allowVolumeExpansion": true}),
        );
        store.put(
            ids::STORAGECLASSES,
            "",
            "fixed",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": "fixed"}, "provisioner": "p"}),
        );
        store.put(
            ids::LIMITRANGES,
            "ns",
            "limits",
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "namespace": "ns"},
                   "spec": {"limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "100Gi"}, "min": {"storage": "1Gi"}}]}}),
        );
        store
    }

    fn admit(old: Option<&Value>, new: &Value) -> Result<(), String> {
        admit_claim(&store(), def(ids::PVCS), "ns", "c", old, new).map_err(|e| e.message)
    }

    #[test]
    fn a_claim_grows_only_bound_within_its_limits_and_where_its_class_allows_it() {
        let bound = claim("10Gi", "Bound", "standard");
        assert_eq!(
            admit(Some(&bound), &claim("20Gi", "Bound", "standard")),
            Ok(())
        );
        assert_eq!(
            admit(Some(&bound), &claim("200Gi", "Bound", "standard")),
            Err("persistentvolumeclaims \"c\" is forbidden: maximum storage usage per PersistentVolumeClaim is 100Gi, but request is 200Gi".to_owned())
        );
        let fixed = claim("10Gi", "Bound", "fixed");
        let refused = admit(Some(&fixed), &claim("20Gi", "Bound", "fixed")).unwrap_err();
        assert!(
            refused.ends_with("the storageclass that provisions the pvc must support resize"),
            "{refused}"
        );
        let unclassed = claim("10Gi", "Bound", "");
        assert!(admit(Some(&unclassed), &claim("20Gi", "Bound", "")).is_err());
        let pending = claim("10Gi", "Pending", "standard");
        assert_eq!(
            admit(Some(&pending), &claim("20Gi", "Pending", "standard")),
            Err("persistentvolumeclaims \"c\" is forbidden: Only bound persistent volume claims can be expanded".to_owned())
        );
        // Creates are checked against the limits; an unchanged request is not again.
        assert!(admit(None, &claim("500Mi", "Pending", "standard")).is_err());
        let over = claim("200Gi", "Bound", "standard");
        assert_eq!(admit(Some(&over), &over), Ok(()));
        assert_eq!(admit(Some(&fixed), &fixed), Ok(()));
    }
}
