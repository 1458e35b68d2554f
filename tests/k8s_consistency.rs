//! The manifests in `k8s/` agree with each other, with the service's settings and with
//! the templates' values: names, selectors, ports, the JWT issuer, the gateway, the
//! workspace gatekeeper (its settings, its check listener, the one CUSTOM policy), the
//! clone credential. These are the cross-references a reviewer would check by hand.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use clap::CommandFactory;
use codeserver_service::config::Cli;
use k8s_openapi::{
    api::{
        core::v1::{Secret, Service},
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};
use serde_json::{Value, json};
use support::{
    Document, find,
    fixtures::{
        INSTANCES_NAMESPACE, SERVICE_NAMESPACE, config, deployment, main_container, pod_labels,
        pod_spec, selects, string_map, typed,
    },
    manifests,
};

/// The environment variables `serve` reads, with their defaults (`None`: no default).
fn serve_settings() -> BTreeMap<String, Option<String>> {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve command");
    serve
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            Some((env, default))
        })
        .collect()
}

/// The templates' own values.yaml.
fn template_values() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/values.yaml");
    let text = std::fs::read_to_string(&path).expect("templates/values.yaml is readable");
    serde_yaml_ng::from_str(&text).expect("templates/values.yaml parses")
}

#[test]
fn the_configmap_holds_every_setting_the_service_reads() {
    let config = config();
    let settings = serve_settings();
    // Set elsewhere, or deliberately left unset.
    let not_here = [
        "GITEA_TOKEN",           // 02-secret.yaml
        "OIDC_CLIENT_SECRET",    // 02-secret.yaml
        "SESSION_KEYS",          // 02-secret.yaml
        "JWT_SECRET",            // 02-secret.yaml, optional
        "KUBECONFIG",            // unset: the in-cluster service account
        "VALUES_FILE", // unset: values.yaml is part of the templates and reloads with them
        "GRAPHIQL",    // unset: off in production
        "GRAPHQL_INTROSPECTION", // unset: off in production
        "POD_NAME",    // 04-deployment.yaml, from the downward API
    ];
    // Differ from the binary's default on purpose, or have none.
    let deployment_values = [
        ("ENVIRONMENT", "production"),
        ("TEMPLATES_DIR", "/etc/codeserver/templates"),
        ("JWT_ISSUER", "http://keycloak:30080/realms/devplatform"),
        ("JWT_AUDIENCE", "codeserver-service"),
        ("GITEA_LOGIN_SOURCE_ID", "1"),
        ("DELETE_RETENTION", "604800"),
        ("PUBLIC_URL", "https://codeserver.devplatform.local"),
        (
            "GITEA_URL",
            "http://gitea.dev-platform.svc.cluster.local:3000",
        ),
        (
            "GITEA_SERVICE_URL",
            "http://gitea.dev-platform.svc.cluster.local:3000",
        ),
    ];

    // Settings of earlier versions nothing reads any more: never set here.
    let retired = [
        "GATEWAY_NAMESPACE", // the per-instance access policies' namespace
    ];
    for key in config.keys() {
        assert!(
            settings.contains_key(key),
            "{key} in 01-configmap.yaml is not a setting of `serve`"
        );
        assert!(
            !retired.contains(&key.as_str()),
            "{key} in 01-configmap.yaml is not used any more"
        );
    }
    for (key, value) in &config {
        // NB: an empty variable is a set variable; an unset setting has no key.
        assert!(
            !value.is_empty(),
            "{key} is empty: delete the key to leave it unset"
        );
    }
    for key in not_here {
        assert!(
            settings.contains_key(key),
            "{key} is not a setting any more"
        );
        assert!(
            !config.contains_key(key),
            "{key} must not be in 01-configmap.yaml"
        );
    }
    for (key, default) in &settings {
        if not_here.contains(&key.as_str()) || retired.contains(&key.as_str()) {
            continue;
        }
        let value = config
            .get(key)
            .unwrap_or_else(|| panic!("{key} is missing from 01-configmap.yaml"));
        match deployment_values.iter().find(|(k, _)| k == key) {
            Some((_, expected)) => assert_eq!(value, expected, "{key}"),
            None => assert_eq!(
                Some(value),
                default.as_ref(),
                "{key} differs from the service's default; list it as a deployment value if on purpose"
            ),
        }
    }
    // The settings the specification names are all there.
    for key in [
        "PORT",
        "METRICS_PORT",
        "ENVIRONMENT",
        "LOG_LEVEL",
        "SHUTDOWN_TIMEOUT",
        "CODESERVER_NAMESPACE",
        "PVC_STORAGE_CLASS",
        "PVC_SIZE",
        "CODESERVER_IMAGE",
        "CODESERVER_CPU",
        "CODESERVER_MEMORY",
        "CODESERVER_TIMEOUT",
        "GITEA_URL",
        "GITEA_SERVICE_URL",
        "BASE_DOMAIN",
        "TEMPLATES_DIR",
        "AUTH_TRUST_FORWARDED",
        "JWKS_URL",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "ADMIN_ROLE",
        "PUBLIC_URL",
        "OIDC_CLIENT_ID",
        "SESSION_TTL",
        "WORKSPACE_SESSION_TTL",
        "ADMIN_WORKSPACE_ACCESS",
        "EXT_AUTHZ_PORT",
    ] {
        assert!(
            config.contains_key(key),
            "{key} is missing from 01-configmap.yaml"
        );
    }
    assert_eq!(config["AUTH_TRUST_FORWARDED"], "false");
    assert_eq!(config["AUTH_INSECURE_DECODE"], "false");
    assert_eq!(config["ADMIN_WORKSPACE_ACCESS"], "false");
}

