//! The recipes of `docs/admin-guide.md` work as written: each one, applied to a copy of
//! `templates/`, passes `validate-templates` and renders what the guide says.
//!
//! A fenced block whose info string carries `recipe=<name> file=<file>` belongs to a
//! recipe: a `values.yaml` block is merged over the templates' `values.yaml` (as an admin
//! would add those keys); any other file is written as it stands.

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use clap::CommandFactory;
use codeserver_service::{
    config::{Cli, InstanceSettings},
    naming,
    render::{self, RenderedObject, Templates},
    values::{self, Owner, Repo},
};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use support::{known_fields::strict, pod_security::restricted_violations};
use tempfile::TempDir;

/// One recipe block: the file it changes and its text.
struct Block {
    file: String,
    text: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Every recipe of the guide, by name, with its blocks in order.
fn recipes() -> BTreeMap<String, Vec<Block>> {
    let guide =
        std::fs::read_to_string(root().join("docs/admin-guide.md")).expect("the guide exists");
    let mut recipes: BTreeMap<String, Vec<Block>> = BTreeMap::new();
    let mut open: Option<(Option<(String, String)>, String)> = None;
    for line in guide.lines() {
        match open.take() {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    let attribute = |key: &str| {
                        info.split_whitespace()
                            .find_map(|word| word.strip_prefix(key))
                            .map(str::to_owned)
                    };
                    let target = attribute("recipe=").zip(attribute("file="));
                    open = Some((target, String::new()));
                }
            }
            Some((target, mut text)) => {
                if line.starts_with("```") {
                    if let Some((recipe, file)) = target {
                        recipes
                            .entry(recipe)
                            .or_default()
                            .push(Block { file, text });
                    }
                } else {
                    text.push_str(line);
                    text.push('\n');
                    open = Some((target, text));
                }
            }
        }
    }
    assert!(open.is_none(), "an unterminated code block in the guide");
    recipes
}

