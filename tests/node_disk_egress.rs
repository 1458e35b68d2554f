//! Issue 21, items 4 and 5: a workspace can neither fill its node's disk (every container
//! has an ephemeral-storage limit, every emptyDir a sizeLimit, and validate-templates
//! refuses a set without them) nor reach metadata endpoints and nodes through the egress
//! allow list (the always-excluded ranges are excepted from every block, and a block
//! inside one of them is refused).

use codeserver_service::{
    config::InstanceSettings,
    render::{self, Templates},
    values::Owner,
};
use serde_json::{Value, json};
use support::templates::{render_json, replace_in, run_command, sample_repo, templates_with};

#[path = "support/mod.rs"]
mod support;

const ALWAYS_EXCLUDED: [&str; 3] = ["169.254.0.0/16", "100.100.100.200/32", "168.63.129.16/32"];

/// `validate-templates` on the built-in set with `edit` applied: (accepted, output).
fn validate_edited(edit: impl FnOnce(&std::path::Path)) -> (bool, String) {
    let dir = templates_with(edit);
    let (result, out) = run_command(&[
        "validate-templates",
        "--templates",
        dir.path().to_str().expect("UTF-8 path"),
    ]);
    let err = result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    (result.is_ok(), format!("{out}\n{err}"))
}

fn ephemeral_limit(container: &Value) -> Option<&str> {
    container
        .pointer("/resources/limits/ephemeral-storage")
        .and_then(Value::as_str)
}

#[test]
fn every_container_has_an_ephemeral_storage_limit_and_every_emptydir_a_size_limit() {
    let templates = Templates::builtin().expect("the built-in templates load");
    let objects = render_json(
        &templates,
        &InstanceSettings::default(),
        &Owner::new("alice"),
    )
    .expect("renders");
    let pod = objects
        .iter()
        .find(|o| o["kind"] == "Pod")
        .expect("a Pod is rendered");
    let values = render::build_values(
        &templates,
        &InstanceSettings::default(),
        &Owner::new("alice"),
        &[sample_repo()],
        &[],
    )
    .expect("values");
    let job = templates
        .render_sync_job(
            &values,
            &render::JobValues {
                name: "sync-alice".to_owned(),
                node: Some("node-1".to_owned()),
            },
        )
        .expect("the sync Job renders");
    let job = serde_json::to_value(&job).expect("JSON");
    for spec in [&pod["spec"], &job["spec"]["template"]["spec"]] {
        let containers: Vec<&Value> = ["initContainers", "containers"]
            .iter()
            .flat_map(|list| spec[list].as_array().into_iter().flatten())
            .collect();
        assert!(containers.len() >= 2, "{spec}");
        for c in containers {
            assert!(ephemeral_limit(c).is_some(), "no limit: {}", c["name"]);
            assert!(
                c.pointer("/resources/requests/ephemeral-storage").is_some(),
                "no request: {}",
                c["name"]
            );
        }
        let mirrors = spec["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "git-mirrors")
            .expect("the git-mirrors volume");
        assert_eq!(mirrors["emptyDir"]["sizeLimit"], json!("4Gi"));
        for v in spec["volumes"].as_array().expect("volumes") {
            if let Some(dir) = v.get("emptyDir") {
                assert!(dir.get("sizeLimit").is_some(), "unbounded emptyDir {v}");
            }
        }
    }
}

#[test]
fn validation_refuses_a_container_without_an_ephemeral_storage_limit() {
    let (ok, out) = validate_edited(|d| {
        replace_in(
            d,
            "pod.yaml.j2",
            ", ephemeral-storage: {{ extra.codeServer.ephemeralStorage.limit }}",
            "",
        );
    });
    assert!(!ok, "accepted:\n{out}");
    assert!(
        out.contains("container \"code-server\" (containers) has no ephemeral-storage limit"),
        "{out}"
    );
    // The init containers and the sync Job share gitClone.resources.
    let (ok, out) = validate_edited(|d| {
        replace_in(
            d,
            "values.yaml",
            "limits: {cpu: 500m, memory: 256Mi, ephemeral-storage: 5Gi}",
            "limits: {cpu: 500m, memory: 256Mi}",
        );
    });
    assert!(!ok, "accepted:\n{out}");
    for needle in [
        "container \"git-clone\" (initContainers) has no ephemeral-storage limit",
        "container \"git-checkout\" (initContainers) has no ephemeral-storage limit",
        "container \"fetch\" (initContainers) has no ephemeral-storage limit",
        "container \"sync\" (containers) has no ephemeral-storage limit",
    ] {
        assert!(out.contains(needle), "{needle} not in:\n{out}");
    }
}

#[test]
fn validation_refuses_an_emptydir_without_a_size_limit() {
    let (ok, out) = validate_edited(|d| {
        replace_in(
            d,
            "_helpers.j2",
            "emptyDir: {sizeLimit: {{ extra.gitClone.mirrorsSizeLimit }}}",
            "emptyDir: {}",
        );
    });
    assert!(!ok, "accepted:\n{out}");
    assert!(
        out.contains("emptyDir volume \"git-mirrors\" has no sizeLimit"),
        "{out}"
    );
    assert!(out.contains("pod.yaml.j2"), "names the pod template: {out}");
    assert!(out.contains("sync-job.yaml.j2"), "and the Job's: {out}");
}

#[test]
fn the_built_in_set_passes_validation() {
    let (ok, out) = validate_edited(|_| {});
    assert!(ok, "{out}");
}

fn network_policy(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == "NetworkPolicy"
                && o["spec"]["podSelector"]["matchLabels"]
                    .get("devplatform.io/sync-of")
                    .is_none()
        })
        .expect("the instance's NetworkPolicy")
}

