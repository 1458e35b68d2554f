//! Access is the gatekeeper's, not the templates': the built-in set renders no access
//! policy, one a set still renders is left out with a warning, and nothing is rendered
//! into the gateway's namespace.

use super::*;

#[test]
fn the_built_in_set_renders_no_access_policy_and_warns_of_nothing() {
    assert!(
        !repo_root()
            .join("templates/authorizationpolicy.yaml.j2")
            .exists()
    );
    let objects = objects_of(render_repo("backend-api", &["--output", "json"]));
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(!kinds.contains(&"AuthorizationPolicy"), "{kinds:?}");
    for kind in ["PersistentVolumeClaim", "Pod", "Service", "VirtualService"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let (ok, out, err) = validate(&templates_with(|_| {}));
    assert!(ok, "{err}");
    assert!(!out.contains("warning"), "{out}");
    // Its values hold no key of the old policy.
    let values = fs::read_to_string(repo_root().join("templates/values.yaml")).unwrap();
    for key in ["accessPolicy:", "allowUnauthenticatedWorkspaces"] {
        assert!(!values.contains(key), "{key} is still in values.yaml");
    }
}

#[test]
fn a_policy_a_template_still_renders_is_left_out_with_a_warning() {
    // An AuthorizationPolicy added to an object template: the rest renders, the policy
    // does not, and validate-templates warns (naming the file) without refusing the set.
    let policy = "\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {{ instance.id }}\n  namespace: istio-system\nspec:\n  action: ALLOW\n";
    let dir = templates_with(|d| {
        let path = d.join("service.yaml.j2");
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(policy);
        fs::write(path, text).unwrap();
    });
    let (ok, out, err) = validate(&dir);
    assert!(ok, "{err}\n{out}");
    assert!(
        out.contains(
            "warning: service.yaml.j2: the per-instance AuthorizationPolicy is no longer needed"
        ),
        "{out}"
    );
    let (ok, out, err) = render_with(dir.path(), "alice");
    assert!(ok, "{err}");
    assert!(!out.contains("AuthorizationPolicy"), "{out}");
    assert!(out.contains("kind: Service"), "{out}");
}

#[test]
fn nothing_may_be_rendered_into_the_gateways_namespace() {
    // Every object lives in the instances namespace: the service has no rights anywhere
    // else, and the gateway's namespace is Istio's root namespace.
    let out = refused(|d| {
        replace_in(
            d,
            "_helpers.j2",
            "namespace: {{ namespace }}",
            "namespace: istio-system",
        )
    });
    assert!(
        out.contains("Pod objects must be in \"codeserver-instances\""),
        "{out}"
    );
    let out = refused(|d| {
        replace_in(
            d,
            "_helpers.j2",
            "namespace: {{ namespace }}",
            "namespace: {{ access.gateway_namespace }}",
        )
    });
    assert!(
        out.contains("VirtualService objects must be in \"codeserver-instances\""),
        "{out}"
    );
}
