//! PersistentVolumeClaims: access modes, the storage request, and what may change once the
//! claim exists.

use serde_json::Value;

use crate::quantity::quantity_of;
use crate::status::{Cause, field_forbidden, field_invalid, field_required};

pub(super) fn pvc(obj: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
    let spec = obj.get("spec");
    if spec
        .and_then(|s| s.get("accessModes"))
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
    {
        out.push(field_required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    let storage = obj.pointer("/spec/resources/requests/storage");
    match storage.and_then(quantity_of) {
        None => out.push(field_required("spec.resources[storage]", "")),
        Some(q) if !q.is_positive() => out.push(field_invalid(
            "spec.resources[storage]",
            storage.unwrap_or(&Value::Null),
            "must be greater than zero",
        )),
        Some(_) => {}
    }
    let Some(old) = old else { return };
    let (Some(mut n), Some(mut o)) = (obj.get("spec").cloned(), old.get("spec").cloned()) else {
        return;
    };
    let new_q = storage.and_then(quantity_of);
    let old_q = old
        .pointer("/spec/resources/requests/storage")
        .and_then(quantity_of);
    if let (Some(nq), Some(oq)) = (new_q, old_q)
        && nq < oq
    {
        out.push(field_forbidden(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        ));
        return;
    }
    // NB: upstream lets the storage request change only on a bound claim ("lets make
    // sure storage values are same" in ValidatePersistentVolumeClaimUpdate); on an unbound
    // one a new request is a spec change like any other.
    let bound = obj.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    for s in [&mut n, &mut o] {
        if bound
            && let Some(r) = s
                .pointer_mut("/resources/requests")
                .and_then(Value::as_object_mut)
        {
            r.remove("storage");
        }
        if let Some(m) = s.as_object_mut() {
            m.remove("volumeAttributesClassName");
        }
    }
    if n != o {
        out.push(field_forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_of(&json!("1Gi")), quantity_of(&json!(1073741824)));
        assert_eq!(quantity_of(&json!("500M")), quantity_of(&json!("0.5G")));
        assert!(quantity_of(&json!("2Gi")) > quantity_of(&json!("1500Mi")));
    }
}
