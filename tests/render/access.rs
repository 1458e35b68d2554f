//! The access policy: refused when missing, held to the gateway's namespace.

use super::*;

#[test]
fn a_set_that_publishes_workspaces_without_an_access_policy_is_refused_unless_allowed() {
    let out = refused(|d| remove(d, "authorizationpolicy.yaml.j2"));
    assert!(
        out.contains("no per-instance access policy is rendered")
            && out.contains("security.allowUnauthenticatedWorkspaces"),
        "{out}"
    );

    // A policy that names neither the host nor the owner does not count.
    let out = refused(|d| {
        replace_in(
            d,
            "authorizationpolicy.yaml.j2",
            "hosts: {{ access.hosts }}",
            "hosts: [\"elsewhere.example\"]",
        );
    });
    assert!(out.contains("no per-instance access policy"), "{out}");

    // With the explicit value the set is accepted.
    accepted(|d| {
        remove(d, "authorizationpolicy.yaml.j2");
        replace_in(
            d,
            "values.yaml",
            "allowUnauthenticatedWorkspaces: false",
            "allowUnauthenticatedWorkspaces: true",
        );
    });

    // Without a VirtualService nothing is published, and no policy is needed.
    accepted(|d| {
        remove(d, "authorizationpolicy.yaml.j2");
        remove(d, "virtualservice.yaml.j2");
    });
}

#[test]
fn an_access_policy_may_live_only_in_the_gateway_namespace() {
    for (from, to, needle) in [
        (
            "namespace: {{ access.gateway_namespace }}",
            "namespace: kube-system",
            "AuthorizationPolicy objects must be in \"istio-system\"",
        ),
        (
            "namespace: {{ access.gateway_namespace }}",
            "namespace: {{ namespace }}",
            "AuthorizationPolicy objects must be in \"istio-system\"",
        ),
    ] {
        let out = refused(|d| replace_in(d, "authorizationpolicy.yaml.j2", from, to));
        assert!(out.contains(needle), "{out}");
    }
    // On the shared gateway: a selector, and DENY (an ALLOW would deny every other host).
    for (from, to, needle) in [
        ("action: DENY", "action: ALLOW", "must be DENY (or CUSTOM)"),
        ("  action: DENY\n", "", "unset (ALLOW)"),
        (
            "  selector:\n    matchLabels: {{ required(",
            "  x:\n    y: {{ required(",
            "spec.selector.matchLabels must select the ingress gateway's pods",
        ),
    ] {
        let out = refused(|d| replace_in(d, "authorizationpolicy.yaml.j2", from, to));
        assert!(out.contains(needle), "{needle}: {out}");
    }
    // No other kind may use the gateway's namespace.
    let out = refused(|d| {
        replace_in(
            d,
            "_helpers.j2",
            "namespace: {{ namespace }}",
            "namespace: {{ access.gateway_namespace }}",
        )
    });
    assert!(
        out.contains("Pod objects must be in \"codeserver-instances\""),
        "{out}"
    );
}
