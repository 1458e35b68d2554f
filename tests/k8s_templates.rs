//! `k8s/09-templates-configmap.yaml` is generated from `templates/`, the one source of
//! truth for what every user's workspace looks like: this test fails when the two
//! differ. `make k8s-templates` (UPDATE_TEMPLATES_CONFIGMAP=1) rewrites the file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use codeserver_service::render::Templates;
use serde::Serialize;

const CONFIGMAP: &str = "k8s/09-templates-configmap.yaml";
/// NB: keep in step with the `templates` volume of `k8s/04-deployment.yaml`.
const NAME: &str = "codeserver-templates";
const NAMESPACE: &str = "dev-platform";
/// The API server refuses a ConfigMap over 1 MiB; stay well below it.
const MAX_BYTES: usize = 512 * 1024;

const HEADER: &str = "\
# The admin's templates and values.yaml, mounted by 04-deployment.yaml at TEMPLATES_DIR.
# The service picks up a change to this ConfigMap without a restart (see
# docs/admin-guide.md, \"Reload and rollouts\").
#
# GENERATED from templates/ by `make k8s-templates`: edit templates/, never this file.
# tests/k8s_templates.rs fails when the two differ.
---
";

/// Field order as people read a manifest: apiVersion, kind, metadata, data.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigMap {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    data: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Metadata {
    name: &'static str,
    namespace: &'static str,
    labels: BTreeMap<&'static str, &'static str>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Every file of `dir`, by name. ConfigMap keys are flat, so a subdirectory is an error.
fn template_files(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("templates/ is readable") {
        let entry = entry.expect("templates/ entry is readable");
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().expect("a file type");
        assert!(
            kind.is_file(),
            "templates/{name}: only plain files fit in a ConfigMap (keys are flat names)"
        );
        assert!(
            !name.starts_with('.'),
            "templates/{name}: hidden files are skipped by the service; remove it"
        );
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
            "templates/{name}: not a valid ConfigMap key"
        );
        let text = std::fs::read_to_string(entry.path()).expect("a template is UTF-8 text");
        files.insert(name, text);
    }
    files
}

/// The ConfigMap manifest for the files of `dir`.
fn generate(dir: &Path) -> String {
    let config_map = ConfigMap {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: Metadata {
            name: NAME,
            namespace: NAMESPACE,
            labels: BTreeMap::from([
                ("app.kubernetes.io/name", "codeserver-service"),
                ("app.kubernetes.io/component", "templates"),
                ("app.kubernetes.io/part-of", "devplatform"),
            ]),
        },
        data: template_files(dir),
    };
    let body = serde_yaml_ng::to_string(&config_map).expect("a ConfigMap serializes");
    format!("{HEADER}{body}")
}

#[test]
fn the_templates_configmap_is_generated_from_templates() {
    let expected = generate(&root().join("templates"));
    assert!(
        expected.len() < MAX_BYTES,
        "the templates take {} bytes; a ConfigMap holds at most 1 MiB",
        expected.len()
    );
    let path = root().join(CONFIGMAP);
    if std::env::var_os("UPDATE_TEMPLATES_CONFIGMAP").is_some() {
        std::fs::write(&path, &expected).expect("the ConfigMap is writable");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{CONFIGMAP} is out of date with templates/: run `make k8s-templates` and commit both"
    );
}

#[test]
fn the_configmap_round_trips_to_the_same_template_set() {
    // What the kubelet will write into the pod's volume is exactly templates/: the same
    // files, the same text, the same revision.
    let text = std::fs::read_to_string(root().join(CONFIGMAP)).expect("the ConfigMap exists");
    let parsed: k8s_openapi::api::core::v1::ConfigMap =
        serde_yaml_ng::from_str(&text).expect("the ConfigMap parses");
    let data = parsed.data.expect("the ConfigMap has data");
    assert_eq!(data, template_files(&root().join("templates")));

    let mounted = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in &data {
        std::fs::write(mounted.path().join(name), text).expect("a file is writable");
    }
    let from_configmap = Templates::load_dir(mounted.path()).expect("the mounted set loads");
    let from_repo = Templates::load_dir(&root().join("templates")).expect("templates/ loads");
    let built_in = Templates::builtin().expect("the built-in set loads");
    assert_eq!(from_configmap.revision(), from_repo.revision());
    assert_eq!(
        from_repo.revision(),
        built_in.revision(),
        "the binary's built-in templates are templates/"
    );
}

#[test]
fn a_changed_template_is_reported_as_drift() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in template_files(&root().join("templates")) {
        std::fs::write(dir.path().join(name), text).expect("a file is writable");
    }
    let before = generate(dir.path());
    let pod = dir.path().join("pod.yaml.j2");
    let text = std::fs::read_to_string(&pod).expect("pod.yaml.j2 exists");
    std::fs::write(
        &pod,
        text.replace("restartPolicy: Always", "restartPolicy: Never"),
    )
    .expect("a file is writable");
    assert_ne!(before, generate(dir.path()));
}
