//! Validation with the real API server's field paths and messages.

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::quantity::quantity_of;

use super::status::{Cause, field_forbidden, field_invalid, field_not_supported, field_required};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// The message the real server uses for a forbidden pod spec change.
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn label_shape(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 label.
#[cfg(test)]
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && label_shape(s)
}

/// DNS-1123 subdomain.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(label_shape)
}

/// A valid label value (may be empty).
#[cfg(test)]
pub fn is_label_value(s: &str) -> bool {
    s.len() <= 63 && label_value_shape(s)
}

fn label_value_shape(s: &str) -> bool {
    s.is_empty()
        || (s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

fn check_name_kind(field: &str, name: &str, kind: NameKind, out: &mut Vec<Cause>) {
    let v = json!(name);
    let (shape_ok, max, msg) = match kind {
        NameKind::Subdomain => (name.split('.').all(label_shape), 253, SUBDOMAIN_MSG),
        NameKind::Label => (label_shape(name), 63, LABEL_MSG),
        NameKind::Dns1035 => (
            label_shape(name) && name.as_bytes()[0].is_ascii_lowercase(),
            63,
            DNS1035_MSG,
        ),
    };
    if name.len() > max {
        out.push(field_invalid(
            field,
            &v,
            &format!("must be no more than {max} characters"),
        ));
    }
    if !shape_ok {
        out.push(field_invalid(field, &v, msg));
    }
}

#[derive(Clone, Copy)]
enum NameKind {
    Subdomain,
    Label,
    Dns1035,
}

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
                pod_spec(spec, "spec", &["Always", "OnFailure", "Never"], &mut out);
            } else {
                out.push(field_required("spec.containers", ""));
            }
            if let (Some(old), true) = (old, out.is_empty()) {
                pod_update(obj, old, &mut out);
            }
        }
        "jobs" => {
            match obj.pointer("/spec/template/spec") {
                Some(spec) => pod_spec(
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
        "services" => service(obj, old, &mut out),
        "networkpolicies" => network_policy(obj, &mut out),
        "persistentvolumeclaims" => pvc(obj, old, &mut out),
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

/// The ipBlocks of a NetworkPolicy's peers, as upstream `ValidateIPBlock` checks them:
/// `cidr` a valid CIDR, every `except` a valid CIDR strictly inside it.
fn network_policy(obj: &Value, out: &mut Vec<Cause>) {
    const INVALID: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        let Some(rules_list) = obj
            .pointer(&format!("/spec/{rules}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for (i, rule) in rules_list.iter().enumerate() {
            let Some(peer_list) = rule.get(peers).and_then(Value::as_array) else {
                continue;
            };
            for (j, peer) in peer_list.iter().enumerate() {
                let Some(block) = peer.get("ipBlock") else {
                    continue;
                };
                let at = format!("spec.{rules}[{i}].{peers}[{j}].ipBlock");
                let cidr = block
                    .get("cidr")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if cidr.is_empty() {
                    out.push(field_required(&format!("{at}.cidr"), ""));
                    continue;
                }
                let Some(outer) = cidr.parse::<IpNet>().ok() else {
                    out.push(field_invalid(&format!("{at}.cidr"), &json!(cidr), INVALID));
                    continue;
                };
                let excepts = block.get("except").and_then(Value::as_array);
                for (k, except) in excepts.into_iter().flatten().enumerate() {
                    let path = format!("{at}.except[{k}]");
                    let text = except.as_str().unwrap_or_default();
                    match text.parse::<IpNet>() {
                        Err(_) => out.push(field_invalid(&path, except, INVALID)),
                        Ok(inner) if !outer.contains(&inner) || inner.trunc() == outer.trunc() => {
                            out.push(field_invalid(
                                &path,
                                except,
                                "must be a strict subset of `cidr`",
                            ))
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
}

fn labels(obj: &Value, out: &mut Vec<Cause>) {
    let Some(m) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in m {
        let (prefix, name) = match k.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if let Some(p) = prefix
            && !is_dns1123_subdomain(p)
        {
            out.push(field_invalid(
                "metadata.labels",
                &json!(k),
                &format!("prefix part {SUBDOMAIN_MSG}"),
            ));
        }
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
        if name.len() > 63 {
            out.push(field_invalid(
                "metadata.labels",
                &json!(k),
                "name part must be no more than 63 characters",
            ));
        } else if !name_ok {
            out.push(field_invalid(
                "metadata.labels",
                &json!(k),
                QUALIFIED_NAME_MSG,
            ));
        }
        match v.as_str() {
            Some(s) => {
                if s.len() > 63 {
                    out.push(field_invalid(
                        "metadata.labels",
                        v,
                        "must be no more than 63 characters",
                    ));
                }
                if !label_value_shape(s) {
                    out.push(field_invalid("metadata.labels", v, LABEL_VALUE_MSG));
                }
            }
            None => out.push(field_invalid("metadata.labels", v, "must be a string")),
        }
    }
}

fn pod_spec(spec: &Value, at: &str, policies: &[&str], out: &mut Vec<Cause>) {
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
fn pod_update(new: &Value, old: &Value, out: &mut Vec<Cause>) {
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

fn service(obj: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        out.push(field_not_supported(
            "spec.type",
            &json!(ty),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
    if ty != "ExternalName" && ports.is_none_or(|p| p.is_empty()) {
        out.push(field_required("spec.ports", ""));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let n = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&n) {
            out.push(field_invalid(
                &format!("spec.ports[{i}].port"),
                p.get("port").unwrap_or(&Value::Null),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
    if let Some(old) = old {
        let (o, n) = (
            old.pointer("/spec/clusterIP"),
            obj.pointer("/spec/clusterIP"),
        );
        if o.is_some() && o != n {
            out.push(field_invalid(
                "spec.clusterIPs[0]",
                n.unwrap_or(&Value::Null),
                "may not change once set",
            ));
        }
    }
}

fn pvc(obj: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
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
    for s in [&mut n, &mut o] {
        if let Some(r) = s
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
    use super::*;

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

    #[test]
    fn quantities() {
        assert_eq!(quantity_of(&json!("1Gi")), quantity_of(&json!(1073741824)));
        assert_eq!(quantity_of(&json!("500M")), quantity_of(&json!("0.5G")));
        assert!(quantity_of(&json!("2Gi")) > quantity_of(&json!("1500Mi")));
    }
}
