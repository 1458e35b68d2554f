//! Pods and job pod templates: containers, ports, volumes, restart policy, and which fields
//! of a pod may change.

use serde_json::Value;

use super::names::{NameKind, check_name_kind};
use crate::status::{Cause, field_forbidden, field_invalid, field_not_supported, field_required};

/// The message the real server uses for a forbidden pod spec change.
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub(super) fn pod_spec(spec: &Value, at: &str, policies: &[&str], out: &mut Vec<Cause>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        out.push(field_required(&format!("{at}.containers"), ""));
    }
    let volumes: Vec<&str> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|vs| vs.iter().filter_map(|v| v.get("name")?.as_str()).collect())
        .unwrap_or_default();
    let mut seen: Vec<&str> = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        if seen.contains(v) {
            out.push(Cause {
                reason: "FieldValueDuplicate".into(),
                message: format!("Duplicate value: {v:?}"),
                field: format!("{at}.volumes[{i}].name"),
            });
        }
        seen.push(v);
    }
    let mut names: Vec<&str> = Vec::new();
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in cs.iter().enumerate() {
            let cat = format!("{at}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                out.push(field_required(&format!("{cat}.name"), ""));
            } else {
                check_name_kind(&format!("{cat}.name"), name, NameKind::Label, out);
                if names.contains(&name) {
                    out.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: {name:?}"),
                        field: format!("{cat}.name"),
                    });
                }
                names.push(name);
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                out.push(field_required(&format!("{cat}.image"), ""));
            }
            if let Some(ports) = c.get("ports").and_then(Value::as_array) {
                for (j, p) in ports.iter().enumerate() {
                    let n = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                    if !(1..=65535).contains(&n) {
                        out.push(field_invalid(
                            &format!("{cat}.ports[{j}].containerPort"),
                            p.get("containerPort").unwrap_or(&Value::Null),
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                    if let Some(proto) = p.get("protocol")
                        && !matches!(proto.as_str(), Some("TCP" | "UDP" | "SCTP"))
                    {
                        out.push(field_not_supported(
                            &format!("{cat}.ports[{j}].protocol"),
                            proto,
                            &["SCTP", "TCP", "UDP"],
                        ));
                    }
                }
            }
            if let Some(mounts) = c.get("volumeMounts").and_then(Value::as_array) {
                for (j, m) in mounts.iter().enumerate() {
                    let vn = m.get("name").and_then(Value::as_str).unwrap_or_default();
                    if !volumes.contains(&vn) {
                        out.push(Cause {
                            reason: "FieldValueNotFound".into(),
                            message: format!("Not found: {vn:?}"),
                            field: format!("{cat}.volumeMounts[{j}].name"),
                        });
                    }
                }
            }
        }
    }
    if let Some(p) = spec.get("restartPolicy")
        && !p.as_str().is_some_and(|s| policies.contains(&s))
    {
        if policies.len() == 2 {
            out.push(field_not_supported(
                &format!("{at}.restartPolicy"),
                p,
                policies,
            ));
        } else {
            out.push(field_not_supported(
                &format!("{at}.restartPolicy"),
                p,
                &["Always", "Never", "OnFailure"],
            ));
        }
    }
}

/// Only container and init container images (and a few scheduling fields) may change.
pub(super) fn pod_update(new: &Value, old: &Value, out: &mut Vec<Cause>) {
    let (Some(ns), Some(os)) = (new.get("spec"), old.get("spec")) else {
        return;
    };
    let mut masked = ns.clone();
    for list in ["containers", "initContainers"] {
        let old_images: Vec<Value> = os
            .get(list)
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| c.get("image").cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(cs) = masked.get_mut(list).and_then(Value::as_array_mut)
            && cs.len() == old_images.len()
        {
            for (c, img) in cs.iter_mut().zip(old_images) {
                if let Some(m) = c.as_object_mut() {
                    m.insert("image".into(), img);
                }
            }
        }
    }
    if let Some(m) = masked.as_object_mut() {
        for k in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            match os.get(k) {
                Some(v) => {
                    m.insert(k.to_string(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
    }
    if masked != *os {
        out.push(field_forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
}
