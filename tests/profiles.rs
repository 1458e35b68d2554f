//! Workspace profiles end to end: the `profiles` query lists what the caller's roles
//! allow; `provisionCodeServer(profile:)` and `startCodeServer(profile:)` size the pod and
//! the volume from the chosen profile and record it on the instance; an unknown or
//! reserved profile is refused before Gitea is asked or anything is written; a change on
//! a running instance waits for its next start (`restartPending`); a set without
//! profiles works as before; `render`, `plan` and `validate-templates` take `--profile`;
//! a bad profile refuses the whole set when it loads.

#[path = "support/mod.rs"]
mod support;
#[path = "support/world.rs"]
mod world;

use codeserver_service::{
    reload,
    render::{self, RenderError, Templates},
    values::Repo,
};
use codeserver_sim::issuer::TokenSpec;
use serde_json::{Value, json};
use support::templates::{replace_in, run_command, templates_with};
use world::{World, error_of, ok};

/// Profiles over the built-in set: the plain default, one reserved for `gpu-users` that
/// sets everything, one open to all that sets only a memory limit.
const TEST_PROFILES: &str = r#"
profiles:
  - name: standard
    displayName: Standard
  - name: gpu
    displayName: GPU
    description: A GPU node.
    image: codercom/code-server:gpu-test
    resources:
      requests: {cpu: "2", memory: 4Gi}
      limits: {cpu: "4", memory: 16Gi}
    storage: {size: 30Gi, maxSize: 60Gi}
    nodeSelector: {pool: gpu}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    allowedRoles: [gpu-users]
  - name: roomy
    resources:
      limits: {memory: 6Gi}
defaultProfile: standard
"#;

/// The built-in set with [`TEST_PROFILES`] merged over its values, as a VALUES_FILE would.
fn test_templates() -> Templates {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("profiles.yaml");
    std::fs::write(&file, TEST_PROFILES).unwrap();
    Templates::builtin()
        .unwrap()
        .with_values_files(&[file])
        .expect("the test profiles load")
}

async fn test_world() -> World {
    World::builder().templates(test_templates()).start().await
}

fn token_with(w: &World, user: &str, roles: &[&str]) -> String {
    w.issuer.mint(&TokenSpec::new(user).roles(roles)).unwrap()
}

const PROFILES: &str = "{ profiles { name displayName description isDefault storage resources { requests { cpu memory } limits { cpu memory } } } }";

async fn profiles(w: &World, token: &str) -> Vec<Value> {
    let body = w.query(Some(token), PROFILES).await;
    ok(&body, "profiles").as_array().unwrap().clone()
}

fn names(list: &[Value]) -> Vec<&str> {
    list.iter().map(|p| p["name"].as_str().unwrap()).collect()
}

const PROVISION: &str = "mutation($o: String!, $n: String!, $p: String) { provisionCodeServer(repoOwner: $o, repoName: $n, profile: $p) { instance { id status profile restartPending } message isNew } }";
const START: &str = "mutation($id: String!, $p: String) { startCodeServer(id: $id, profile: $p) { id status profile restartPending } }";
const STOP: &str = "mutation($id: String!) { stopCodeServer(id: $id) }";

async fn provision(w: &World, token: &str, repo: (&str, &str), profile: Option<&str>) -> Value {
    w.gql(
        token,
        PROVISION,
        json!({"o": repo.0, "n": repo.1, "p": profile}),
    )
    .await
}

async fn start(w: &World, token: &str, id: &str, profile: Option<&str>) -> Value {
    w.gql(token, START, json!({"id": id, "p": profile})).await
}

/// The code-server container of `pod`.
fn code_server(pod: &Value) -> &Value {
    pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "code-server")
        .unwrap()
}

/// The reason the first error of `body` gives (`extensions.reason`).
fn reason_of(body: &Value) -> &str {
    body["errors"][0]["extensions"]["reason"]
        .as_str()
        .unwrap_or_default()
}

