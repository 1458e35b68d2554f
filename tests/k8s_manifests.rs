//! The deployment manifests in `k8s/` are valid for a real cluster and agree with each
//! other and with the service's configuration.
//!
//! Every document parses; Kubernetes kinds deserialize into their `k8s-openapi` types
//! with no unknown field; Istio kinds use only fields their CRDs define; and the
//! cross-references a reader would check by hand (names, selectors, ports, the JWT
//! issuer) are checked here.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Container, Namespace, PodSpec, Secret, Service},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
use serde_json::{Value, json};
use support::{
    Document, find, istio,
    known_fields::{self, Checked, strict},
    manifests,
    rbac::{self, Grant},
};

const SERVICE_NAMESPACE: &str = "dev-platform";
const INSTANCES_NAMESPACE: &str = "codeserver-instances";

/// Kinds that live in a namespace, among those `k8s/` uses.
const CLUSTER_SCOPED: &[&str] = &["Namespace", "ClusterRole", "ClusterRoleBinding"];

fn typed<T: serde::de::DeserializeOwned>(document: &Document) -> T {
    strict::<T>(&document.value).unwrap_or_else(|err| panic!("{}: {err}", document.describe()))
}

fn config() -> BTreeMap<String, String> {
    let documents = manifests();
    let config: ConfigMap = typed(find(&documents, "ConfigMap", "codeserver-service-config"));
    config.data.unwrap_or_default()
}

fn deployment() -> Deployment {
    typed(find(&manifests(), "Deployment", "codeserver-service"))
}

fn pod_spec(deployment: &Deployment) -> PodSpec {
    deployment
        .spec
        .template
        .spec
        .clone()
        .expect("the Deployment has a pod template spec")
}

fn pod_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|meta| meta.labels.clone())
        .expect("the pod template has labels")
}

fn main_container(spec: &PodSpec) -> &Container {
    spec.containers
        .iter()
        .find(|c| c.name == "codeserver-service")
        .expect("a container named codeserver-service")
}

/// `matchLabels` selects `labels` when every pair is present.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

fn is_dns_1123_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[test]
fn every_document_parses_and_names_itself() {
    let documents = manifests();
    let files: BTreeSet<&str> = documents.iter().map(|d| d.file.as_str()).collect();
    for expected in [
        "00-namespace.yaml",
        "01-configmap.yaml",
        "02-secret.yaml",
        "03-rbac.yaml",
        "04-deployment.yaml",
        "05-service.yaml",
        "06-istio-config.yaml",
        "07-pdb.yaml",
        "08-networkpolicy.yaml",
    ] {
        assert!(
            files.contains(expected),
            "k8s/{expected} is missing or empty"
        );
    }

    let mut seen = BTreeSet::new();
    for document in &documents {
        let what = document.describe();
        assert!(!document.api_version().is_empty(), "{what}: no apiVersion");
        assert!(!document.kind().is_empty(), "{what}: no kind");
        assert!(
            is_dns_1123_subdomain(document.name()),
            "{what}: name is not DNS-1123"
        );
        let namespace = document.namespace();
        if CLUSTER_SCOPED.contains(&document.kind()) {
            assert_eq!(
                namespace, None,
                "{what}: a cluster-scoped kind has a namespace"
            );
        } else {
            // NB: an object without a namespace lands in whatever namespace the kubectl
            // context points at; every namespaced object says where it goes.
            assert!(
                matches!(namespace, Some(SERVICE_NAMESPACE | INSTANCES_NAMESPACE)),
                "{what}: namespace {namespace:?} is neither {SERVICE_NAMESPACE} nor {INSTANCES_NAMESPACE}"
            );
        }
        let key = (
            document.api_version().to_owned(),
            document.kind().to_owned(),
            namespace.map(str::to_owned),
            document.name().to_owned(),
        );
        assert!(seen.insert(key), "{what}: defined twice");
    }
}