#[test]
fn the_manifests_agree_with_the_templates_values() {
    let documents = manifests();
    let values = template_values();

    // User routes bind to the Gateway defined here.
    let gateway = find(&documents, "Gateway", "devplatform-gateway");
    let gateway_ref = format!(
        "{}/{}",
        gateway.namespace().unwrap_or_default(),
        gateway.name()
    );
    assert_eq!(values["virtualService"]["gateways"], json!([gateway_ref]));

    // No shared clone credential: the only Secret is the service's own, which no user
    // pod can reference (it lives in the service's namespace).
    let secrets: Vec<String> = documents
        .iter()
        .filter(|d| d.kind() == "Secret")
        .map(|d| format!("{}/{}", d.namespace().unwrap_or_default(), d.name()))
        .collect();
    assert_eq!(secrets, ["dev-platform/codeserver-service-secrets"]);
    assert!(values["gitClone"].get("credentialsSecret").is_none());

    // The namespace-wide gateway exception admits the same peer, on the same port, as
    // each instance's own NetworkPolicy.
    let allow: NetworkPolicy = typed(find(&documents, "NetworkPolicy", "allow-ingress-gateway"));
    let rule = allow
        .spec
        .and_then(|s| s.ingress)
        .and_then(|i| i.into_iter().next())
        .expect("an ingress rule");
    let peer = rule
        .from
        .and_then(|f| f.into_iter().next())
        .expect("a peer");
    let namespace = peer
        .namespace_selector
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert_eq!(
        namespace
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        values["networkPolicy"]["ingressNamespace"].as_str()
    );
    let pods = peer
        .pod_selector
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert_eq!(json!(pods), values["networkPolicy"]["ingressPodLabels"]);
    let port = rule
        .ports
        .and_then(|p| p.into_iter().next())
        .and_then(|p| p.port)
        .expect("a port");
    assert_eq!(json!(port), values["codeServer"]["port"]);
}

