//! An admin's template set that still renders the per-instance AuthorizationPolicy of
//! earlier versions (`tests/data/retired/`) keeps loading, validating and provisioning:
//! the render leaves the policy out (the service has no rights in the gateway's namespace
//! any more), and `validate-templates` says it is no longer needed.

use std::{sync::Arc, time::Duration};

use codeserver_service::{
    reconcile::Kinds,
    reload,
    render::{ActiveTemplates, RETIRED_POLICY_WARNING},
};
use codeserver_sim::Sim;
use support::templates::{replace_in, templates_with};
use tempfile::TempDir;

use super::*;

#[path = "../support/world.rs"]
mod world;

/// The old template's values, as the old `values.yaml` had them.
const OLD_VALUES: &str = "
accessPolicy:
  enabled: true
  gatewaySelector: {istio: ingressgateway}

security:
  allowUnauthenticatedWorkspaces: false
";

/// `templates/` with the old policy template and its values added back, then `edit`.
fn old_set(edit: impl FnOnce(&Path)) -> TempDir {
    templates_with(|dir| {
        std::fs::copy(
            root().join("tests/data/retired/authorizationpolicy.yaml.j2"),
            dir.join("authorizationpolicy.yaml.j2"),
        )
        .expect("the old template is copied");
        let values = dir.join("values.yaml");
        let mut text = std::fs::read_to_string(&values).expect("values.yaml");
        text.push_str(OLD_VALUES);
        std::fs::write(&values, text).expect("values.yaml is writable");
        edit(dir);
    })
}

fn path_of(dir: &TempDir) -> &str {
    dir.path().to_str().expect("a UTF-8 path")
}

#[test]
fn validate_templates_accepts_the_set_and_says_the_policy_is_no_longer_needed() {
    let dir = old_set(|_| {});
    let (result, out) = run_command(&[
        "validate-templates",
        "--templates",
        path_of(&dir),
        "--jwt-issuer",
        ISSUER,
    ]);
    assert!(result.is_ok(), "{out}");
    assert!(
        out.contains(&format!(
            "warning: authorizationpolicy.yaml.j2: {RETIRED_POLICY_WARNING}"
        )),
        "{out}"
    );
    assert!(
        RETIRED_POLICY_WARNING.contains(
            "the per-instance AuthorizationPolicy is no longer needed: the service is the workspace gatekeeper (see docs/admin-guide.md, How workspaces are protected)"
        )
    );
    assert!(out.contains("\nok: "), "{out}");
    // Without JWT_ISSUER too (the old template required it), and the built-in set has
    // nothing to warn about.
    let (result, out) = run_command(&["validate-templates", "--templates", path_of(&dir)]);
    assert!(result.is_ok(), "{out}");
    let (result, out) = run_command(&["validate-templates"]);
    assert!(result.is_ok() && !out.contains("warning:"), "{out}");
}

#[test]
fn the_render_leaves_the_policy_out_however_it_is_written() {
    let variants: [(&str, &str); 4] = [
        ("action: DENY", "action: DENY"),
        ("action: DENY", "action: ALLOW"),
        (
            "namespace: {{ access.gateway_namespace }}",
            "namespace: kube-system",
        ),
        (
            "apiVersion: security.istio.io/v1",
            "apiVersion: security.istio.io/v1beta1",
        ),
    ];
    for (from, to) in variants {
        let dir = old_set(|d| replace_in(d, "authorizationpolicy.yaml.j2", from, to));
        let templates = Templates::load_dir(dir.path()).expect("the old set loads");
        for (user, sub) in [("alice", Some(ALICE_SUB)), ("carol", None)] {
            let objects = render_json(&templates, &settings(), &owner(user, sub)).expect("renders");
            assert!(
                objects.iter().all(|o| o["kind"] != "AuthorizationPolicy"),
                "{to}: {objects:#?}"
            );
            assert!(objects.iter().any(|o| o["kind"] == "VirtualService"));
            // Never recorded as a kind of the instance either.
            let pvc = objects
                .iter()
                .find(|o| o["kind"] == "PersistentVolumeClaim")
                .expect("a PVC");
            let kinds = pvc["metadata"]["annotations"]["devplatform.io/kinds"]
                .as_str()
                .unwrap_or_default();
            assert!(!kinds.contains("AuthorizationPolicy"), "{kinds}");
        }
        let values = render::build_values(
            &templates,
            &settings(),
            &owner("alice", Some(ALICE_SUB)),
            &[repo()],
            &[],
        )
        .expect("values");
        assert_eq!(
            templates.retired_policy_templates(&values),
            vec!["authorizationpolicy.yaml.j2".to_owned()]
        );
    }
    // A `sub` the old policy could not name does not stop the render any more.
    let templates = Templates::load_dir(old_set(|_| {}).path()).expect("the old set loads");
    let objects =
        render_json(&templates, &settings(), &owner("mallory", Some("m*"))).expect("renders");
    assert!(objects.iter().all(|o| o["kind"] != "AuthorizationPolicy"));
}

#[test]
fn the_service_loads_the_set_without_jwt_issuer() {
    let dir = old_set(|_| {});
    let settings = InstanceSettings::default();
    assert!(settings.jwt_issuer.is_none());
    let loaded = reload::load_validated(Some(dir.path()), &settings).expect("loads");
    assert_eq!(
        render::warnings(&loaded, &settings)
            .iter()
            .map(|w| w.file.as_str())
            .collect::<Vec<_>>(),
        ["authorizationpolicy.yaml.j2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_of_the_set_is_provisioned_and_no_policy_is_written() {
    let dir = old_set(|_| {});
    let templates = Templates::load_dir(dir.path()).expect("the old set loads");
    let sim = Sim::start().await.expect("the simulated cluster starts");
    let reconciler = world::reconciler(&sim)
        .kinds(Kinds::new(Some("v1".to_owned())))
        .templates(Arc::new(ActiveTemplates::new(templates)))
        .ready_timeout(Duration::from_secs(20))
        .build();
    let alice = owner("alice", Some(ALICE_SUB));
    let provisioned = reconciler
        .provision(&alice, repo())
        .await
        .expect("provisioned");
    let id = provisioned.instance.id.clone();
    assert!(sim.object("pods", world::NS, &id).is_some());
    assert!(sim.object("virtualservices", world::NS, &id).is_some());
    assert!(
        sim.list_objects("authorizationpolicies").is_empty(),
        "no access policy anywhere"
    );
    // Provisioning again (no change) and deleting write no policy either.
    reconciler
        .provision(&alice, repo())
        .await
        .expect("provisioned again");
    reconciler.delete(&alice, &id).await.expect("deleted");
    let policy_writes: Vec<String> = sim
        .writes()
        .iter()
        .filter(|w| w.resource == "authorizationpolicies")
        .map(|w| format!("{} {:?}", w.verb, w.namespace))
        .collect();
    assert!(policy_writes.is_empty(), "{policy_writes:?}");
}