#[test]
fn every_kind_has_only_fields_its_schema_knows() {
    let mut problems = Vec::new();
    for document in manifests() {
        let what = document.describe();
        if let Some(crd) = istio::check_for(&document.value) {
            match crd {
                Ok(crd) => problems.extend(
                    istio::problems(crd, &document.value)
                        .into_iter()
                        .map(|p| format!("{what}: {p}")),
                ),
                Err(err) => problems.push(format!("{what}: {err}")),
            }
            continue;
        }
        match known_fields::check(&document.value) {
            Ok(Checked::Kubernetes) => {}
            Ok(Checked::NotKubernetes) => problems.push(format!(
                "{what}: {} {} is neither a Kubernetes kind the tests know nor an Istio kind",
                document.api_version(),
                document.kind()
            )),
            Err(err) => problems.push(format!("{what}: {err}")),
        }
    }
    assert!(
        problems.is_empty(),
        "manifest problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_field_checks_catch_misspelt_and_misplaced_fields() {
    // A typo in a Deployment's pod spec, which a plain deserialization would accept.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "dev-platform"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"contianers": [], "containers": []}}}
    });
    let err = known_fields::check(&deployment).expect_err("the typo is caught");
    assert!(err.contains("spec.template.spec.contianers"), "{err}");

    // A field one level too deep.
    let mut service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}
    });
    assert_eq!(known_fields::check(&service), Ok(Checked::Kubernetes));
    service["spec"]["ports"][0]["selector"] = json!({"a": "b"});
    assert!(known_fields::check(&service).is_err());

    // Istio: an unknown field, a wrong enum value, a missing required field, bad metadata.
    let policy = json!({
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "x", "lables": {}},
        "spec": {"action": "REJECT", "rules": [{"to": [{"operation": {"path": ["/graphql"]}}],
                                                 "when": [{"values": ["a"]}]}]}
    });
    let crd = istio::check_for(&policy)
        .expect("an Istio kind")
        .expect("a known Istio kind");
    let problems = istio::problems(crd, &policy).join("\n");
    assert!(
        problems.contains("unknown field spec.rules[].to[].operation.path"),
        "{problems}"
    );
    assert!(problems.contains("`REJECT` is not one of"), "{problems}");
    assert!(
        problems.contains("spec.rules[].when[] lacks required field `key`"),
        "{problems}"
    );
    assert!(
        problems.contains("metadata unknown fields: lables"),
        "{problems}"
    );

    // Free-form maps accept any key, but only there.
    let route = json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "x"},
        "spec": {"hosts": ["a"], "http": [{"match": [{"headers": {"x-any": {"exact": "1"}}}],
                                           "route": [{"destination": {"host": "a", "port": {"numbr": 1}}}]}]}
    });
    let crd = istio::check_for(&route)
        .expect("an Istio kind")
        .expect("a known Istio kind");
    let problems = istio::problems(crd, &route);
    assert_eq!(
        problems,
        vec!["unknown field spec.http[].route[].destination.port.numbr".to_owned()]
    );

    // An Istio kind the project has no check for is an error, not a pass.
    let peer = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication"});
    assert!(istio::check_for(&peer).expect("an Istio group").is_err());
}

#[test]
fn the_instances_namespace_enforces_the_restricted_pod_security_level() {
    let documents = manifests();
    let namespace: Namespace = typed(find(&documents, "Namespace", INSTANCES_NAMESPACE));
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce-version")
            .map(String::as_str),
        Some("latest")
    );
    let _: Namespace = typed(find(&documents, "Namespace", SERVICE_NAMESPACE));
}

