//! kubectl against the `sim` command's server (ignored by default: it needs kubectl on PATH;
//! run it with `cargo test -p codeserver-sim --test sim -- --ignored kubectl`).

fn kubectl(
    kubeconfig: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kubectl on PATH: cargo test -p codeserver-sim --test sim -- --ignored kubectl"]
async fn kubectl_against_the_sim_command() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    // NB: the kubeconfig is written when `start_command` returns.
    let server = codeserver_sim::start_command(0, Some(kc.clone()), false)
        .await
        .unwrap();
    let kc2 = kc.clone();
    let run = move |args: Vec<&'static str>, stdin: Option<String>| {
        let kc = kc2.clone();
        tokio::task::spawn_blocking(move || kubectl(&kc, &args, stdin.as_deref()))
    };
    let manifests = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
  namespace: codeserver-instances
  labels: {app: demo, tier: web}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: other
  namespace: codeserver-instances
  labels: {app: other}
data: {a: "1"}
---
apiVersion: v1
kind: Service
metadata:
  name: demo
  namespace: codeserver-instances
  labels: {app: demo}
spec:
  selector: {app: demo}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;
    let (ok, out, err) = run(
        vec![
            "apply",
            "--server-side",
            "--field-manager",
            "kubectl-test",
            "-f",
            "-",
        ],
        Some(manifests.into()),
    )
    .await
    .unwrap();
    assert!(ok, "apply failed: {out}{err}");
    assert!(out.contains("configmap/demo serverside-applied"), "{out}");
    assert!(out.contains("service/demo serverside-applied"), "{out}");

    let (ok, out, err) = run(
        vec![
            "get",
            "configmaps",
            "-n",
            "codeserver-instances",
            "-l",
            "app=demo,tier in (web)",
            "-o",
            "name",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "configmap/demo");
    let (ok, out, _) = run(
        vec![
            "get",
            "cm,svc",
            "-n",
            "codeserver-instances",
            "-l",
            "app=demo",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok);
    assert!(
        out.contains("configmap/demo") && out.contains("service/demo") && !out.contains("other"),
        "{out}"
    );
    let (ok, out, _) = run(
        vec![
            "get",
            "svc",
            "demo",
            "-n",
            "codeserver-instances",
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.ports[0].protocol}",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok);
    assert!(out.starts_with("10.96.") && out.ends_with(" TCP"), "{out}");

    // Replace with the current object works; replaying the now stale one conflicts.
    let (ok, current, _) = run(
        vec![
            "get",
            "configmap",
            "demo",
            "-n",
            "codeserver-instances",
            "-o",
            "yaml",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok);
    let changed = current.replace("a: \"1\"", "a: \"2\"");
    assert_ne!(changed, current);
    let (ok, out, err) = run(vec!["replace", "-f", "-"], Some(changed.clone()))
        .await
        .unwrap();
    assert!(ok, "{out}{err}");
    let (ok, out, _) = run(
        vec![
            "get",
            "configmap",
            "demo",
            "-n",
            "codeserver-instances",
            "-o",
            "jsonpath={.data.a}",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok);
    assert_eq!(out, "2");
    let (ok, _, err) = run(vec!["replace", "-f", "-"], Some(changed))
        .await
        .unwrap();
    assert!(!ok);
    assert!(err.contains("the object has been modified"), "{err}");

    // Unknown fields: refused under kubectl's default strict validation, dropped with a
    // warning otherwise.
    let odd = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: odd, namespace: codeserver-instances}\ndata: {a: b}\nfoo: bar\n";
    let (ok, _, err) = run(vec!["apply", "--server-side", "-f", "-"], Some(odd.into()))
        .await
        .unwrap();
    assert!(!ok);
    assert!(
        err.contains("strict decoding error: unknown field \"foo\""),
        "{err}"
    );
    let (ok, _, err) = run(
        vec!["apply", "--server-side", "--validate=warn", "-f", "-"],
        Some(odd.into()),
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(err.contains("Warning: unknown field \"foo\""), "{err}");

    // Server-side apply conflicts surface through kubectl too.
    let steal = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: codeserver-instances}\ndata: {a: \"9\"}\n";
    let (ok, _, err) = run(
        vec![
            "apply",
            "--server-side",
            "--field-manager",
            "someone-else",
            "-f",
            "-",
        ],
        Some(steal.into()),
    )
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("conflict with \"kubectl-test\""), "{err}");

    let (ok, out, err) = run(
        vec!["delete", "configmap", "demo", "-n", "codeserver-instances"],
        None,
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("configmap \"demo\" deleted"), "{out}");
    let (ok, out, err) = run(
        vec!["delete", "-n", "codeserver-instances", "svc", "demo"],
        None,
    )
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(
        vec!["get", "configmap", "demo", "-n", "codeserver-instances"],
        None,
    )
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("configmaps \"demo\" not found"), "{err}");

    // kubectl sends built-in kinds in protobuf, which this server does not decode: a clear
    // 415 rather than a garbled JSON error.
    let (ok, _, err) = run(vec!["create", "namespace", "from-kubectl"], None)
        .await
        .unwrap();
    assert!(!ok);
    assert!(
        err.contains("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"),
        "{err}"
    );
    drop(server);
}
