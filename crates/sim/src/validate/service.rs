//! Services, as upstream `ValidateService` checks the parts used here: the type, the ports
//! (`validateServicePort` and the duplicate port/protocol pass) and an unchanged clusterIP.

use serde_json::{Value, json};

use super::names::{NameKind, check_name_kind};
use crate::status::{Cause, field_invalid, field_not_supported, field_required};

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// The protocols a Service port may use, sorted as upstream lists them.
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

pub(super) fn service(obj: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
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
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ty != "ExternalName" && ports.is_empty() {
        out.push(field_required("spec.ports", ""));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        port(
            p,
            &format!("spec.ports[{i}]"),
            ports.len() > 1,
            &mut names,
            out,
        );
    }
    duplicate_ports(ports, out);
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

/// One port (upstream `validateServicePort`): a name (required when there are several,
/// a DNS label, unique), the port number, the protocol and the target port.
fn port<'a>(
    p: &'a Value,
    at: &str,
    require_name: bool,
    names: &mut Vec<&'a str>,
    out: &mut Vec<Cause>,
) {
    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        if require_name {
            out.push(field_required(&format!("{at}.name"), ""));
        }
    } else {
        check_name_kind(&format!("{at}.name"), name, NameKind::Label, out);
        if names.contains(&name) {
            out.push(duplicate(&format!("{at}.name"), &format!("{name:?}")));
        } else {
            names.push(name);
        }
    }
    let number = p.get("port").unwrap_or(&Value::Null);
    if !number.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
        out.push(field_invalid(&format!("{at}.port"), number, PORT_RANGE));
    }
    match p.get("protocol").and_then(Value::as_str) {
        None | Some("") => out.push(field_required(&format!("{at}.protocol"), "")),
        Some(proto) if !PROTOCOLS.contains(&proto) => {
            out.push(field_not_supported(
                &format!("{at}.protocol"),
                &json!(proto),
                PROTOCOLS,
            ));
        }
        Some(_) => {}
    }
    if let Some(target) = p.get("targetPort") {
        target_port(target, &format!("{at}.targetPort"), out);
    }
}

/// Upstream `ValidatePortNumOrName`: a number in range or an IANA service name.
fn target_port(target: &Value, at: &str, out: &mut Vec<Cause>) {
    match target {
        Value::String(name) => {
            for msg in port_name_problems(name) {
                out.push(field_invalid(at, target, msg));
            }
        }
        other => {
            if !other.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                out.push(field_invalid(at, other, PORT_RANGE));
            }
        }
    }
}

/// Upstream `IsValidPortName` (an IANA_SVC_NAME).
fn port_name_problems(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if name.is_empty() || name.len() > 15 {
        out.push("must be no more than 15 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        out.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        out.push("must not begin or end with a hyphen");
    }
    out
}

/// The second pass of upstream `ValidateService`: no two ports share port and protocol.
fn duplicate_ports(ports: &[Value], out: &mut Vec<Cause>) {
    let mut seen: Vec<(i64, &str)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let number = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        let protocol = p
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if seen.contains(&(number, protocol)) {
            // NB: upstream reports the internal `core.ServicePort` key, printed with %#v.
            let key = format!(
                "core.ServicePort{{Name:\"\", Protocol:{protocol:?}, AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
            );
            out.push(duplicate(&format!("spec.ports[{i}]"), &key));
        } else {
            seen.push((number, protocol));
        }
    }
}

/// field.Duplicate, with the value already printed as Go prints it.
fn duplicate(field: &str, shown: &str) -> Cause {
    Cause {
        reason: "FieldValueDuplicate".into(),
        message: format!("Duplicate value: {shown}"),
        field: field.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(ports: Value) -> Vec<String> {
        let svc = json!({"metadata": {"name": "s"}, "spec": {"ports": ports}});
        let mut out = Vec::new();
        service(&svc, None, &mut out);
        out.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn ports_are_checked_like_upstream() {
        assert!(
            problems(json!([
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": "metrics"}
            ]))
            .is_empty()
        );
        assert_eq!(
            problems(json!([
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "http", "port": 81, "protocol": "TCP", "targetPort": 81}
            ])),
            ["spec.ports[1].name: Duplicate value: \"http\""]
        );
        assert_eq!(
            problems(json!([
                {"port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "Bad_Name", "port": 70000, "protocol": "ICMP", "targetPort": "--1"}
            ])),
            [
                "spec.ports[0].name: Required value".to_string(),
                format!("spec.ports[1].name: Invalid value: \"Bad_Name\": {}", super::super::names::LABEL_MSG),
                "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive".to_string(),
                "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".to_string(),
                "spec.ports[1].targetPort: Invalid value: \"--1\": must contain at least one letter (a-z)".to_string(),
                "spec.ports[1].targetPort: Invalid value: \"--1\": must not contain consecutive hyphens".to_string(),
                "spec.ports[1].targetPort: Invalid value: \"--1\": must not begin or end with a hyphen".to_string(),
            ]
        );
        assert_eq!(
            problems(json!([
                {"name": "a", "port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "b", "port": 80, "protocol": "UDP", "targetPort": 80},
                {"name": "c", "port": 80, "protocol": "TCP", "targetPort": 81}
            ])),
            [
                "spec.ports[2]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
            ]
        );
    }
}