#[test]
fn the_configmap_holds_every_setting_with_its_default() {
    let config = config();
    // The spec's settings (secrets and KUBECONFIG excepted) with their defaults, and
    // the ones this deployment sets differently on purpose.
    let expected = [
        ("PORT", "8082"),
        ("METRICS_PORT", "9092"),
        ("ENVIRONMENT", "production"),
        ("LOG_LEVEL", "info"),
        ("SHUTDOWN_TIMEOUT", "30"),
        ("CODESERVER_NAMESPACE", INSTANCES_NAMESPACE),
        ("PVC_STORAGE_CLASS", "standard"),
        ("PVC_SIZE", "10Gi"),
        ("CODESERVER_IMAGE", "codercom/code-server:latest"),
        ("CODESERVER_CPU", "500m"),
        ("CODESERVER_MEMORY", "1Gi"),
        ("CODESERVER_TIMEOUT", "300"),
        ("BASE_DOMAIN", "devplatform.local"),
        ("TEMPLATES_DIR", "/etc/codeserver/templates"),
        ("VALUES_FILE", "/etc/codeserver/templates/values.yaml"),
        ("AUTH_TRUST_FORWARDED", "false"),
        (
            "JWKS_URL",
            "http://keycloak:30080/realms/devplatform/protocol/openid-connect/certs",
        ),
        ("JWT_ISSUER", "http://keycloak:30080/realms/devplatform"),
        ("ADMIN_ROLE", "admin"),
    ];
    for (key, value) in expected {
        assert_eq!(
            config.get(key).map(String::as_str),
            Some(value),
            "{key} in 01-configmap.yaml"
        );
    }
    for key in ["GITEA_URL", "GITEA_SERVICE_URL", "JWT_AUDIENCE"] {
        assert!(
            config.contains_key(key),
            "{key} is missing from 01-configmap.yaml"
        );
    }
    for (key, value) in &config {
        // NB: an empty variable is a set variable; an unset setting has no key.
        assert!(
            !value.is_empty(),
            "{key} is empty: delete the key to leave it unset"
        );
    }
    for secret in ["GITEA_TOKEN", "JWT_SECRET"] {
        assert!(
            !config.contains_key(secret),
            "{secret} belongs in 02-secret.yaml"
        );
    }
    assert!(
        !config.contains_key("KUBECONFIG"),
        "KUBECONFIG must stay unset in the cluster"
    );
}

#[test]
fn the_secrets_hold_placeholders_only() {
    let documents = manifests();
    let secrets: Vec<&Document> = documents.iter().filter(|d| d.kind() == "Secret").collect();
    assert_eq!(
        secrets.len(),
        2,
        "the service's Secret and the clone credential"
    );
    for document in &secrets {
        let secret: Secret = typed(document);
        assert!(
            secret.data.is_none(),
            "{}: use stringData placeholders",
            document.describe()
        );
        for (key, value) in secret.string_data.unwrap_or_default() {
            assert!(
                value.starts_with("REPLACE-"),
                "{}: {key} is not a placeholder",
                document.describe()
            );
        }
    }
    let service: Secret = typed(find(&documents, "Secret", "codeserver-service-secrets"));
    let keys: BTreeSet<String> = service
        .string_data
        .unwrap_or_default()
        .into_keys()
        .collect();
    // NB: JWT_SECRET stays out: a placeholder HS256 secret would be a known signing key.
    assert_eq!(keys, BTreeSet::from(["GITEA_TOKEN".to_owned()]));
    assert_eq!(
        service.metadata.namespace.as_deref(),
        Some(SERVICE_NAMESPACE)
    );

    let clone: Secret = typed(find(&documents, "Secret", "gitea-clone-credentials"));
    assert_eq!(
        clone.metadata.namespace.as_deref(),
        Some(INSTANCES_NAMESPACE)
    );
    let keys: BTreeSet<String> = clone.string_data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, BTreeSet::from(["token".to_owned()]));
}

#[test]
fn rbac_is_one_namespaced_role_without_secrets_or_exec() {
    let documents = manifests();
    for document in &documents {
        assert!(
            !matches!(document.kind(), "ClusterRole" | "ClusterRoleBinding"),
            "{}: the service needs no cluster-wide rights",
            document.describe()
        );
    }
    let roles: Vec<&Document> = documents.iter().filter(|d| d.kind() == "Role").collect();
    assert_eq!(roles.len(), 1, "one Role");

    let role = rbac::role();
    assert_eq!(
        role.metadata.namespace.as_deref(),
        Some(INSTANCES_NAMESPACE)
    );
    assert_eq!(
        config().get("CODESERVER_NAMESPACE").map(String::as_str),
        Some(INSTANCES_NAMESPACE)
    );
    for rule in role.rules.iter().flatten() {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{rule:?}"
        );
    }
    for grant in rbac::grants_of(&role) {
        assert!(
            grant.group != "*" && grant.resource != "*" && grant.verb != "*",
            "wildcard: {grant}"
        );
        assert!(
            grant.resource != "secrets",
            "the service reads no Secret: {grant}"
        );
        assert!(
            !matches!(
                grant.resource.as_str(),
                "pods/exec" | "pods/attach" | "pods/portforward" | "pods/proxy" | "services/proxy"
            ),
            "no way into a user's pod: {grant}"
        );
        assert!(
            !matches!(
                grant.verb.as_str(),
                "escalate" | "bind" | "impersonate" | "update" | "deletecollection"
            ),
            "verb the service never needs: {grant}"
        );
    }

    let binding = rbac::role_binding();
    assert_eq!(
        binding.metadata.namespace.as_deref(),
        Some(INSTANCES_NAMESPACE)
    );
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("Role", "codeserver-service")
    );
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (
            subjects[0].kind.as_str(),
            subjects[0].name.as_str(),
            subjects[0].namespace.as_deref()
        ),
        (
            "ServiceAccount",
            "codeserver-service",
            Some(SERVICE_NAMESPACE)
        )
    );
    let _ = find(&documents, "ServiceAccount", "codeserver-service");
    assert_eq!(
        pod_spec(&deployment()).service_account_name.as_deref(),
        Some("codeserver-service")
    );
}

