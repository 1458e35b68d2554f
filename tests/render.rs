//! The render pipeline through its public surface: the `render` and `validate-templates`
//! commands (in-process and as a binary), golden manifests, hostile input and every
//! render check.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use clap::Parser;
use codeserver_service::{
    cli,
    config::{Cli, Command as Sub},
    naming,
};

const BIN: &str = env!("CARGO_BIN_EXE_codeserver-service");

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a subcommand in-process; returns (ok, stdout, error text).
fn run(args: &[&str]) -> (bool, String, String) {
    let cli =
        Cli::try_parse_from(std::iter::once("codeserver-service").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let result = match cli.command {
        Some(Sub::Render(a)) => cli::render_command(&a, &mut out),
        Some(Sub::ValidateTemplates(a)) => cli::validate_command(&a, &mut out),
        other => panic!("unexpected command {other:?}"),
    };
    let err = result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    (result.is_ok(), String::from_utf8(out).unwrap(), err)
}

/// A copy of the built-in templates in a temporary directory, with `edit` applied.
fn templates_with(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(repo_root().join("templates")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    edit(dir.path());
    dir
}

fn replace_in(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// `validate-templates` on the template set in `dir`: (success, stdout, stderr).
fn validate(dir: &tempfile::TempDir) -> (bool, String, String) {
    run(&[
        "validate-templates",
        "--templates",
        dir.path().to_str().unwrap(),
    ])
}

fn render_with(dir: &Path, user: &str) -> (bool, String, String) {
    let user_arg = format!("--user={user}");
    run(&[
        "render",
        "--templates",
        dir.to_str().unwrap(),
        &user_arg,
        "--repo-owner",
        "devteam",
        "--repo-name",
        "api",
    ])
}

// ---------------------------------------------------------------------------------------
// Golden renders: tests/data/render/<case>.args holds the arguments, <case>.yaml the
// expected manifests. UPDATE_GOLDEN=1 rewrites them; a template change shows as a diff.

#[test]
fn golden_renders_match() {
    let data = repo_root().join("tests/data/render");
    let mut cases: Vec<PathBuf> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "args"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 4,
        "expected several golden cases in {}",
        data.display()
    );
    let mut failures = Vec::new();
    for case in cases {
        let args_text = fs::read_to_string(&case).unwrap();
        let mut args: Vec<String> = args_text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        for a in &mut args {
            *a = a.replace("$DATA", data.to_str().unwrap());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = run(&refs);
        assert!(ok, "{}: {err}", case.display());
        let expected_path = case.with_extension("yaml");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            fs::write(&expected_path, &out).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != out {
            failures.push(format!(
                "{}:\n{}",
                expected_path.display(),
                line_diff(&expected, &out)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden renders differ (UPDATE_GOLDEN=1 to accept):\n{}",
        failures.join("\n")
    );
}

fn line_diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                out.push_str(&format!(
                    "  line {}:\n  - {}\n  + {}\n",
                    i + 1,
                    x.unwrap_or(&""),
                    y.unwrap_or(&"")
                ));
                if out.len() > 2000 {
                    break;
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Hostile input

#[test]
fn hostile_user_ids_stay_inside_their_scalars() {
    for user in codeserver_service::render::SAMPLE_USERS {
        let user_arg = format!("--user={user}");
        let (ok, out, err) = run(&[
            "render",
            "--output",
            "json",
            &user_arg,
            "--email",
            "x\"y@z",
            "--repo-owner",
            "o",
            "--repo-name",
            "n",
        ]);
        assert!(ok, "{user:?}: {err}");
        let objects: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(
            objects.len(),
            7,
            "{user:?} rendered {} objects",
            objects.len()
        );
        for obj in &objects {
            assert_eq!(
                obj["metadata"]["annotations"][naming::ANNOTATION_USER_ID],
                *user
            );
            assert_eq!(
                obj["metadata"]["annotations"][naming::ANNOTATION_EMAIL],
                "x\"y@z"
            );
            let name = obj["metadata"]["name"].as_str().unwrap();
            assert!(naming::is_dns_label(name), "{name}");
            assert_ne!(obj["kind"], "Secret", "a hostile id injected an object");
        }
    }
}

#[test]
fn hostile_repository_names_are_refused() {
    for bad in ["a;rm -rf /", "..", "$(id)", "a\nb", &"x".repeat(10_000)] {
        let (ok, _, err) = run(&[
            "render",
            "--user",
            "u",
            "--repo-owner",
            "o",
            "--repo-name",
            bad,
        ]);
        assert!(!ok);
        assert!(err.contains("invalid repository name"), "{err}");
        assert!(err.len() < 500, "error stays short");
    }
}

#[test]
fn repository_values_reach_the_script_only_as_environment() {
    let (ok, out, err) = run(&[
        "render",
        "--output",
        "json",
        "--user",
        "u",
        "--repo-owner",
        "o",
        "--repo-name",
        "n.v2",
        "--clone-url",
        "http://g/o/n.v2.git",
    ]);
    assert!(ok, "{err}");
    let objects: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let pod = objects.iter().find(|o| o["kind"] == "Pod").unwrap();
    let init = &pod["spec"]["initContainers"][0];
    let script = init["args"][0].as_str().unwrap();
    assert!(
        !script.contains("n.v2") && !script.contains("http://g"),
        "script text must be fixed"
    );
    let env = init["env"].as_array().unwrap();
    let repos = env.iter().find(|e| e["name"] == "REPOS").unwrap();
    let line = repos["value"].as_str().unwrap();
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 3, "{line}");
    assert_eq!((fields[0], fields[2]), ("n.v2", "http://g/o/n.v2.git"));
    assert!(fields[1].starts_with("id-"), "{line}");
    assert!(
        !pod.to_string().contains("GIT_TOKEN") && !pod.to_string().contains("secretKeyRef"),
        "no shared token reaches the pod"
    );
    let main = &pod["spec"]["containers"][0];
    assert!(
        !main.to_string().contains("git-keys"),
        "only the init container mounts the deploy keys"
    );
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert_eq!(pod["spec"]["securityContext"]["runAsUser"], 1000);
    assert_eq!(
        pod["spec"]["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(main["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(main["securityContext"]["allowPrivilegeEscalation"], false);
}

// ---------------------------------------------------------------------------------------
// Render checks: each names the template file, the object and what is wrong.

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

#[test]
fn values_files_and_set_overrides_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.yaml");
    fs::write(
        &file,
        "service:\n  port: 8000\nimage: registry.local/code:1\n",
    )
    .unwrap();
    let (ok, out, err) = run(&[
        "render",
        "--output",
        "json",
        "--user",
        "u",
        "--repo-owner",
        "o",
        "--repo-name",
        "n",
        "--values",
        file.to_str().unwrap(),
        "--set",
        "service.port=9000",
    ]);
    assert!(ok, "{err}");
    let objects: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let svc = objects.iter().find(|o| o["kind"] == "Service").unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 9000);
    let pod = objects.iter().find(|o| o["kind"] == "Pod").unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.local/code:1"
    );
    let (ok, _, err) = run(&[
        "render",
        "--user",
        "u",
        "--repo-owner",
        "o",
        "--repo-name",
        "n",
        "--set",
        "broken",
    ]);
    assert!(!ok && err.contains("invalid --set"), "{err}");
}

#[test]
fn optional_objects_can_be_switched_off() {
    let (ok, out, err) = run(&[
        "render",
        "--user",
        "u",
        "--repo-owner",
        "o",
        "--repo-name",
        "n",
        "--set",
        "virtualService.enabled=false",
        "--set",
        "networkPolicy.enabled=false",
    ]);
    assert!(ok, "{err}");
    assert!(!out.contains("kind: VirtualService") && !out.contains("kind: NetworkPolicy"));
    assert!(out.contains("kind: Pod"));
}

// ---------------------------------------------------------------------------------------
// validate-templates

#[test]
fn validate_templates_accepts_the_built_in_set_and_lists_every_problem_of_a_broken_one() {
    let (ok, out, err) = run(&["validate-templates"]);
    assert!(ok, "{err}\n{out}");
    assert!(out.starts_with("ok: 6 templates"), "{out}");

    let dir = templates_with(|d| {
        replace_in(d, "pod.yaml.j2", "  containers:\n", "  contianers:\n");
        replace_in(d, "service.yaml.j2", "extra.service.port", "extra.nope");
    });
    let (ok, out, err) = validate(&dir);
    assert!(!ok);
    assert!(err.contains("problem(s)"), "{err}");
    assert!(
        out.contains("unknown field spec.contianers") && out.contains("service.yaml.j2:10"),
        "{out}"
    );
    // one line per problem, not one per sample user
    assert!(out.lines().count() <= 4, "{out}");
}

// ---------------------------------------------------------------------------------------
// The binary: exit codes and one-line configuration errors.

/// Runs the binary's `render` for repository `repo_name` with `env` set.
fn render_binary(repo_name: &str, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args([
            "render",
            "--user",
            "u",
            "--repo-owner",
            "o",
            "--repo-name",
            repo_name,
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn the_binary_exits_zero_on_success_and_non_zero_on_errors() {
    let ok = render_binary("n", &[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("kind: PersistentVolumeClaim"));

    let bad = render_binary("..", &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid repository name"));

    let cfg = render_binary("n", &[("PVC_SIZE", "ten gigs")]);
    assert_eq!(cfg.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&cfg.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("PVC_SIZE") && stderr.contains("ten gigs"),
        "{stderr}"
    );

    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for var in [
        "PORT",
        "METRICS_PORT",
        "ENVIRONMENT",
        "LOG_LEVEL",
        "SHUTDOWN_TIMEOUT",
        "KUBECONFIG",
        "CODESERVER_NAMESPACE",
        "PVC_STORAGE_CLASS",
        "PVC_SIZE",
        "CODESERVER_IMAGE",
        "CODESERVER_CPU",
        "CODESERVER_MEMORY",
        "CODESERVER_TIMEOUT",
        "GITEA_URL",
        "GITEA_TOKEN",
        "GITEA_SERVICE_URL",
        "BASE_DOMAIN",
        "TEMPLATES_DIR",
        "VALUES_FILE",
        "JWT_SECRET",
    ] {
        assert!(
            help.contains(&format!("env: {var}")) || help.contains(&format!("env: {var}=")),
            "--help lacks {var}"
        );
    }
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

#[test]
fn a_set_that_publishes_workspaces_without_an_access_policy_is_refused_unless_allowed() {
    let dir = templates_with(|d| {
        fs::remove_file(d.join("authorizationpolicy.yaml.j2")).unwrap();
    });
    let (ok, out, _) = validate(&dir);
    assert!(!ok, "{out}");
    assert!(
        out.contains("no per-instance access policy is rendered")
            && out.contains("security.allowUnauthenticatedWorkspaces"),
        "{out}"
    );

    // A policy that names neither the host nor the owner does not count.
    let dir = templates_with(|d| {
        replace_in(
            d,
            "authorizationpolicy.yaml.j2",
            "hosts: {{ access.hosts }}",
            "hosts: [\"elsewhere.example\"]",
        );
    });
    let (ok, out, _) = validate(&dir);
    assert!(
        !ok && out.contains("no per-instance access policy"),
        "{out}"
    );

    // With the explicit value the set is accepted.
    let dir = templates_with(|d| {
        fs::remove_file(d.join("authorizationpolicy.yaml.j2")).unwrap();
        replace_in(
            d,
            "values.yaml",
            "allowUnauthenticatedWorkspaces: false",
            "allowUnauthenticatedWorkspaces: true",
        );
    });
    let (ok, out, err) = validate(&dir);
    assert!(ok, "{err}\n{out}");

    // Without a VirtualService nothing is published, and no policy is needed.
    let dir = templates_with(|d| {
        fs::remove_file(d.join("authorizationpolicy.yaml.j2")).unwrap();
        fs::remove_file(d.join("virtualservice.yaml.j2")).unwrap();
    });
    let (ok, out, err) = validate(&dir);
    assert!(ok, "{err}\n{out}");
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
        let dir = templates_with(|d| replace_in(d, "authorizationpolicy.yaml.j2", from, to));
        let (ok, out, _) = validate(&dir);
        assert!(!ok && out.contains(needle), "{out}");
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
        let dir = templates_with(|d| replace_in(d, "authorizationpolicy.yaml.j2", from, to));
        let (ok, out, _) = validate(&dir);
        assert!(!ok && out.contains(needle), "{needle}: {out}");
    }
    // No other kind may use the gateway's namespace.
    let dir = templates_with(|d| {
        replace_in(
            d,
            "_helpers.j2",
            "namespace: {{ namespace }}",
            "namespace: {{ access.gateway_namespace }}",
        )
    });
    let (ok, out, _) = validate(&dir);
    assert!(
        !ok && out.contains("Pod objects must be in \"codeserver-instances\""),
        "{out}"
    );
}

/// Every Secret a rendered object references (volumes, env, projected sources).
fn referenced_secrets(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("secretName", serde_json::Value::String(name)) => found.push(name.clone()),
                    ("secretKeyRef" | "secretRef" | "secret", serde_json::Value::Object(r)) => {
                        if let Some(name) = r.get("name").and_then(|n| n.as_str()) {
                            found.push(name.to_owned());
                        }
                    }
                    _ => {}
                }
                referenced_secrets(v, found);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| referenced_secrets(v, found)),
        _ => {}
    }
}

fn render_objects(user: &str) -> Vec<serde_json::Value> {
    let (ok, out, err) = run(&[
        "render",
        "--output",
        "json",
        "--user",
        user,
        "--repo-owner",
        "devteam",
        "--repo-name",
        "backend-api",
    ]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_pods_of_two_users_reference_no_common_secret() {
    let secrets = |user: &str| {
        let mut found = Vec::new();
        for object in render_objects(user) {
            referenced_secrets(&object, &mut found);
        }
        found
    };
    let (alice, bob) = (secrets("alice"), secrets("bob"));
    assert_eq!(alice, ["git-keys-alice"]);
    assert_eq!(bob, ["git-keys-bob"]);
}

#[test]
fn the_git_script_disables_hooks_and_fsmonitor_and_fetches_the_recorded_url() {
    let objects = render_objects("alice");
    let pod = objects.iter().find(|o| o["kind"] == "Pod").unwrap();
    let inits = pod["spec"]["initContainers"].as_array().unwrap();
    let (fetch, checkout) = (&inits[0], &inits[1]);
    let script = |c: &serde_json::Value| c["args"][0].as_str().unwrap().to_owned();
    let mounts = |c: &serde_json::Value| -> Vec<String> {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    };

    // The step with the keys fetches the recorded URL into fresh mirrors and never sees
    // the workspace, whose .git/config the user controls.
    let fetch_script = script(fetch);
    for needle in [
        "-c core.hooksPath=/dev/null",
        "-c core.fsmonitor=false",
        "-c protocol.allow=never",
        "clone --quiet --bare -- \"${url}\" \"${MIRRORS}/${path}.git\"",
        "StrictHostKeyChecking=yes",
        "IdentitiesOnly=yes",
        "UserKnownHostsFile=/tmp/known_hosts",
    ] {
        assert!(
            fetch_script.contains(needle),
            "{needle:?} not in the fetch script:\n{fetch_script}"
        );
    }
    assert_eq!(mounts(fetch), ["git-mirrors", "git-keys"]);
    let keys = &fetch["volumeMounts"][1];
    assert_eq!(keys["readOnly"], true);

    // The step in the workspace has no key, and reaches nothing but the mirrors.
    let checkout_script = script(checkout);
    for needle in [
        "-c core.hooksPath=/dev/null",
        "-c core.fsmonitor=false",
        "-c protocol.allow=never -c protocol.file.allow=always",
        "fetch --quiet --no-tags \"${mirror}\" HEAD",
        "merge --ff-only --quiet FETCH_HEAD",
    ] {
        assert!(
            checkout_script.contains(needle),
            "{needle:?} not in the workspace script:\n{checkout_script}"
        );
    }
    assert_eq!(mounts(checkout), ["workspace", "git-mirrors"]);
    assert!(!checkout_script.contains("KEYS"), "{checkout_script}");

    for text in [&fetch_script, &checkout_script] {
        for banned in [
            "pull",
            "accept-new",
            "StrictHostKeyChecking=no",
            "http.extraHeader",
        ] {
            assert!(!text.contains(banned), "{banned:?} in the script");
        }
    }
    for container in [fetch, checkout] {
        let env = container["env"].as_array().unwrap();
        let value = |name: &str| {
            env.iter()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].clone())
        };
        assert_eq!(value("GIT_CONFIG_NOSYSTEM"), Some(serde_json::json!("1")));
        assert_eq!(
            value("GIT_CONFIG_GLOBAL"),
            Some(serde_json::json!("/dev/null"))
        );
    }
    // code-server itself never mounts the keys.
    let main = &pod["spec"]["containers"][0];
    assert_eq!(mounts(main), ["workspace"]);
}

#[test]
fn the_sync_job_also_keeps_the_keys_away_from_the_workspace() {
    let templates = codeserver_service::render::Templates::builtin().unwrap();
    let settings = codeserver_service::config::InstanceSettings {
        jwt_issuer: Some("https://keycloak.test/realms/devplatform".to_owned()),
        ..Default::default()
    };
    let owner = codeserver_service::values::Owner::new("alice");
    let repo = codeserver_service::values::Repo::new(
        "devteam",
        "api",
        "http://gitea:3000/devteam/api.git",
    )
    .unwrap();
    let values =
        codeserver_service::render::build_values(&templates, &settings, &owner, &[repo], &[])
            .unwrap();
    let job = templates
        .render_sync_job(
            &values,
            &codeserver_service::render::JobValues {
                name: "sync-alice".to_owned(),
                node: None,
            },
        )
        .unwrap();
    let job = serde_json::to_value(&job).unwrap();
    let spec = &job["spec"]["template"]["spec"];
    let names = |c: &serde_json::Value| -> Vec<String> {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&spec["initContainers"][0]),
        ["git-mirrors", "git-keys"]
    );
    assert_eq!(names(&spec["containers"][0]), ["workspace", "git-mirrors"]);
}