fn recorded_profile(w: &World, pvc: &str) -> Value {
    w.pvc(pvc).unwrap()["metadata"]["annotations"]["devplatform.io/profile"].clone()
}

#[tokio::test]
async fn the_profiles_listed_are_those_the_callers_roles_allow() {
    let w = test_world().await;
    let plain = profiles(&w, &w.token("alice")).await;
    assert_eq!(names(&plain), ["standard", "roomy"]);
    assert_eq!(plain[0]["isDefault"], true);
    assert_eq!(plain[0]["displayName"], "Standard");
    // What a profile leaves out comes from the values and the settings.
    assert_eq!(
        plain[0]["resources"]["requests"],
        json!({"cpu": "500m", "memory": "1Gi"})
    );
    assert_eq!(plain[0]["storage"], "10Gi");
    assert_eq!(plain[1]["isDefault"], false);
    assert_eq!(
        plain[1]["displayName"], "roomy",
        "the name when none is given"
    );
    assert_eq!(
        plain[1]["resources"]["limits"],
        json!({"cpu": "2", "memory": "6Gi"})
    );

    let gpu_user = profiles(&w, &token_with(&w, "carol", &["gpu-users"])).await;
    assert_eq!(names(&gpu_user), ["standard", "gpu", "roomy"]);
    assert_eq!(gpu_user[1]["storage"], "30Gi");
    assert_eq!(gpu_user[1]["description"], "A GPU node.");
    assert_eq!(
        gpu_user[1]["resources"],
        json!({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "16Gi"}})
    );
    let other_role = profiles(&w, &token_with(&w, "dave", &["gpu"])).await;
    assert_eq!(names(&other_role), ["standard", "roomy"]);
    assert_eq!(
        names(&profiles(&w, &w.admin_token("root")).await),
        ["standard", "gpu", "roomy"]
    );
    // Without a token: nothing.
    let anonymous = w.query(None, PROFILES).await;
    assert_eq!(error_of(&anonymous).1, "UNAUTHENTICATED", "{anonymous}");
}

#[tokio::test]
async fn the_shipped_values_offer_standard_to_all_and_large_to_its_role() {
    let w = World::start().await;
    let plain = profiles(&w, &w.token("alice")).await;
    assert_eq!(names(&plain), ["standard"]);
    assert_eq!(plain[0]["isDefault"], true);
    let large = profiles(&w, &token_with(&w, "bob", &["codeserver-large"])).await;
    assert_eq!(names(&large), ["standard", "large"]);
    assert_eq!(large[1]["resources"]["limits"]["memory"], "8Gi");
    assert_eq!(large[1]["storage"], "20Gi");
}

#[tokio::test]
async fn a_chosen_profile_sizes_the_pod_and_the_volume_and_is_recorded() {
    let w = test_world().await;
    let alice = token_with(&w, "alice", &["gpu-users"]);
    let body = provision(&w, &alice, ("alice", "notes"), Some("gpu")).await;
    let answer = ok(&body, "provisionCodeServer");
    assert_eq!(answer["isNew"], true);
    assert_eq!(answer["instance"]["status"], "RUNNING", "{body}");
    assert_eq!(answer["instance"]["profile"], "gpu");
    let id = answer["instance"]["id"].as_str().unwrap().to_owned();

    let pod = w.pod(&id).expect("the pod");
    let container = code_server(&pod);
    assert_eq!(container["image"], "codercom/code-server:gpu-test");
    assert_eq!(container["resources"]["requests"]["cpu"], "2");
    assert_eq!(container["resources"]["requests"]["memory"], "4Gi");
    assert_eq!(container["resources"]["limits"]["cpu"], "4");
    assert_eq!(container["resources"]["limits"]["memory"], "16Gi");
    assert_eq!(pod["spec"]["nodeSelector"], json!({"pool": "gpu"}));
    let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
    assert!(
        tolerations.iter().any(|t| t["key"] == "nvidia.com/gpu"
            && t["operator"] == "Exists"
            && t["effect"] == "NoSchedule"),
        "{tolerations:?}"
    );
    let pvc = w.pvc("workspace-alice").expect("the volume");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "30Gi");
    assert_eq!(recorded_profile(&w, "workspace-alice"), "gpu");

    // Provisioning again without a profile keeps the recorded one: nothing to change.
    w.sim().reset_requests();
    let again = provision(&w, &alice, ("alice", "notes"), None).await;
    let again = ok(&again, "provisionCodeServer");
    assert_eq!(again["instance"]["profile"], "gpu");
    assert_eq!(again["instance"]["restartPending"], false);
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
}