#[test]
fn rbac_grants_exactly_the_reviewed_set() {
    // Changing the Role means changing this list: a grant is added on purpose or not at
    // all. Every applied kind needs create as well as patch (see 03-rbac.yaml).
    let applied = ["get", "list", "create", "patch", "delete"];
    let mut expected = BTreeSet::new();
    for (group, resource, extra) in [
        ("", "pods", Some("watch")),
        ("", "persistentvolumeclaims", None),
        ("", "services", None),
        ("networking.k8s.io", "networkpolicies", None),
        ("networking.istio.io", "virtualservices", None),
        ("batch", "jobs", Some("watch")),
    ] {
        for verb in applied.iter().copied().chain(extra) {
            expected.insert(Grant::new(group, resource, verb));
        }
    }
    expected.insert(Grant::new("", "pods/log", "get"));
    let granted = rbac::role_grants();
    let missing: Vec<String> = expected
        .difference(&granted)
        .map(ToString::to_string)
        .collect();
    let extra: Vec<String> = granted
        .difference(&expected)
        .map(ToString::to_string)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:?}\nextra: {extra:?}"
    );
}

#[test]
fn the_deployment_runs_hardened_with_the_spec_settings() {
    let documents = manifests();
    let config = config();
    let deployment = deployment();
    let spec = &deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(
        selects(&selector, &pod_labels(&deployment)),
        "the selector selects its own pods"
    );
    assert!(
        !pod_labels(&deployment).contains_key("app.kubernetes.io/managed-by"),
        "the service's own pods must not look like objects it manages"
    );

    let pod = pod_spec(&deployment);
    assert!(
        pod.topology_spread_constraints
            .as_ref()
            .is_some_and(|c| !c.is_empty())
    );
    let grace = pod
        .termination_grace_period_seconds
        .expect("a termination grace period");
    let shutdown: i64 = config["SHUTDOWN_TIMEOUT"]
        .parse()
        .expect("SHUTDOWN_TIMEOUT is a number");
    assert!(
        grace > shutdown,
        "grace period {grace} s must exceed SHUTDOWN_TIMEOUT {shutdown} s"
    );

    let pod_security = pod
        .security_context
        .as_ref()
        .expect("a pod security context");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(1000));
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );

    let container = main_container(&pod);
    let security = container
        .security_context
        .as_ref()
        .expect("a container security context");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(1000));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.privileged, Some(false));
    let dropped = security
        .capabilities
        .as_ref()
        .and_then(|c| c.drop.clone())
        .unwrap_or_default();
    assert_eq!(dropped, vec!["ALL".to_owned()]);
    assert!(
        security
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .is_none()
    );

    // The spec's resources.
    let resources = container.resources.as_ref().expect("resources");
    let quantity =
        |list: &Option<
            BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >,
         key: &str| { list.as_ref().and_then(|l| l.get(key)).map(|q| q.0.clone()) };
    assert_eq!(
        quantity(&resources.requests, "cpu").as_deref(),
        Some("100m")
    );
    assert_eq!(
        quantity(&resources.requests, "memory").as_deref(),
        Some("128Mi")
    );
    assert_eq!(quantity(&resources.limits, "cpu").as_deref(), Some("500m"));
    assert_eq!(
        quantity(&resources.limits, "memory").as_deref(),
        Some("512Mi")
    );

    // Ports agree with PORT and METRICS_PORT; probes hit /health and /ready on PORT.
    let port_of = |name: &str| {
        container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port.to_string())
    };
    assert_eq!(port_of("http"), config.get("PORT").cloned());
    assert_eq!(port_of("metrics"), config.get("METRICS_PORT").cloned());
    for (probe, path) in [
        (&container.liveness_probe, "/health"),
        (&container.readiness_probe, "/ready"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("an HTTP probe");
        assert_eq!(get.path.as_deref(), Some(path));
        let port = match &get.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
                port_of(name).unwrap_or_else(|| panic!("probe port {name} is not a container port"))
            }
        };
        assert_eq!(Some(port), config.get("PORT").cloned(), "{path} probe port");
    }

    // Configuration and secrets come from the objects defined in k8s/.
    let sources = container.env_from.clone().unwrap_or_default();
    let config_maps: Vec<String> = sources
        .iter()
        .filter_map(|s| s.config_map_ref.as_ref().map(|r| r.name.clone()))
        .collect();
    let secrets: Vec<String> = sources
        .iter()
        .filter_map(|s| s.secret_ref.as_ref().map(|r| r.name.clone()))
        .collect();
    assert_eq!(config_maps, vec!["codeserver-service-config".to_owned()]);
    assert_eq!(secrets, vec!["codeserver-service-secrets".to_owned()]);
    let _ = find(&documents, "ConfigMap", "codeserver-service-config");
    let _ = find(&documents, "Secret", "codeserver-service-secrets");

    // The templates ConfigMap is mounted, as a directory, where TEMPLATES_DIR points.
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "templates")
        .expect("the templates volume is mounted");
    assert_eq!(Some(&mount.mount_path), config.get("TEMPLATES_DIR"));
    assert_eq!(mount.read_only, Some(true));
    // NB: a subPath mount never sees ConfigMap updates; live reload needs the directory.
    assert!(mount.sub_path.is_none() && mount.sub_path_expr.is_none());
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "templates")
        .expect("a templates volume");
    let source = volume
        .config_map
        .as_ref()
        .expect("the templates volume is a ConfigMap");
    assert_eq!(source.name, "codeserver-templates");
}