#[test]
fn the_secrets_hold_placeholders_only() {
    let documents = manifests();
    let secrets: Vec<&Document> = documents.iter().filter(|d| d.kind() == "Secret").collect();
    assert_eq!(
        secrets.len(),
        1,
        "the service's Secret: user pods get per-instance deploy keys"
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
        .clone()
        .unwrap_or_default()
        .into_keys()
        .collect();
    // NB: JWT_SECRET stays out: a placeholder HS256 secret would be a known signing key.
    assert_eq!(
        keys,
        BTreeSet::from(["GITEA_TOKEN", "OIDC_CLIENT_SECRET", "SESSION_KEYS"].map(str::to_owned))
    );
    // NB: the SESSION_KEYS placeholder is shorter than a key may be, so a service started
    // with it unreplaced refuses to start instead of signing with a published key.
    let placeholder = service
        .string_data
        .as_ref()
        .and_then(|d| d.get("SESSION_KEYS"))
        .expect("a SESSION_KEYS placeholder");
    assert!(
        placeholder.len() < codeserver_service::gate::MIN_SESSION_KEY_BYTES,
        "{placeholder}"
    );
    assert_eq!(
        service.metadata.namespace.as_deref(),
        Some(SERVICE_NAMESPACE)
    );
}

#[test]
fn the_deployment_runs_two_replicas_of_the_packaged_image() {
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
    // The image `make docker-build` tags: the package version.
    let version = env!("CARGO_PKG_VERSION");
    let image = main_container(&pod).image.clone().unwrap_or_default();
    assert_eq!(image, format!("codeserver-service:{version}"));
    assert_eq!(
        pod_labels(&deployment).get("version").map(String::as_str),
        Some(version)
    );
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
}

#[test]
fn the_service_pod_runs_as_non_root_on_a_read_only_root() {
    let pod = pod_spec(&deployment());
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
}

#[test]
fn the_service_pod_has_the_spec_resources() {
    let pod = pod_spec(&deployment());
    let container = main_container(&pod);
    // The spec's resources.
    let resources = container.resources.as_ref().expect("resources");
    let quantity = |list: &Option<BTreeMap<String, Quantity>>, key: &str| {
        list.as_ref().and_then(|l| l.get(key)).map(|q| q.0.clone())
    };
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
}

#[test]
fn ports_and_probes_follow_port_and_metrics_port() {
    let config = config();
    let pod = pod_spec(&deployment());
    let container = main_container(&pod);
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
    assert_eq!(port_of("ext-authz"), config.get("EXT_AUTHZ_PORT").cloned());
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
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(name) => {
                port_of(name).unwrap_or_else(|| panic!("probe port {name} is not a container port"))
            }
        };
        assert_eq!(Some(port), config.get("PORT").cloned(), "{path} probe port");
    }
}

#[test]
fn configuration_secrets_and_templates_come_from_objects_in_k8s() {
    let documents = manifests();
    let config = config();
    let pod = pod_spec(&deployment());
    let container = main_container(&pod);
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
    let templates = find(&documents, "ConfigMap", &source.name);
    assert_eq!(templates.namespace(), Some(SERVICE_NAMESPACE));
    // NB: a volume item list would mount only some keys and hide new templates.
    assert!(
        source.items.is_none(),
        "mount every key of the templates ConfigMap"
    );
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
            Some(IntOrString::String(name)) => {
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
        Some(IntOrString::Int(n)) => {
            assert!(
                n >= 1 && n < replicas,
                "minAvailable {n} must leave room to drain one of {replicas}"
            )
        }
        other => panic!("expected an integer minAvailable, got {other:?}"),
    }
}

#[test]
fn no_istio_token_check_stands_before_the_service() {
    // The service verifies every token itself (AUTH_TRUST_FORWARDED is false). Istio's
    // RequestAuthentication would verify them again, answer 401 in its own words, and on
    // the service's pods apply to the check listener too (it cannot be limited to a
    // port); on the shared gateway it would refuse other teams' tokens.
    let documents = manifests();
    let config = config();
    assert_eq!(config["AUTH_TRUST_FORWARDED"], "false");
    let labels = pod_labels(&deployment());
    for document in &documents {
        assert_ne!(
            document.kind(),
            "RequestAuthentication",
            "{}",
            document.describe()
        );
        if document.kind() == "AuthorizationPolicy" {
            assert!(
                !selects(
                    &string_map(&document.value["spec"]["selector"]["matchLabels"]),
                    &labels
                ),
                "{}: a policy in front of the service",
                document.describe()
            );
        }
    }
}

#[test]
fn the_api_route_reaches_the_service_through_the_gateway() {
    let documents = manifests();
    let config = config();
    let gateway = find(&documents, "Gateway", "devplatform-gateway");
    let route = find(&documents, "VirtualService", "codeserver-service");
    let api_host = route.value["spec"]["hosts"][0].as_str().expect("a host");
    // NB: namespace-qualified: only the instances' namespace and the API's own route may
    // bind a host of this Gateway.
    let hosts = json!([
        format!(
            "{}/*.{}",
            config["CODESERVER_NAMESPACE"], config["BASE_DOMAIN"]
        ),
        format!("{SERVICE_NAMESPACE}/{api_host}"),
    ]);
    for server in gateway.value["spec"]["servers"]
        .as_array()
        .expect("servers")
    {
        assert_eq!(server["hosts"], hosts, "{server}");
    }
    // PUBLIC_URL is the API host: the login's redirect URI is on it.
    assert_eq!(config["PUBLIC_URL"], format!("https://{api_host}"));

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
    // Published: the API and the browser login, nothing else.
    let matches: Vec<&Value> = http
        .iter()
        .flat_map(|h| h["match"].as_array().into_iter().flatten())
        .map(|m| &m["uri"])
        .collect();
    assert_eq!(
        matches,
        [
            &json!({"exact": "/graphql"}),
            &json!({"prefix": "/graphql/"}),
            &json!({"prefix": "/auth/"}),
        ]
    );
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
            pods.get("app").map(String::as_str),
            Some("istio-ingressgateway")
        );
    }
}