/// A copy of `templates/` with `recipe` applied.
fn apply(recipe: &str) -> TempDir {
    let blocks = recipes().remove(recipe).unwrap_or_else(|| {
        panic!("docs/admin-guide.md has no recipe={recipe} blocks");
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    for entry in std::fs::read_dir(root().join("templates")).expect("templates/ is readable") {
        let path = entry.expect("an entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("a name"))).expect("copied");
    }
    for block in blocks {
        let path = dir.path().join(&block.file);
        if block.file == render::VALUES_FILE {
            let text = std::fs::read_to_string(&path).expect("values.yaml exists");
            let mut base: Value = serde_yaml_ng::from_str(&text).expect("values.yaml parses");
            let overlay: Value = serde_yaml_ng::from_str(&block.text)
                .unwrap_or_else(|e| panic!("recipe {recipe}: values block does not parse: {e}"));
            values::merge(&mut base, overlay);
            let merged = serde_yaml_ng::to_string(&base).expect("values serialize");
            std::fs::write(&path, merged).expect("values.yaml is writable");
        } else {
            std::fs::write(&path, &block.text).expect("a template is writable");
        }
    }
    dir
}

fn settings(dir: &Path) -> InstanceSettings {
    support::validate_templates_settings(&["--templates", &dir.display().to_string()])
}

/// Validates the set as the service does before accepting it, then renders it for a
/// sample user with `adjust` applied to the values.
fn validate_and_render(dir: &Path, adjust: impl FnOnce(&mut Value)) -> Vec<RenderedObject> {
    let settings = settings(dir);
    let templates = Templates::load_dir(dir).expect("the changed set loads");
    let problems = render::validate(&templates, &settings);
    assert!(
        problems.is_empty(),
        "validate-templates refuses the recipe:\n{}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let owner = Owner::new("John.Doe@corp.example");
    let repo = Repo::new(
        "devteam",
        "backend-api",
        "http://gitea:3000/devteam/backend-api.git",
    )
    .expect("a repository");
    let mut values =
        render::build_values(&templates, &settings, &owner, &[repo], &[]).expect("values build");
    adjust(std::sync::Arc::make_mut(&mut values.extra));
    templates.render(&values).expect("the recipe renders")
}

fn object(objects: &[RenderedObject], kind: &str) -> Value {
    let found: Vec<&RenderedObject> = objects
        .iter()
        .filter(|r| r.object.types.as_ref().is_some_and(|t| t.kind == kind))
        // NB: the sync Job pod's NetworkPolicy (`sync-<name>`) is not the workspace's.
        .filter(|r| {
            !r.object
                .metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("sync-"))
        })
        .collect();
    assert_eq!(found.len(), 1, "one {kind} is rendered");
    serde_json::to_value(&found[0].object).expect("an object serializes")
}

#[test]
fn the_guide_has_every_recipe() {
    let names: Vec<String> = recipes().into_keys().collect();
    assert_eq!(names, ["configmap", "egress", "gpu-profile", "sidecar"]);
}

#[test]
fn a_gpu_profile_from_values_alone_sizes_and_places_its_pods() {
    let dir = apply("gpu-profile");
    // NB: validates every profile, then renders the default one.
    let standard = object(&validate_and_render(dir.path(), |_| {}), "Pod");
    assert_eq!(standard["spec"]["nodeSelector"], json!({}));
    let templates = Templates::load_dir(dir.path()).expect("the changed set loads");
    let repo = Repo::new("devteam", "api", "http://gitea:3000/devteam/api.git").expect("a repo");
    let values = render::build_profile_values(
        &templates,
        &settings(dir.path()),
        &Owner::new("jd"),
        &[repo],
        Some("gpu"),
        &[],
    )
    .expect("values build");
    let objects = templates.render(&values).expect("the gpu profile renders");
    let pod = object(&objects, "Pod");
    assert_eq!(pod["spec"]["nodeSelector"], json!({"node-pool": "gpu"}));
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "nvidia.com/gpu");
    let code_server = &pod["spec"]["containers"][0];
    assert_eq!(code_server["resources"]["limits"]["memory"], "32Gi");
    assert_eq!(code_server["image"], "codercom/code-server:4.96.4");
    let pvc = object(&objects, "PersistentVolumeClaim");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "50Gi");
}

#[test]
fn a_sidecar_from_values_alone_joins_the_pod_and_meets_the_pod_security_level() {
    let dir = apply("sidecar");
    let objects = validate_and_render(dir.path(), |_| {});
    let pod: Pod = strict(&object(&objects, "Pod")).expect("a Pod");
    let spec = pod.spec.expect("a pod spec");
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["code-server", "docs-preview"]);
    let violations = restricted_violations(&spec);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn the_egress_allow_list_from_values_replaces_the_internet_and_can_be_turned_off() {
    let dir = apply("egress");
    let objects = validate_and_render(dir.path(), |_| {});
    let policy = object(&objects, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let egress = policy["spec"]["egress"].as_array().expect("egress rules");
    assert_eq!(egress.len(), 3, "DNS, Gitea and the mirror: {egress:?}");
    assert_eq!(
        egress[0]["ports"][0],
        json!({"protocol": "UDP", "port": 53})
    );
    assert_eq!(
        egress[2]["to"][0]["ipBlock"],
        json!({"cidr": "10.20.0.0/16", "except": []}),
        "nothing excluded lies inside the mirror's block"
    );
    assert_eq!(
        egress[2]["ports"],
        json!([{"port": 443, "protocol": "TCP"}])
    );

    let objects = validate_and_render(dir.path(), |extra| {
        extra["networkPolicy"]["egress"]["enabled"] = json!(false);
    });
    let policy = object(&objects, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(policy["spec"].get("egress").is_none());
}

#[test]
fn a_new_kind_is_rendered_for_every_instance_with_the_ownership_labels() {
    let dir = apply("configmap");
    let objects = validate_and_render(dir.path(), |_| {});
    let config_map = object(&objects, "ConfigMap");
    let pod = object(&objects, "Pod");
    let labels = &config_map["metadata"]["labels"];
    assert_eq!(labels[naming::LABEL_MANAGED_BY], naming::MANAGED_BY_VALUE);
    assert_eq!(
        labels[naming::LABEL_INSTANCE],
        pod["metadata"]["labels"][naming::LABEL_INSTANCE]
    );
    let user = labels[naming::LABEL_USER].as_str().expect("a user label");
    assert_eq!(config_map["metadata"]["name"], format!("settings-{user}"));
    let settings: Value = serde_json::from_str(
        config_map["data"]["settings.json"]
            .as_str()
            .expect("settings.json is a string"),
    )
    .expect("settings.json is JSON");
    assert_eq!(settings["editor.formatOnSave"], json!(true));
    assert_eq!(
        config_map["metadata"]["annotations"][naming::ANNOTATION_TEMPLATE_REVISION],
        pod["metadata"]["annotations"][naming::ANNOTATION_TEMPLATE_REVISION]
    );
}

#[test]
fn the_configuration_table_lists_every_setting() {
    let guide =
        std::fs::read_to_string(root().join("docs/admin-guide.md")).expect("the guide exists");
    let section = guide
        .split("## 2. Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the guide has a configuration section");
    let documented: std::collections::BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name.to_owned()))
        .collect();
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve command");
    let settings: std::collections::BTreeSet<String> = serve
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    let missing: Vec<&String> = settings.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&settings).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "section 2 of docs/admin-guide.md is out of date: missing {missing:?}, not settings {unknown:?}"
    );
}
