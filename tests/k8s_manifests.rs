//! The deployment manifests in `k8s/` are valid for a real cluster.
//!
//! Every document parses; Kubernetes kinds deserialize into their `k8s-openapi` types
//! with no unknown field (the service's own render check); Istio kinds use only fields
//! their CRDs define, and so do the Istio objects the templates render; RBAC is one
//! namespaced Role with no Secrets and no exec, and nothing in the gateway's namespace
//! but the workspaces' one CUSTOM policy; no oauth2-proxy, no JWT policy. How the
//! manifests agree with each other and with the service is in `k8s_consistency.rs`.

mod support;

use std::collections::BTreeSet;

use codeserver_service::{
    render,
    render::JobValues,
    values::{Owner, Repo, Values},
};
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{Namespace, Pod, PodSpec},
};
use serde_json::json;
use support::{
    Document, find,
    fixtures::{
        GATEWAY_NAMESPACE, INSTANCES_NAMESPACE, SERVICE_NAMESPACE, config, deployment, pod_spec,
        typed,
    },
    istio,
    known_fields::{self, Checked, strict},
    manifests,
    pod_security::restricted_violations,
    rbac::{self, Grant},
};

/// Cluster-scoped kinds, among those `k8s/` may use.
const CLUSTER_SCOPED: &[&str] = &["Namespace", "ClusterRole", "ClusterRoleBinding"];

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
        "09-templates-configmap.yaml",
        "10-workspace-access.yaml",
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
            // NB: in the gateway's namespace (Istio's root namespace) only the
            // workspaces' one CUSTOM policy: no Role, no token check.
            let gateway_kind = document.kind() == "AuthorizationPolicy";
            assert!(
                matches!(namespace, Some(SERVICE_NAMESPACE | INSTANCES_NAMESPACE))
                    || (gateway_kind && namespace == Some(GATEWAY_NAMESPACE)),
                "{what}: namespace {namespace:?} is neither {SERVICE_NAMESPACE} nor {INSTANCES_NAMESPACE} (nor {GATEWAY_NAMESPACE} for a gateway kind)"
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
    assert!(
        err.contains("unknown field spec.template.spec.contianers"),
        "{err}"
    );

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
        problems.contains("metadata unknown field lables"),
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

/// The built-in templates and the values of a sample user, as `validate-templates`
/// would build them.
fn sample_render() -> (render::Templates, Values) {
    let settings = support::validate_templates_settings(&[]);
    let templates = render::Templates::builtin().expect("the built-in templates load");
    let owner = Owner::new("John.Doe@corp.example");
    let repo = Repo::new(
        "devteam",
        "backend-api",
        "http://gitea:3000/devteam/backend-api.git",
    )
    .expect("a valid repository");
    let values =
        render::build_values(&templates, &settings, &owner, &[repo], &[]).expect("values build");
    (templates, values)
}

#[test]
fn rendered_istio_objects_use_only_fields_their_crds_define() {
    let (templates, values) = sample_render();
    let objects = templates
        .render(&values)
        .expect("the built-in templates render");
    let mut checked = 0;
    for rendered in objects {
        let value = serde_json::to_value(&rendered.object).expect("an object serializes");
        if let Some(crd) = istio::check_for(&value) {
            let crd = crd.unwrap_or_else(|err| panic!("{}: {err}", rendered.template));
            let problems = istio::problems(crd, &value);
            assert!(problems.is_empty(), "{}: {problems:?}", rendered.template);
            checked += 1;
        }
    }
    assert!(checked >= 1, "the templates render a VirtualService");
}

#[test]
fn every_pod_meets_the_restricted_pod_security_level() {
    // The instances namespace enforces `restricted`: the user pod and the sync Job's pod
    // must pass it, or the API server refuses them.
    let (templates, values) = sample_render();
    let objects = templates
        .render(&values)
        .expect("the built-in templates render");
    let mut specs: Vec<(String, PodSpec)> = Vec::new();
    for rendered in objects {
        let value = serde_json::to_value(&rendered.object).expect("an object serializes");
        if value["kind"] == "Pod" {
            let pod: Pod = strict(&value).expect("the rendered pod is a Pod");
            specs.push((rendered.template, pod.spec.expect("a pod spec")));
        }
    }
    assert_eq!(specs.len(), 1, "the templates render one pod");
    let job_values = JobValues {
        name: "sync-code-server-john".to_owned(),
        node: Some("node-1".to_owned()),
    };
    let job = templates
        .render_sync_job(&values, &job_values)
        .expect("the sync Job renders");
    let job: Job = strict(&serde_json::to_value(&job).expect("a Job serializes"))
        .expect("the rendered Job is a Job");
    let job_pod = job.spec.and_then(|s| s.template.spec);
    specs.push((
        render::SYNC_JOB_TEMPLATE.to_owned(),
        job_pod.expect("a Job pod spec"),
    ));
    // The service's own pod is held to the same level (its namespace warns and audits).
    specs.push(("k8s/04-deployment.yaml".to_owned(), pod_spec(&deployment())));

    for (source, spec) in specs {
        let violations = restricted_violations(&spec);
        assert!(violations.is_empty(), "{source}: {violations:#?}");
    }

    // And the check can fail.
    let mut spec = pod_spec(&deployment());
    spec.host_network = Some(true);
    let container = &mut spec.containers[0];
    let security = container
        .security_context
        .as_mut()
        .expect("a security context");
    security.allow_privilege_escalation = None;
    security.capabilities = None;
    let violations = restricted_violations(&spec).join("\n");
    for needle in [
        "hostNetwork",
        "allowPrivilegeEscalation must be false",
        "drop ALL",
    ] {
        assert!(violations.contains(needle), "{needle} not in {violations}");
    }
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
fn rbac_is_one_namespaced_role_without_secrets_or_exec() {
    let documents = manifests();
    // Cluster-wide, one ClusterRole and its binding: `get` on StorageClasses (whether a
    // workspace volume may grow), nothing else.
    let cluster_objects: Vec<String> = documents
        .iter()
        .filter(|d| matches!(d.kind(), "ClusterRole" | "ClusterRoleBinding"))
        .map(|d| format!("{}/{}", d.kind(), d.name()))
        .collect();
    assert_eq!(
        cluster_objects,
        [
            format!("ClusterRole/{}", rbac::CLUSTER_ROLE),
            format!("ClusterRoleBinding/{}", rbac::CLUSTER_ROLE),
        ]
    );
    assert_eq!(
        rbac::cluster_role_grants().into_iter().collect::<Vec<_>>(),
        [Grant::new("storage.k8s.io", "storageclasses", "get")],
        "the ClusterRole grants get on StorageClasses only"
    );
    for rule in rbac::cluster_role().rules.iter().flatten() {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{rule:?}"
        );
    }
    let cluster_binding = rbac::cluster_role_binding();
    assert_eq!(
        (
            cluster_binding.role_ref.kind.as_str(),
            cluster_binding.role_ref.name.as_str()
        ),
        ("ClusterRole", rbac::CLUSTER_ROLE)
    );
    let cluster_subjects: Vec<_> = cluster_binding
        .subjects
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.kind, s.name, s.namespace))
        .collect();
    assert_eq!(
        cluster_subjects,
        [(
            "ServiceAccount".to_owned(),
            "codeserver-service".to_owned(),
            Some(SERVICE_NAMESPACE.to_owned())
        )]
    );
    // One Role and its binding, in the instances namespace: none in the gateway's (Istio's
    // root) namespace, where a right to write policies would reach the whole mesh.
    let rbac_objects: Vec<String> = documents
        .iter()
        .filter(|d| matches!(d.kind(), "Role" | "RoleBinding"))
        .map(|d| format!("{}/{:?}/{}", d.kind(), d.namespace(), d.name()))
        .collect();
    assert_eq!(
        rbac_objects,
        [
            format!("Role/{:?}/codeserver-service", Some(INSTANCES_NAMESPACE)),
            format!(
                "RoleBinding/{:?}/codeserver-service",
                Some(INSTANCES_NAMESPACE)
            ),
        ]
    );
    assert!(
        documents
            .iter()
            .all(|d| d.namespace() != Some(GATEWAY_NAMESPACE) || d.kind() == "AuthorizationPolicy"),
        "nothing but the workspaces' policy in {GATEWAY_NAMESPACE}"
    );
    assert!(
        rbac::role_grants()
            .iter()
            .all(|g| g.group != "security.istio.io"),
        "no Istio security objects: the service writes no access policy"
    );

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
        // NB: Secrets are read only through the cache (list and watch, by the
        // managed-by label) and written only as each instance's own deploy keys.
        assert!(
            grant.resource != "secrets"
                || matches!(
                    grant.verb.as_str(),
                    "list" | "watch" | "create" | "patch" | "delete"
                ),
            "secrets: cached reads and the deploy keys' writes only: {grant}"
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
                "escalate" | "bind" | "impersonate" | "deletecollection"
            ),
            "verb the service never needs: {grant}"
        );
        // NB: a Lease is renewed with an update carrying its resourceVersion (leader
        // election needs that check); everything else is applied.
        assert!(
            grant.verb != "update" || grant.resource == "leases",
            "update is for the idle culler's Lease only: {grant}"
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

/// What the reconciler sends, per kind: (group, resource, verbs).
/// NB: every applied kind needs `create` as well as `patch` (see 03-rbac.yaml).
const RECONCILER_VERBS: &[(&str, &str, &[&str])] = &[
    ("", "pods", &["list", "watch", "create", "patch", "delete"]),
    ("", "pods/log", &["get"]),
    (
        "",
        "persistentvolumeclaims",
        &["list", "watch", "create", "patch", "delete"],
    ),
    ("", "events", &["list", "watch", "create"]),
    (
        "",
        "services",
        &["list", "watch", "create", "patch", "delete"],
    ),
    ("", "configmaps", &["list", "watch"]),
    (
        "networking.k8s.io",
        "networkpolicies",
        &["list", "watch", "create", "patch", "delete"],
    ),
    (
        "networking.istio.io",
        "virtualservices",
        &["list", "watch", "create", "patch", "delete"],
    ),
    (
        "batch",
        "jobs",
        &["get", "list", "watch", "create", "delete"],
    ),
    (
        "",
        "secrets",
        &["list", "watch", "create", "patch", "delete"],
    ),
    (
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    ),
    ("apps", "daemonsets", &["list", "create", "patch", "delete"]),
    ("", "limitranges", &["list"]),
];

#[test]
fn rbac_grants_exactly_the_reviewed_set() {
    // Changing the Role means changing this list: a grant is added on purpose or not at
    // all.
    let expected: BTreeSet<Grant> = RECONCILER_VERBS
        .iter()
        .flat_map(|(group, resource, verbs)| verbs.iter().map(|v| Grant::new(group, resource, v)))
        .collect();
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
fn recorded_requests_are_compared_with_the_role() {
    let role = rbac::role();
    let request =
        |verb: &str, group: &str, resource: &str, sub: Option<&str>, apply: bool| rbac::Request {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: sub.map(str::to_owned),
            namespace: Some(INSTANCES_NAMESPACE.to_owned()),
            apply,
        };
    // What the reconciler is built to send: reads, applies (recorded as patch), deletes,
    // watches, logs.
    let mut requests = Vec::new();
    for (group, resource, verbs) in RECONCILER_VERBS {
        let (resource, sub) = match resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub)),
            None => (*resource, None),
        };
        // NB: a kind that is applied gets `create` through apply; Jobs are created.
        let applied = verbs.contains(&"patch");
        for verb in verbs.iter().filter(|v| **v != "create" || !applied) {
            requests.push(request(verb, group, resource, sub, *verb == "patch"));
        }
    }
    assert_eq!(rbac::compare(&role, &requests), rbac::Comparison::default());

    // A request the Role does not allow is reported, and so is a grant nobody used.
    requests.retain(|r| !(r.resource == "jobs" && r.verb == "watch"));
    requests.push(request("get", "", "secrets", None, false));
    requests.push(request("create", "", "pods", Some("exec"), false));
    let mut elsewhere = request("list", "", "pods", None, false);
    elsewhere.namespace = Some(SERVICE_NAMESPACE.to_owned());
    requests.push(elsewhere);
    let comparison = rbac::compare(&role, &requests);
    assert_eq!(
        comparison.unused,
        vec![Grant::new("batch", "jobs", "watch")]
    );
    let denied = comparison.denied.join("\n");
    for needle in ["get core/secrets", "create core/pods/exec", "dev-platform"] {
        assert!(denied.contains(needle), "{needle} not in {denied}");
    }
}