#[tokio::test]
async fn an_unknown_or_reserved_profile_is_refused_before_anything_is_asked_or_written() {
    let w = World::builder()
        .templates(test_templates())
        .deploy_keys(codeserver_service::gitea::AuthMode::Sudo)
        .start()
        .await;
    let alice = w.token("alice");
    let refused = |body: &Value| {
        let (message, code) = error_of(body);
        (message.to_owned(), code.to_owned())
    };
    let before = w.gitea.requests();
    w.sim().reset_requests();

    let body = provision(&w, &alice, ("alice", "notes"), Some("nope")).await;
    assert_eq!(
        refused(&body),
        (
            "invalid argument profile: unknown profile \"nope\"; known: standard, roomy".to_owned(),
            "BAD_USER_INPUT".to_owned()
        ),
        "the reserved profile is not named to a caller who may not use it"
    );
    let body = provision(&w, &alice, ("alice", "notes"), Some("gpu")).await;
    assert_eq!(error_of(&body).1, "FORBIDDEN", "{body}");
    let reason = reason_of(&body);
    assert!(
        reason.contains("profile \"gpu\" is reserved for other roles"),
        "{body}"
    );
    for hostile in ["x".repeat(5000), "GPU\n{{7*7}}".to_owned(), String::new()] {
        let body = provision(&w, &alice, ("alice", "notes"), Some(&hostile)).await;
        let (message, code) = refused(&body);
        assert_eq!(code, "BAD_USER_INPUT", "{body}");
        assert!(message.len() < 300, "a short answer: {message}");
    }
    assert_eq!(w.gitea.requests(), before, "Gitea was never asked");
    assert!(w.gitea.deploy_keys().is_empty());
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
    assert!(w.pvc("workspace-alice").is_none());

    // An existing instance: starting it on a profile it may not use changes nothing.
    let body = provision(&w, &alice, ("alice", "notes"), None).await;
    let answer = ok(&body, "provisionCodeServer");
    assert_eq!(answer["instance"]["profile"], "standard");
    let id = answer["instance"]["id"].as_str().unwrap().to_owned();
    ok(
        &w.gql(&alice, STOP, json!({"id": id})).await,
        "stopCodeServer",
    );
    w.until_gone("pods", &id).await;
    let keys = w.gitea.deploy_keys();
    let before = w.gitea.requests();
    w.sim().reset_requests();
    for (profile, code) in [("gpu", "FORBIDDEN"), ("nope", "BAD_USER_INPUT")] {
        let body = start(&w, &alice, &id, Some(profile)).await;
        assert_eq!(error_of(&body).1, code, "{body}");
    }
    // Another user's instance stays not found, whatever the profile.
    let bob = token_with(&w, "bob", &["gpu-users"]);
    let body = start(&w, &bob, &id, Some("gpu")).await;
    assert_eq!(error_of(&body).1, "NOT_FOUND", "{body}");
    assert_eq!(w.gitea.requests(), before);
    assert_eq!(w.gitea.deploy_keys(), keys);
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
    assert!(w.pod(&id).is_none());
    assert_eq!(recorded_profile(&w, "workspace-alice"), "standard");
}

