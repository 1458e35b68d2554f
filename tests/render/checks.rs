//! Render checks: each names the template file, the object and what is wrong.

use super::*;

fn assert_render_fails(edit: impl FnOnce(&Path), needles: &[&str]) {
    let dir = templates_with(edit);
    let (ok, _, err) = render_with(dir.path(), "john");
    assert!(!ok, "render should fail");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
}

#[test]
fn template_syntax_errors_name_file_and_line() {
    assert_render_fails(
        |d| replace_in(d, "service.yaml.j2", "type: ClusterIP", "type: {{ oops"),
        &["service.yaml.j2:", "syntax error"],
    );
}

#[test]
fn undefined_values_are_errors_with_file_and_line() {
    assert_render_fails(
        |d| {
            replace_in(
                d,
                "service.yaml.j2",
                "extra.service.port",
                "extra.service.prot",
            )
        },
        &["service.yaml.j2:10", "undefined"],
    );
}

#[test]
fn unparseable_yaml_is_reported() {
    assert_render_fails(
        |d| replace_in(d, "service.yaml.j2", "type: ClusterIP", "type: [ClusterIP"),
        &["service.yaml.j2", "does not parse"],
    );
}

#[test]
fn missing_identity_fields_are_reported() {
    assert_render_fails(
        |d| replace_in(d, "service.yaml.j2", "apiVersion: v1\n", ""),
        &["service.yaml.j2", "apiVersion is missing"],
    );
    assert_render_fails(
        |d| replace_in(d, "service.yaml.j2", "kind: Service\n", ""),
        &["kind is missing"],
    );
}

#[test]
fn unsafe_names_are_reported() {
    assert_render_fails(
        |d| {
            replace_in(
                d,
                "service.yaml.j2",
                "h.metadata(instance.service)",
                "h.metadata(\"Code_Server\")",
            )
        },
        &["service.yaml.j2: Service/Code_Server", "not a valid"],
    );
}

#[test]
fn missing_ownership_labels_are_reported() {
    assert_render_fails(
        |d| {
            replace_in(
                d,
                "_helpers.j2",
                "labels: {{ merge(labels, extra_labels) if extra_labels else labels }}",
                "labels: {app: x}",
            )
        },
        &[
            "ownership label app.kubernetes.io/managed-by is missing",
            "pvc.yaml.j2: PersistentVolumeClaim/workspace-john",
        ],
    );
}

#[test]
fn foreign_namespaces_are_reported() {
    assert_render_fails(
        |d| {
            replace_in(
                d,
                "_helpers.j2",
                "namespace: {{ namespace }}",
                "namespace: kube-system",
            )
        },
        &["namespace is \"kube-system\""],
    );
}

#[test]
fn misspelt_fields_are_reported() {
    assert_render_fails(
        |d| replace_in(d, "pod.yaml.j2", "  containers:\n", "  contianers:\n"),
        &[
            "pod.yaml.j2: Pod/code-server-john",
            "unknown field spec.contianers",
        ],
    );
}

#[test]
fn an_added_kind_renders_without_code_changes() {
    let dir = templates_with(|d| {
        fs::write(
            d.join("configmap.yaml.j2"),
            "{%- import \"_helpers.j2\" as h -%}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  {{ h.metadata(\"settings-\" ~ user.name) | indent(2) }}\ndata:\n  owner: {{ user.id }}\n",
        )
        .unwrap()
    });
    let (ok, out, err) = render_with(dir.path(), "john: \"doe\"");
    assert!(ok, "{err}");
    assert!(
        out.contains("kind: ConfigMap") && out.contains("# Source: configmap.yaml.j2"),
        "{out}"
    );
}