#[test]
fn the_workspace_access_manifests_agree_with_the_service_and_the_templates() {
    let documents = manifests();
    let config = config();
    let values = template_values();
    let gateway = find(&documents, "Gateway", "devplatform-gateway");
    let gateway_workload = &gateway.value["spec"]["selector"];

    // The one CUSTOM policy acts on the gateway the routes bind to, in the namespace the
    // NetworkPolicies know as the gateway's, leaves the API host (PUBLIC_URL's) alone, and
    // names the provider of k8s/mesh/.
    let policy = find(&documents, "AuthorizationPolicy", "codeserver-workspaces");
    assert_eq!(
        policy.namespace(),
        values["networkPolicy"]["ingressNamespace"].as_str()
    );
    assert_eq!(
        &policy.value["spec"]["selector"]["matchLabels"],
        gateway_workload
    );
    assert_eq!(policy.value["spec"]["action"], "CUSTOM");
    let operation = &policy.value["spec"]["rules"][0]["to"][0]["operation"];
    let api_host = config["PUBLIC_URL"]
        .trim_start_matches("https://")
        .to_owned();
    assert!(
        operation["notHosts"].as_array().is_some_and(
            |h| h.contains(&json!(api_host)) && h.contains(&json!(format!("{api_host}:*")))
        ),
        "{operation}"
    );
    assert!(
        operation["hosts"]
            .as_array()
            .is_some_and(|h| h.contains(&json!(format!("*.{}", config["BASE_DOMAIN"])))),
        "{operation}"
    );
    let mesh: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/mesh/istiod-values.yaml"),
        )
        .expect("k8s/mesh/istiod-values.yaml"),
    )
    .expect("the mesh values parse");
    let provider = &mesh["meshConfig"]["extensionProviders"][0];
    assert_eq!(policy.value["spec"]["provider"]["name"], provider["name"]);
    assert_eq!(
        provider["envoyExtAuthzHttp"]["port"].to_string(),
        config["EXT_AUTHZ_PORT"]
    );

    // Only the ingress gateway may ask the check: the service's NetworkPolicy admits the
    // same peer as each instance's own, on EXT_AUTHZ_PORT, and nobody else there.
    let service_policy: NetworkPolicy = typed(find(
        &documents,
        "NetworkPolicy",
        "codeserver-service-ingress",
    ));
    assert_eq!(
        service_policy.metadata.namespace.as_deref(),
        Some(SERVICE_NAMESPACE)
    );
    let spec = service_policy.spec.expect("a spec");
    assert!(selects(
        &spec
            .pod_selector
            .and_then(|s| s.match_labels)
            .unwrap_or_default(),
        &pod_labels(&deployment())
    ));
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );
    let check_port = IntOrString::Int(config["EXT_AUTHZ_PORT"].parse().expect("a port"));
    let mut check_rules = 0;
    for rule in spec.ingress.unwrap_or_default() {
        let ports: Vec<IntOrString> = rule
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.clone())
            .collect();
        assert!(!ports.is_empty(), "every rule names its ports");
        if !ports.contains(&check_port) {
            continue;
        }
        check_rules += 1;
        assert_eq!(
            ports,
            std::slice::from_ref(&check_port),
            "the check port has a rule of its own"
        );
        let peers = rule.from.unwrap_or_default();
        assert_eq!(peers.len(), 1, "the gateway's pods only");
        let namespace = peers[0]
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        assert_eq!(
            namespace
                .get("kubernetes.io/metadata.name")
                .map(String::as_str),
            values["networkPolicy"]["ingressNamespace"].as_str()
        );
        let pods = peers[0]
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        assert_eq!(json!(pods), values["networkPolicy"]["ingressPodLabels"]);
    }
    assert_eq!(check_rules, 1);
}