#[tokio::test]
async fn a_recorded_profile_whose_role_was_lost_must_be_changed_to_start() {
    let w = test_world().await;
    let with_role = token_with(&w, "alice", &["gpu-users"]);
    let body = provision(&w, &with_role, ("alice", "notes"), Some("gpu")).await;
    let id = ok(&body, "provisionCodeServer")["instance"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &w.gql(&with_role, STOP, json!({"id": id})).await,
        "stopCodeServer",
    );

    let without = w.token("alice");
    w.sim().reset_requests();
    let body = start(&w, &without, &id, None).await;
    assert_eq!(error_of(&body).1, "FORBIDDEN", "{body}");
    assert!(
        reason_of(&body).contains("choose another profile"),
        "{body}"
    );
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());

    let body = start(&w, &without, &id, Some("standard")).await;
    let instance = ok(&body, "startCodeServer");
    assert_eq!(instance["status"], "RUNNING", "{body}");
    assert_eq!(instance["profile"], "standard");
    let pod = w.pod(&id).unwrap();
    assert_eq!(code_server(&pod)["resources"]["limits"]["memory"], "4Gi");
    assert_eq!(code_server(&pod)["image"], "codercom/code-server:latest");
    assert_eq!(recorded_profile(&w, "workspace-alice"), "standard");
}

#[tokio::test]
async fn a_change_on_a_running_instance_is_recorded_and_applied_by_the_next_start() {
    let w = test_world().await;
    let alice = w.token("alice");
    let body = provision(&w, &alice, ("alice", "notes"), None).await;
    let id = ok(&body, "provisionCodeServer")["instance"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uid = w.pod(&id).unwrap()["metadata"]["uid"].clone();

    let body = provision(&w, &alice, ("alice", "notes"), Some("roomy")).await;
    let answer = ok(&body, "provisionCodeServer");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("profile \"roomy\" recorded: it applies at the next start"),
        "{body}"
    );
    assert_eq!(answer["instance"]["profile"], "roomy");
    assert_eq!(answer["instance"]["restartPending"], true);
    let pod = w.pod(&id).unwrap();
    assert_eq!(pod["metadata"]["uid"], uid, "the running pod is left alone");
    assert_eq!(code_server(&pod)["resources"]["limits"]["memory"], "4Gi");
    assert_eq!(recorded_profile(&w, "workspace-alice"), "roomy");

    // The dry run of the change shows the pod recreated.
    let owner = w.reconciler.named_owner("alice").await.unwrap();
    let repo = Repo::new("alice", "notes", "http://gitea:3000/alice/notes.git").unwrap();
    let plan = w
        .reconciler
        .plan_with_profile(&owner, repo, None)
        .await
        .unwrap();
    let pod_step = plan.steps.iter().find(|s| s.kind == "Pod").unwrap();
    assert_eq!(pod_step.action.name(), "recreate", "{plan}");

    ok(
        &w.gql(&alice, STOP, json!({"id": id})).await,
        "stopCodeServer",
    );
    let body = start(&w, &alice, &id, None).await;
    let instance = ok(&body, "startCodeServer");
    assert_eq!(instance["status"], "RUNNING", "{body}");
    assert_eq!(instance["profile"], "roomy");
    assert_eq!(instance["restartPending"], false);
    let pod = w.pod(&id).unwrap();
    assert_eq!(code_server(&pod)["resources"]["limits"]["memory"], "6Gi");
}

/// The built-in set without its profiles: the set every installation had before them.
fn without_profiles() -> Templates {
    let dir = templates_with(|dir| {
        replace_in(dir, "values.yaml", "\nprofiles:\n", "\nretiredProfiles:\n");
        replace_in(dir, "values.yaml", "\ndefaultProfile: standard\n", "\n");
    });
    Templates::load_dir(dir.path()).expect("the set without profiles loads")
}

