//! The entry point: which checks apply to which kind, plus object names and Leases.

use serde_json::{Value, json};

use super::names::{NameKind, check_name_kind, labels};
use super::{claim, network, pod, service};
use crate::status::{Cause, field_invalid, field_required};

/// Validate an object of a resource (by plural). `old` is the live object on update.
pub fn validate(plural: &str, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        out.push(field_required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        let kind = match plural {
            "namespaces" => NameKind::Label,
            "services" => NameKind::Dns1035,
            _ => NameKind::Subdomain,
        };
        check_name_kind("metadata.name", name, kind, &mut out);
    }
    labels(obj, &mut out);
    match plural {
        "pods" => {
            if let Some(spec) = obj.get("spec") {
                pod::pod_spec(spec, "spec", &["Always", "OnFailure", "Never"], &mut out);
            } else {
                out.push(field_required("spec.containers", ""));
            }
            if let (Some(old), true) = (old, out.is_empty()) {
                pod::pod_update(obj, old, &mut out);
            }
        }
        "jobs" => {
            match obj.pointer("/spec/template/spec") {
                Some(spec) => pod::pod_spec(
                    spec,
                    "spec.template.spec",
                    &["OnFailure", "Never"],
                    &mut out,
                ),
                None => out.push(field_required("spec.template.spec.containers", "")),
            }
            if let Some(old) = old
                && old.pointer("/spec/template") != obj.pointer("/spec/template")
            {
                out.push(field_invalid(
                    "spec.template",
                    &json!("core.PodTemplateSpec"),
                    "field is immutable",
                ));
            }
        }
        "services" => service::service(obj, old, &mut out),
        "networkpolicies" => network::network_policy(obj, &mut out),
        "persistentvolumeclaims" => claim::pvc(obj, old, &mut out),
        "leases" => lease(obj, &mut out),
        _ => {}
    }
    out
}

/// A Lease's spec, as upstream `ValidateLeaseSpec` checks it: the duration, when set,
/// positive; the transitions, when set, not negative.
fn lease(obj: &Value, out: &mut Vec<Cause>) {
    if let Some(d) = obj.pointer("/spec/leaseDurationSeconds")
        && d.as_i64().is_none_or(|d| d <= 0)
    {
        out.push(field_invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = obj.pointer("/spec/leaseTransitions")
        && t.as_i64().is_none_or(|t| t < 0)
    {
        out.push(field_invalid(
            "spec.leaseTransitions",
            t,
            "must be greater than or equal to 0",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::names::{is_dns1123_label, is_dns1123_subdomain, is_label_value};

    #[test]
    fn network_policy_ip_blocks_are_checked_like_upstream() {
        let policy = |block: Value| {
            json!({"metadata": {"name": "np"}, "spec": {"podSelector": {},
                   "egress": [{"to": [{"ipBlock": block}]}]}})
        };
        let messages = |block: Value| -> Vec<String> {
            validate("networkpolicies", &policy(block), None)
                .into_iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect()
        };
        assert!(
            messages(
                json!({"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "10.96.0.0/12"]})
            )
            .is_empty()
        );
        let got = messages(
            json!({"cidr": "10.0.0.0/24", "except": ["10.0.0.0/24", "192.168.0.0/24", "x"]}),
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"10.0.0.0/24\": must be a strict subset of `cidr`"), "{got:?}");
        assert!(got[1].contains("strict subset"), "{got:?}");
        assert!(got[2].contains("must be a valid CIDR value"), "{got:?}");
        assert_eq!(
            messages(json!({"cidr": "300.0.0.0/8"})).len(),
            1,
            "an invalid cidr"
        );
    }

    #[test]
    fn names_and_labels() {
        assert!(is_dns1123_subdomain("code-server-a.b"));
        assert!(!is_dns1123_subdomain("Bad_Name"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_label_value("John.Doe_1"));
        assert!(!is_label_value("-x"));
        let errs = validate(
            "configmaps",
            &json!({"metadata": {"name": "ok", "labels": {"a": "b c"}}}),
            None,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.labels");
        assert!(
            errs[0]
                .message
                .starts_with("Invalid value: \"b c\": a valid label")
        );
    }
}
