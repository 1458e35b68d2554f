//! Values: files and `--set` overrides over values.yaml, optional objects.

use super::*;

#[test]
fn values_files_and_set_overrides_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.yaml");
    fs::write(
        &file,
        "service:\n  port: 8000\nimage: registry.local/code:1\n",
    )
    .unwrap();
    let objects = objects_of(render_repo(
        "n",
        &[
            "--output",
            "json",
            "--values",
            file.to_str().unwrap(),
            "--set",
            "service.port=9000",
        ],
    ));
    let svc = objects.iter().find(|o| o["kind"] == "Service").unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 9000);
    let pod = objects.iter().find(|o| o["kind"] == "Pod").unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.local/code:1"
    );
    let (ok, _, err) = render_repo("n", &["--set", "broken"]);
    assert!(!ok && err.contains("invalid --set"), "{err}");
}

#[test]
fn optional_objects_can_be_switched_off() {
    let (ok, out, err) = render_repo(
        "n",
        &[
            "--set",
            "virtualService.enabled=false",
            "--set",
            "networkPolicy.enabled=false",
        ],
    );
    assert!(ok, "{err}");
    assert!(!out.contains("kind: VirtualService") && !out.contains("kind: NetworkPolicy"));
    assert!(out.contains("kind: Pod"));
}

#[test]
fn values_files_are_read_once_when_the_set_loads() {
    use codeserver_service::{
        config::InstanceSettings,
        render::{self, Templates},
        values::{Owner, Repo},
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.yaml");
    fs::write(&file, "service:\n  port: 8000\n").unwrap();
    let builtin = Templates::builtin().unwrap();
    let revision = builtin.revision().to_owned();
    let templates = builtin
        .with_values_files(std::slice::from_ref(&file))
        .unwrap();
    assert_ne!(
        templates.revision(),
        revision,
        "the revision covers values files"
    );
    fs::remove_file(&file).unwrap();
    let repo = Repo::new("o", "n", "http://g/o/n.git").unwrap();
    let values = render::build_values(
        &templates,
        &InstanceSettings::default(),
        &Owner::new("u"),
        &[repo],
        &[],
    )
    .unwrap();
    let objects = templates.render(&values).unwrap();
    let svc = objects
        .iter()
        .find(|r| r.object.types.as_ref().unwrap().kind == "Service")
        .unwrap();
    assert_eq!(svc.object.data["spec"]["ports"][0]["port"], 8000);
    let missing = Templates::builtin()
        .unwrap()
        .with_values_files(&[file])
        .unwrap_err();
    assert!(missing.to_string().contains("site.yaml"), "{missing}");
}