#[tokio::test]
async fn a_set_without_profiles_works_as_before_and_its_instances_take_the_default_later() {
    let w = World::builder().templates(without_profiles()).start().await;
    let alice = w.token("alice");
    let listed = profiles(&w, &alice).await;
    assert_eq!(names(&listed), ["default"]);
    assert_eq!(listed[0]["isDefault"], true);
    let body = provision(&w, &alice, ("alice", "notes"), None).await;
    let answer = ok(&body, "provisionCodeServer");
    assert_eq!(answer["instance"]["profile"], "default");
    let id = answer["instance"]["id"].as_str().unwrap().to_owned();
    assert!(
        recorded_profile(&w, "workspace-alice").is_null(),
        "nothing new on the record"
    );
    let body = provision(&w, &alice, ("alice", "notes"), Some("large")).await;
    assert_eq!(error_of(&body).1, "BAD_USER_INPUT", "{body}");

    // Profiles arrive: the instance shows the default until it records one.
    w.templates.swap(Templates::builtin().unwrap());
    let body = w
        .query(Some(&alice), "{ myCodeServers { profile restartPending } }")
        .await;
    let mine = &ok(&body, "myCodeServers")[0];
    assert_eq!(mine["profile"], "standard");
    ok(
        &w.gql(&alice, STOP, json!({"id": id})).await,
        "stopCodeServer",
    );
    let body = start(&w, &alice, &id, None).await;
    assert_eq!(ok(&body, "startCodeServer")["restartPending"], false);
    assert_eq!(recorded_profile(&w, "workspace-alice"), "standard");
}

#[test]
fn render_and_validate_templates_take_a_profile() {
    let target = [
        "render",
        "--user",
        "alice",
        "--repo-owner",
        "alice",
        "--repo-name",
        "notes",
    ];
    let (result, default) = run_command(&target);
    result.unwrap();
    assert!(
        default.contains("devplatform.io/profile: standard"),
        "{default}"
    );
    let large: Vec<&str> = target
        .iter()
        .copied()
        .chain(["--profile", "large"])
        .collect();
    let (result, out) = run_command(&large);
    result.unwrap();
    assert!(out.contains("devplatform.io/profile: large"));
    assert!(
        out.contains("memory: 8Gi") && out.contains("storage: 20Gi"),
        "{out}"
    );
    let unknown: Vec<&str> = target
        .iter()
        .copied()
        .chain(["--profile", "huge"])
        .collect();
    let (result, _) = run_command(&unknown);
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("unknown profile \"huge\"; known: standard, large"),
        "{message}"
    );

    let (result, out) = run_command(&["validate-templates"]);
    result.unwrap();
    assert!(out.contains("on 2 profiles (standard, large)"), "{out}");
    let (result, out) = run_command(&["validate-templates", "--profile", "large"]);
    result.unwrap();
    assert!(out.contains("on 1 profile (large)"), "{out}");
    assert!(
        run_command(&["validate-templates", "--profile", "huge"])
            .0
            .is_err()
    );
}