#[tokio::test]
async fn every_manifest_of_a_served_kind_passes_a_server_side_dry_run() {
    use kube::{
        Api,
        api::{DynamicObject, GroupVersionKind, Patch, PatchParams},
        discovery::{self, Scope},
    };
    let sim = codeserver_sim::Sim::start()
        .await
        .expect("the simulated cluster starts");
    let client = sim.client();
    let mut applied = BTreeSet::new();
    let mut problems = Vec::new();
    for document in manifests() {
        let (group, version) = document
            .api_version()
            .split_once('/')
            .unwrap_or(("", document.api_version()));
        let gvk = GroupVersionKind::gvk(group, version, document.kind());
        // NB: kinds the simulated cluster does not serve (Deployment, RBAC, the Istio
        // Gateway, the PDB) are checked against their types by the tests above.
        let Ok((ar, caps)) = discovery::pinned_kind(&client, &gvk).await else {
            continue;
        };
        let api: Api<DynamicObject> = match (caps.scope, document.namespace()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Cluster, None) => Api::all_with(client.clone(), &ar),
            _ => {
                problems.push(format!(
                    "{}: scope and namespace disagree",
                    document.describe()
                ));
                continue;
            }
        };
        let params = PatchParams::apply("kubectl").dry_run();
        match api
            .patch(document.name(), &params, &Patch::Apply(&document.value))
            .await
        {
            Ok(_) => {
                applied.insert(document.kind().to_owned());
            }
            Err(e) => problems.push(format!("{}: {e}", document.describe())),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for kind in [
        "AuthorizationPolicy",
        "LimitRange",
        "NetworkPolicy",
        "Secret",
        "Service",
        "VirtualService",
    ] {
        assert!(applied.contains(kind), "no {kind} was applied: {applied:?}");
    }
    assert!(
        sim.writes().is_empty(),
        "a dry run wrote: {:?}",
        sim.writes()
    );
}

#[test]
fn the_old_workspace_access_is_gone() {
    // oauth2-proxy, the gateway-wide and the service's token checks, the login policy of
    // oauth2-proxy: the service is the gatekeeper now (10-workspace-access.yaml).
    let documents = manifests();
    let leftovers: Vec<String> = documents
        .iter()
        .filter(|d| {
            d.kind() == "RequestAuthentication"
                || d.name().contains("oauth2-proxy")
                || d.value.to_string().contains("oauth2-proxy")
                || d.name() == "devplatform-workspaces-login"
        })
        .map(Document::describe)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let policies: Vec<&Document> = documents
        .iter()
        .filter(|d| d.kind() == "AuthorizationPolicy")
        .collect();
    assert_eq!(policies.len(), 1, "one static policy, for the workspaces");
    assert_eq!(policies[0].value["spec"]["action"], "CUSTOM");
}