fn ip_blocks(policy: &Value) -> Vec<&Value> {
    policy["spec"]["egress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["to"].as_array().into_iter().flatten())
        .filter_map(|peer| peer.get("ipBlock"))
        .collect()
}

fn excepts(block: &Value) -> Vec<String> {
    block["except"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn an_open_allow_list_excepts_every_always_excluded_range_and_the_nodes() {
    let templates = Templates::builtin().expect("the built-in templates load");
    let objects = render_json(
        &templates,
        &InstanceSettings::default(),
        &Owner::new("alice"),
    )
    .expect("renders");
    let blocks = ip_blocks(network_policy(&objects));
    let open = blocks
        .iter()
        .find(|b| b["cidr"] == "0.0.0.0/0")
        .expect("the default allow list is 0.0.0.0/0");
    let except = excepts(open);
    for never in ALWAYS_EXCLUDED.iter().chain(&["169.254.169.254/32"]) {
        assert!(
            except.contains(&(*never).to_owned()),
            "{never} not in {except:?}"
        );
    }

    // Node CIDRs, and Gitea's external CIDRs get the same exceptions.
    let values = render::build_values(
        &templates,
        &InstanceSettings::default(),
        &Owner::new("alice"),
        &[sample_repo()],
        &[],
    )
    .expect("values");
    let mut values = values;
    let egress = &mut std::sync::Arc::make_mut(&mut values.extra)["networkPolicy"]["egress"];
    egress["nodeCidrs"] = json!(["192.168.10.0/24"]);
    egress["gitea"]["cidrs"] = json!(["192.168.0.0/16"]);
    let objects: Vec<Value> = templates
        .render(&values)
        .expect("renders")
        .iter()
        .map(|r| serde_json::to_value(&r.object).expect("JSON"))
        .collect();
    let blocks = ip_blocks(network_policy(&objects));
    let open = blocks
        .iter()
        .find(|b| b["cidr"] == "0.0.0.0/0")
        .expect("open");
    assert!(excepts(open).contains(&"192.168.10.0/24".to_owned()));
    let gitea = blocks
        .iter()
        .find(|b| b["cidr"] == "192.168.0.0/16")
        .expect("Gitea's block");
    assert_eq!(excepts(gitea), vec!["192.168.10.0/24".to_owned()]);
}

#[test]
fn an_allow_block_inside_an_always_excluded_range_or_the_nodes_is_refused() {
    let templates = Templates::builtin().expect("the built-in templates load");
    let base = render::build_values(
        &templates,
        &InstanceSettings::default(),
        &Owner::new("alice"),
        &[sample_repo()],
        &[],
    )
    .expect("values");
    for (cidr, range, nodes) in [
        ("100.100.100.200/32", "100.100.100.200/32", None),
        ("169.254.170.23/32", "169.254.0.0/16", None),
        ("169.254.0.0/16", "169.254.0.0/16", None),
        ("168.63.129.16/32", "168.63.129.16/32", None),
        ("10.0.0.7/32", "10.0.0.0/24", Some("10.0.0.0/24")),
    ] {
        let mut values = base.clone();
        let egress = &mut std::sync::Arc::make_mut(&mut values.extra)["networkPolicy"]["egress"];
        egress["allowed"] = json!([{"cidr": cidr, "ports": [{"port": 80, "protocol": "TCP"}]}]);
        if let Some(nodes) = nodes {
            egress["nodeCidrs"] = json!([nodes]);
        }
        let err = templates.render(&values).expect_err(cidr).to_string();
        assert!(
            err.contains(&format!("{cidr} lies inside the excluded block {range}")),
            "{cidr}: {err}"
        );
    }
    // And through validate-templates, from the values file.
    let (ok, out) = validate_edited(|d| {
        replace_in(
            d,
            "values.yaml",
            "- cidr: 0.0.0.0/0",
            "- cidr: 100.100.100.200/32",
        );
    });
    assert!(!ok, "accepted:\n{out}");
    assert!(
        out.contains("100.100.100.200/32 lies inside the excluded block 100.100.100.200/32"),
        "{out}"
    );
}

#[test]
fn a_sidecar_without_a_disk_limit_gets_the_default_and_keeps_its_own() {
    let templates = Templates::builtin().expect("the built-in templates load");
    let mut values = render::build_values(
        &templates,
        &InstanceSettings::default(),
        &Owner::new("alice"),
        &[sample_repo()],
        &[],
    )
    .expect("values");
    std::sync::Arc::make_mut(&mut values.extra)["pod"]["sidecars"] = json!([
        {"name": "bare", "image": "i"},
        {"name": "cpu-only", "image": "i", "resources": {"requests": {"cpu": "10m"}, "limits": {"cpu": "1"}}},
        {"name": "own", "image": "i", "resources": {"limits": {"ephemeral-storage": "2Gi"}}},
    ]);
    let objects: Vec<Value> = templates
        .render(&values)
        .expect("renders")
        .iter()
        .map(|r| serde_json::to_value(&r.object).expect("JSON"))
        .collect();
    let pod = objects.iter().find(|o| o["kind"] == "Pod").expect("a Pod");
    let container = |name: &str| {
        pod["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .expect(name)
    };
    assert_eq!(ephemeral_limit(&container("bare")), Some("1Gi"));
    let cpu_only = container("cpu-only");
    assert_eq!(ephemeral_limit(&cpu_only), Some("1Gi"));
    assert_eq!(cpu_only["resources"]["limits"]["cpu"], json!("1"));
    assert_eq!(cpu_only["resources"]["requests"]["cpu"], json!("10m"));
    assert_eq!(ephemeral_limit(&container("own")), Some("2Gi"));
    assert_eq!(container("own")["image"], json!("i"));
}