#[test]
fn a_bad_profile_refuses_the_set_when_it_loads() {
    let dir = templates_with(|dir| {
        replace_in(
            dir,
            "values.yaml",
            "  - name: large\n",
            "  - name: Large_One\n    gpu: 1\n",
        );
        replace_in(
            dir,
            "values.yaml",
            "storage: {size: 20Gi, maxSize: 100Gi}",
            "storage: {size: 200Gi, maxSize: 100Gi}",
        );
    });
    let Err(RenderError::Problems(problems)) = Templates::load_dir(dir.path()) else {
        panic!("a set with a bad profile loads");
    };
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|p| p.contains("profiles[1]") && p.contains("unknown field `gpu`")),
        "{text:?}"
    );
    let settings = support::validate_templates_settings(&[]);
    let refused = reload::load_validated(Some(dir.path()), &settings);
    assert!(
        matches!(refused, Err(reload::ReloadError::Invalid { .. })),
        "the service keeps its set"
    );
    let path = dir.path().display().to_string();
    let (result, _) = run_command(&["validate-templates", "--templates", &path]);
    let message = result.unwrap_err().to_string();
    assert!(message.contains("profiles[1]"), "{message}");

    // Each problem of a profile, named: a bad name, sizes out of order.
    let dir = templates_with(|dir| {
        replace_in(
            dir,
            "values.yaml",
            "  - name: large\n",
            "  - name: Large_One\n",
        );
        replace_in(
            dir,
            "values.yaml",
            "storage: {size: 20Gi, maxSize: 100Gi}",
            "storage: {size: 200Gi, maxSize: 100Gi}",
        );
    });
    let path = dir.path().display().to_string();
    let message = run_command(&["validate-templates", "--templates", &path])
        .0
        .unwrap_err()
        .to_string();
    assert!(message.contains("profiles[1].name"), "{message}");
    assert!(message.contains("profiles[1].storage.size"), "{message}");

    // A request above the limit the settings give only shows once rendered: refused by
    // validate-templates, as the API server would refuse the pod.
    let dir = templates_with(|dir| {
        replace_in(
            dir,
            "values.yaml",
            "      limits: {cpu: \"4\", memory: 8Gi}\n",
            "",
        );
        replace_in(
            dir,
            "values.yaml",
            "      requests: {cpu: \"1\", memory: 2Gi}",
            "      requests: {cpu: \"1\", memory: 16Gi}",
        );
    });
    let templates = Templates::load_dir(dir.path()).expect("the set loads");
    let problems = render::validate(&templates, &settings);
    assert!(
        problems.iter().any(|p| p
            .message
            .contains("profile \"large\": the memory request 16Gi is above the memory limit 4Gi")),
        "{problems:?}"
    );
    let refused = reload::load_validated(Some(dir.path()), &settings);
    assert!(matches!(refused, Err(reload::ReloadError::Invalid { .. })));
}

#[tokio::test]
async fn the_dry_runs_render_and_plan_a_chosen_profile_and_refuse_a_reserved_one() {
    let w = test_world().await;
    let gpu_user = token_with(&w, "alice", &["gpu-users"]);
    let render = "query($p: String) { renderCodeServer(repoOwner: \"alice\", repoName: \"notes\", profile: $p) { manifests } }";
    let plan = "query($p: String) { planCodeServer(repoOwner: \"alice\", repoName: \"notes\", profile: $p) { steps { object action } } }";
    w.sim().reset_requests();
    let body = w.gql(&gpu_user, render, json!({"p": "gpu"})).await;
    let manifests = ok(&body, "renderCodeServer")["manifests"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        manifests.contains("codercom/code-server:gpu-test"),
        "{manifests}"
    );
    assert!(manifests.contains("nvidia.com/gpu"), "{manifests}");
    assert!(manifests.contains("30Gi"), "{manifests}");
    let body = w.gql(&gpu_user, plan, json!({"p": "gpu"})).await;
    assert!(
        ok(&body, "planCodeServer")["steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    // Without a profile: the default.
    let body = w.gql(&gpu_user, render, json!({"p": null})).await;
    let default = ok(&body, "renderCodeServer")["manifests"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!default.contains("gpu-test"), "{default}");

    // Without the role, and an unknown profile: refused, nothing rendered.
    let alice = w.token("alice");
    for query in [render, plan] {
        let body = w.gql(&alice, query, json!({"p": "gpu"})).await;
        assert_eq!(error_of(&body).1, "FORBIDDEN", "{body}");
        let body = w.gql(&alice, query, json!({"p": "nope"})).await;
        assert_eq!(error_of(&body).1, "BAD_USER_INPUT", "{body}");
    }
    assert!(w.sim().writes().is_empty(), "{:?}", w.sim().writes());
}
