//! validate-templates, and the binary: exit codes and one-line configuration errors.

use super::*;

#[test]
fn validate_templates_accepts_the_built_in_set_and_lists_every_problem_of_a_broken_one() {
    let (ok, out, err) = run(&["validate-templates"]);
    assert!(ok, "{err}\n{out}");
    assert!(out.starts_with("ok: 5 templates"), "{out}");

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

/// Runs the binary's `render` for repository `repo_name` with `env` set.
fn render_binary(repo_name: &str, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args(render_args(repo_name))
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
