//! The `restricted` Pod Security Standard (the level `k8s/00-namespace.yaml` enforces on
//! the instances namespace), for the parts a pod spec controls.
//!
//! The API server refuses a pod that breaks it, so a template that renders one would
//! fail every provision in a real cluster while passing against a cluster without Pod
//! Security Admission. Reference: kubernetes.io/docs/concepts/security/pod-security-standards.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, SecurityContext};
use serde_json::Value;

/// Volume sources `restricted` allows.
const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Every violation of `restricted` in `spec`, each naming the container or volume.
pub fn restricted_violations(spec: &PodSpec) -> Vec<String> {
    let mut found = Vec::new();
    let pod = spec.security_context.clone().unwrap_or_default();
    for (what, on) in [
        ("hostNetwork", spec.host_network),
        ("hostPID", spec.host_pid),
        ("hostIPC", spec.host_ipc),
    ] {
        if on == Some(true) {
            found.push(format!("{what} is true"));
        }
    }
    if pod.run_as_user == Some(0) {
        found.push("pod runAsUser is 0".to_owned());
    }
    if pod
        .seccomp_profile
        .as_ref()
        .is_some_and(|p| !allowed_seccomp(&p.type_))
    {
        found.push("pod seccompProfile must be RuntimeDefault or Localhost".to_owned());
    }
    for volume in spec.volumes.iter().flatten() {
        let json = serde_json::to_value(volume).unwrap_or(Value::Null);
        for source in json.as_object().into_iter().flat_map(|m| m.keys()) {
            if source != "name" && !ALLOWED_VOLUMES.contains(&source.as_str()) {
                found.push(format!(
                    "volume {}: {source} volumes are not allowed",
                    volume.name
                ));
            }
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for container in containers {
        found.extend(
            container_violations(container, &pod)
                .into_iter()
                .map(|v| format!("container {}: {v}", container.name)),
        );
    }
    found
}

fn allowed_seccomp(kind: &str) -> bool {
    matches!(kind, "RuntimeDefault" | "Localhost")
}

fn container_violations(container: &Container, pod: &PodSecurityContext) -> Vec<String> {
    let mut found = Vec::new();
    let own = container.security_context.clone().unwrap_or_default();
    let SecurityContext {
        privileged,
        allow_privilege_escalation,
        capabilities,
        ..
    } = &own;
    if *privileged == Some(true) {
        found.push("privileged".to_owned());
    }
    if *allow_privilege_escalation != Some(false) {
        found.push("allowPrivilegeEscalation must be false".to_owned());
    }
    let capabilities = capabilities.clone().unwrap_or_default();
    if !capabilities.drop.iter().flatten().any(|c| c == "ALL") {
        found.push("capabilities must drop ALL".to_owned());
    }
    for added in capabilities
        .add
        .iter()
        .flatten()
        .filter(|c| *c != "NET_BIND_SERVICE")
    {
        found.push(format!("capability {added} may not be added"));
    }
    let non_root = own.run_as_non_root.or(pod.run_as_non_root);
    if non_root != Some(true) {
        found.push("runAsNonRoot must be true (pod or container)".to_owned());
    }
    if own.run_as_user == Some(0) {
        found.push("runAsUser is 0".to_owned());
    }
    let seccomp = own
        .seccomp_profile
        .as_ref()
        .or(pod.seccomp_profile.as_ref());
    if !seccomp.is_some_and(|p| allowed_seccomp(&p.type_)) {
        found.push(
            "seccompProfile must be RuntimeDefault or Localhost (pod or container)".to_owned(),
        );
    }
    for port in container.ports.iter().flatten() {
        if port.host_port.is_some_and(|p| p != 0) {
            found.push(format!("hostPort {:?}", port.host_port));
        }
    }
    found
}
