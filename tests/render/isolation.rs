//! What keeps workspaces apart: no shared Secret, and git keys kept away from the
//! workspace by the pod's and the sync Job's scripts.

use super::*;

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
    // The deploy keys and the owner's git identity: each user's own Secrets only.
    assert_eq!(alice, ["git-keys-alice", "git-identity-alice"]);
    assert_eq!(bob, ["git-keys-bob", "git-identity-bob"]);
}

#[test]
fn the_git_script_disables_hooks_and_fsmonitor_and_fetches_the_recorded_url() {
    let objects = render_objects("alice");
    let pod = objects.iter().find(|o| o["kind"] == "Pod").unwrap();
    let inits = pod["spec"]["initContainers"].as_array().unwrap();
    let (fetch, checkout) = (&inits[0], &inits[1]);
    let script = |c: &serde_json::Value| c["args"][0].as_str().unwrap().to_owned();

    // The step with the keys fetches the recorded URL into fresh mirrors and never sees
    // the workspace, whose .git/config the user controls.
    let fetch_script = script(fetch);
    assert_contains_all(
        &fetch_script,
        "the fetch script",
        &[
            "-c core.hooksPath=/dev/null",
            "-c core.fsmonitor=false",
            "-c protocol.allow=never",
            "clone --quiet --bare -- \"${url}\" \"${MIRRORS}/${path}.git\"",
            "StrictHostKeyChecking=yes",
            "IdentitiesOnly=yes",
            "UserKnownHostsFile=/tmp/known_hosts",
        ],
    );
    assert_eq!(mount_names(fetch), ["git-mirrors", "git-keys"]);
    let keys = &fetch["volumeMounts"][1];
    assert_eq!(keys["readOnly"], true);

    // The step in the workspace has no key, and reaches nothing but the mirrors.
    let checkout_script = script(checkout);
    assert_contains_all(
        &checkout_script,
        "the workspace script",
        &[
            "-c core.hooksPath=/dev/null",
            "-c core.fsmonitor=false",
            "-c protocol.allow=never -c protocol.file.allow=always",
            "fetch --quiet --no-tags \"${mirror}\" HEAD",
            "merge --ff-only --quiet FETCH_HEAD",
        ],
    );
    assert_eq!(mount_names(checkout), ["workspace", "git-mirrors"]);
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
    // code-server itself never mounts the deploy keys; it has the owner's git identity.
    let main = &pod["spec"]["containers"][0];
    assert_eq!(mount_names(main), ["workspace", "git-identity"]);
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
    assert_eq!(
        mount_names(&spec["initContainers"][0]),
        ["git-mirrors", "git-keys"]
    );
    assert_eq!(
        mount_names(&spec["containers"][0]),
        ["workspace", "git-mirrors"]
    );
}

/// Asserts that `text` (`what`) contains every one of `needles`.
fn assert_contains_all(text: &str, what: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in {what}:\n{text}");
    }
}

/// The names of the volumes container `c` mounts, in order.
fn mount_names(c: &serde_json::Value) -> Vec<String> {
    c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}
