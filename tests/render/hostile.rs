//! Hostile input: user ids and repository names that try to break out of YAML, names
//! and the clone script.

use super::*;

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
            6,
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
        let (ok, _, err) = render_repo(bad, &[]);
        assert!(!ok);
        assert!(err.contains("invalid repository name"), "{err}");
        assert!(err.len() < 500, "error stays short");
    }
}

#[test]
fn repository_values_reach_the_script_only_as_environment() {
    let objects = objects_of(render_repo(
        "n.v2",
        &["--output", "json", "--clone-url", "http://g/o/n.v2.git"],
    ));
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