#[test]
fn the_service_and_the_pdb_select_the_deployment_pods() {
    let documents = manifests();
    let deployment = deployment();
    let labels = pod_labels(&deployment);
    let container = main_container(&pod_spec(&deployment)).clone();
    let port_names: BTreeSet<String> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();

    let service: Service = typed(find(&documents, "Service", "codeserver-service"));
    let spec = service.spec.expect("a Service spec");
    assert!(selects(&spec.selector.unwrap_or_default(), &labels));
    for port in spec.ports.unwrap_or_default() {
        match port.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name)) => {
                assert!(
                    port_names.contains(&name),
                    "target port {name} is not a container port"
                )
            }
            other => panic!("use the container's named ports, not {other:?}"),
        }
        // NB: Istio picks the protocol from appProtocol or the port name's prefix.
        assert_eq!(port.app_protocol.as_deref(), Some("http"));
    }

    let pdb: PodDisruptionBudget = typed(find(
        &documents,
        "PodDisruptionBudget",
        "codeserver-service",
    ));
    let pdb_spec = pdb.spec.expect("a PDB spec");
    let selector = pdb_spec
        .selector
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert!(selects(&selector, &labels));
    let replicas = deployment.spec.replicas.unwrap_or(1);
    match pdb_spec.min_available {
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
            assert!(
                n >= 1 && n < replicas,
                "minAvailable {n} must leave room to drain one of {replicas}"
            )
        }
        other => panic!("expected an integer minAvailable, got {other:?}"),
    }
}

#[test]
fn istio_requires_a_keycloak_token_for_graphql() {
    let documents = manifests();
    let config = config();
    let labels = pod_labels(&deployment());

    let auth = find(
        &documents,
        "RequestAuthentication",
        "codeserver-service-jwt",
    );
    assert!(selects(
        &string_map(&auth.value["spec"]["selector"]["matchLabels"]),
        &labels
    ));
    let rules = auth.value["spec"]["jwtRules"].as_array().expect("jwtRules");
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(
        rule["issuer"].as_str(),
        config.get("JWT_ISSUER").map(String::as_str)
    );
    assert_eq!(
        rule["jwksUri"].as_str(),
        config.get("JWKS_URL").map(String::as_str)
    );
    let audiences: Vec<&str> = rule["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(audiences, vec![config["JWT_AUDIENCE"].as_str()]);
    // NB: without it Istio strips the token the service forwards to Gitea.
    assert_eq!(rule["forwardOriginalToken"], json!(true));

    let policy = find(
        &documents,
        "AuthorizationPolicy",
        "codeserver-service-require-jwt",
    );
    let spec = &policy.value["spec"];
    assert!(selects(
        &string_map(&spec["selector"]["matchLabels"]),
        &labels
    ));
    assert_eq!(spec["action"], json!("DENY"));
    let rules = spec["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["from"][0]["source"]["notRequestPrincipals"],
        json!(["*"])
    );
    let paths = &rules[0]["to"][0]["operation"]["paths"];
    assert!(
        paths
            .as_array()
            .is_some_and(|p| p.contains(&json!("/graphql"))),
        "{paths}"
    );
}

#[test]
fn the_api_route_reaches_the_service_through_the_gateway() {
    let documents = manifests();
    let config = config();
    let gateway = find(&documents, "Gateway", "devplatform-gateway");
    let wildcard = json!(format!("*.{}", config["BASE_DOMAIN"]));
    for server in gateway.value["spec"]["servers"]
        .as_array()
        .expect("servers")
    {
        assert_eq!(server["hosts"], json!([wildcard]), "{server}");
    }

    let route = find(&documents, "VirtualService", "codeserver-service");
    let spec = &route.value["spec"];
    let gateway_ref = format!(
        "{}/{}",
        gateway.namespace().unwrap_or_default(),
        gateway.name()
    );
    assert_eq!(spec["gateways"], json!([gateway_ref]));
    let host = spec["hosts"][0].as_str().expect("a host");
    assert!(
        host.ends_with(&format!(".{}", config["BASE_DOMAIN"])),
        "{host}"
    );
    assert!(
        !host.starts_with("code-"),
        "{host} could collide with a user's host code-<name>"
    );

    let service: Service = typed(find(&documents, "Service", "codeserver-service"));
    let fqdn = format!(
        "{}.{}.svc.cluster.local",
        service.metadata.name.as_deref().unwrap_or_default(),
        SERVICE_NAMESPACE
    );
    let ports: BTreeSet<i64> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .map(|p| i64::from(p.port))
        .collect();
    let http = spec["http"].as_array().expect("http routes");
    assert!(!http.is_empty());
    for destination in http
        .iter()
        .flat_map(|h| h["route"].as_array().into_iter().flatten())
    {
        assert_eq!(
            destination["destination"]["host"].as_str(),
            Some(fqdn.as_str())
        );
        let port = destination["destination"]["port"]["number"]
            .as_i64()
            .expect("a port number");
        assert!(
            ports.contains(&port),
            "port {port} is not a port of the Service"
        );
    }
}

#[test]
fn the_instances_namespace_denies_ingress_except_from_the_gateway() {
    let documents = manifests();
    let policies: Vec<NetworkPolicy> = documents
        .iter()
        .filter(|d| d.kind() == "NetworkPolicy" && d.namespace() == Some(INSTANCES_NAMESPACE))
        .map(typed)
        .collect();
    let deny = policies
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .find(|s| {
            s.pod_selector
                .as_ref()
                .is_none_or(|sel| sel.match_labels.is_none() && sel.match_expressions.is_none())
        })
        .expect("a policy selecting every pod");
    assert_eq!(
        deny.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );
    assert!(deny.ingress.is_none(), "the default policy admits nothing");

    let allow = policies
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .find(|s| s.ingress.as_ref().is_some_and(|i| !i.is_empty()))
        .expect("the ingress gateway exception");
    let selector = allow
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    let user_pod = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "codeserver-service".to_owned(),
        ),
        (
            "app.kubernetes.io/name".to_owned(),
            "code-server".to_owned(),
        ),
    ]);
    assert!(
        selects(&selector, &user_pod),
        "the exception applies to user pods only"
    );
    let peers = allow
        .ingress
        .iter()
        .flatten()
        .flat_map(|rule| rule.from.iter().flatten());
    for peer in peers {
        let namespace = peer
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        assert_eq!(
            namespace
                .get("kubernetes.io/metadata.name")
                .map(String::as_str),
            Some("istio-system")
        );
        let pods = peer
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        assert_eq!(
            pods.get("istio").map(String::as_str),
            Some("ingressgateway")
        );
    }
}
