//! Live template reload: a changed template directory is picked up without a restart, a
//! broken one is refused while the last good set keeps serving, and a ConfigMap volume's
//! symlink swap is seen as one change.

#[path = "support/eventually.rs"]
mod eventually;
mod support;

use std::{path::Path, sync::Arc, time::Duration};

use codeserver_service::{
    config::InstanceSettings,
    naming,
    reload::{
        self, ActiveTemplates, ReloadError, ReloadOutcome, Reloader, load_active, reload_counter,
    },
    render::Templates,
    values::Owner,
};
use eventually::eventually;
use prometheus::{Encoder, Registry, TextEncoder};
use support::templates::{copy_files, render_json, replace_in, templates_dir as repo_templates};
use tempfile::TempDir;

fn settings(dir: &Path) -> InstanceSettings {
    support::validate_templates_settings(&["--templates", &dir.display().to_string()])
}

/// A copy of `templates/` in a temporary directory.
fn copy_of_templates() -> TempDir {
    support::templates::templates_with(|_| {})
}

struct Fixture {
    active: Arc<ActiveTemplates>,
    reloader: Reloader,
    registry: Registry,
}

fn fixture(dir: &Path) -> Fixture {
    let settings = settings(dir);
    let active = Arc::new(load_active(&settings).expect("the initial set is valid"));
    let registry = Registry::new();
    let reloads = reload_counter(&registry).expect("the counter registers");
    let reloader = Reloader::new(Arc::clone(&active), dir.to_owned(), settings, reloads);
    Fixture {
        active,
        reloader,
        registry,
    }
}

fn reloads(registry: &Registry, result: &str) -> String {
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .expect("metrics encode");
    let text = String::from_utf8(text).expect("UTF-8");
    let prefix = format!("codeserver_templates_reload_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .to_owned()
}

/// The rendered pod of a sample user with `templates`, as JSON.
fn rendered_pod(templates: &Templates, dir: &Path) -> serde_json::Value {
    render_json(templates, &settings(dir), &Owner::new("john.doe"))
        .expect("renders")
        .into_iter()
        .find(|o| o["kind"] == "Pod")
        .expect("a pod is rendered")
}

#[test]
fn a_changed_directory_is_picked_up_and_stamped_with_its_revision() {
    let dir = copy_of_templates();
    let mut f = fixture(dir.path());
    let first = f.active.get().revision().to_owned();
    assert!(matches!(f.reloader.check(), ReloadOutcome::Unchanged));

    replace_in(
        dir.path(),
        "values.yaml",
        "  annotations: {}",
        "  annotations: {team: platform}",
    );
    let ReloadOutcome::Reloaded { from, to } = f.reloader.check() else {
        panic!("the change is picked up");
    };
    assert_eq!(from, first);
    assert_eq!(to, f.active.get().revision().to_owned());
    assert_ne!(to, first);
    assert_eq!(reloads(&f.registry, "ok"), "1");
    assert_eq!(reloads(&f.registry, "error"), "0");

    // New renders use the new set, and say so.
    let pod = rendered_pod(&f.active.get(), dir.path());
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["team"], "platform");
    assert_eq!(
        annotations[naming::ANNOTATION_TEMPLATE_REVISION],
        to.as_str()
    );
    assert_eq!(reload::status(&f.active, None).revision, to);

    // Checking again without a change does nothing.
    assert!(matches!(f.reloader.check(), ReloadOutcome::Unchanged));
    assert_eq!(reloads(&f.registry, "ok"), "1");
}

#[test]
fn a_broken_set_is_refused_and_the_last_good_one_keeps_serving() {
    let dir = copy_of_templates();
    let mut f = fixture(dir.path());
    let good = f.active.get().revision().to_owned();
    let held = f.active.get();

    // A syntax error: the set does not even load.
    let service = dir.path().join("service.yaml.j2");
    replace_in(dir.path(), "service.yaml.j2", "spec:", "spec: {{ broken");
    let ReloadOutcome::Refused(ReloadError::Invalid { problems, .. }) = f.reloader.check() else {
        panic!("a syntax error is refused");
    };
    assert!(
        problems.iter().any(|p| p.file == "service.yaml.j2"),
        "{problems:?}"
    );
    assert_eq!(f.active.get().revision().to_owned(), good);
    assert_eq!(reloads(&f.registry, "error"), "1");
    let refusal = f
        .reloader
        .refusals()
        .last()
        .expect("the refusal is reported");
    assert!(
        refusal
            .problems
            .iter()
            .any(|p| p.contains("service.yaml.j2")),
        "{refusal:?}"
    );
    // Refused once, not on every tick.
    assert!(matches!(f.reloader.check(), ReloadOutcome::Unchanged));
    assert_eq!(reloads(&f.registry, "error"), "1");

    // Loads, but fails validation: a value no sample user has.
    std::fs::copy(repo_templates().join("service.yaml.j2"), &service).expect("restored");
    replace_in(
        dir.path(),
        "service.yaml.j2",
        "type: ClusterIP",
        "type: {{ extra.noSuchKey }}",
    );
    let ReloadOutcome::Refused(error) = f.reloader.check() else {
        panic!("an undefined value is refused");
    };
    assert!(
        error
            .messages()
            .iter()
            .any(|m| m.contains("service.yaml.j2") && m.contains("undefined")),
        "{:?}",
        error.messages()
    );
    assert_eq!(reloads(&f.registry, "error"), "2");

    // The last good set still renders, for requests in flight and for new ones.
    assert_eq!(f.active.get().revision().to_owned(), good);
    rendered_pod(&f.active.get(), dir.path());
    rendered_pod(&held, dir.path());

    // Fixed: the directory holds the active set again; nothing to swap.
    std::fs::copy(repo_templates().join("service.yaml.j2"), &service).expect("restored");
    assert!(matches!(f.reloader.check(), ReloadOutcome::Unchanged));
    assert_eq!(f.active.get().revision().to_owned(), good);
    assert_eq!(reloads(&f.registry, "ok"), "0");
    assert!(
        f.reloader.refusals().last().is_none(),
        "the directory no longer holds a refused set"
    );
}

#[test]
fn a_misspelt_istio_field_is_refused() {
    // The API server would prune it silently and the route would attach to no gateway.
    let dir = copy_of_templates();
    let mut f = fixture(dir.path());
    replace_in(
        dir.path(),
        "virtualservice.yaml.j2",
        "gateways:",
        "gateway:",
    );
    let ReloadOutcome::Refused(error) = f.reloader.check() else {
        panic!("the misspelt field is refused");
    };
    assert!(
        error
            .messages()
            .iter()
            .any(|m| m.contains("virtualservice.yaml.j2")
                && m.contains("unknown field spec.gateway")),
        "{:?}",
        error.messages()
    );
}

#[test]
fn a_set_in_flight_keeps_rendering_after_a_swap() {
    let dir = copy_of_templates();
    let mut f = fixture(dir.path());
    let held = f.active.get();
    replace_in(
        dir.path(),
        "values.yaml",
        "  annotations: {}",
        "  annotations: {wave: two}",
    );
    assert!(matches!(f.reloader.check(), ReloadOutcome::Reloaded { .. }));
    let old = rendered_pod(&held, dir.path());
    let new = rendered_pod(&f.active.get(), dir.path());
    assert!(old["metadata"]["annotations"].get("wave").is_none());
    assert_eq!(new["metadata"]["annotations"]["wave"], "two");
    assert_ne!(
        old["metadata"]["annotations"][naming::ANNOTATION_TEMPLATE_REVISION],
        new["metadata"]["annotations"][naming::ANNOTATION_TEMPLATE_REVISION]
    );
}

/// A directory laid out as the kubelet lays out a ConfigMap volume: the files live in a
/// timestamped hidden directory, `..data` points at it, and each visible name is a
/// symlink through `..data`.
#[cfg(unix)]
mod configmap_volume {
    use std::os::unix::fs::symlink;

    use super::*;

    pub fn create(volume: &Path, from: &Path) {
        let version = volume.join("..2026_11_27_15_00_00.000000001");
        std::fs::create_dir(&version).expect("a version directory");
        copy_files(from, &version);
        symlink(version.file_name().expect("a name"), volume.join("..data")).expect("..data");
        for entry in std::fs::read_dir(&version).expect("readable") {
            let name = entry.expect("an entry").file_name();
            symlink(Path::new("..data").join(&name), volume.join(&name)).expect("a link");
        }
    }

    /// The kubelet's update: write a new version, swap `..data` with one rename, remove
    /// the old version.
    pub fn update(volume: &Path, from: &Path, stamp: &str) {
        let old = std::fs::read_link(volume.join("..data")).expect("..data is a link");
        let version = volume.join(format!("..{stamp}"));
        std::fs::create_dir(&version).expect("a version directory");
        copy_files(from, &version);
        let staged = volume.join("..data_tmp");
        symlink(version.file_name().expect("a name"), &staged).expect("..data_tmp");
        std::fs::rename(&staged, volume.join("..data")).expect("atomic swap");
        std::fs::remove_dir_all(volume.join(old)).expect("old version removed");
    }
}

#[cfg(unix)]
#[test]
fn a_configmap_volume_update_is_picked_up() {
    let volume = tempfile::tempdir().expect("a volume");
    configmap_volume::create(volume.path(), &repo_templates());
    let mut f = fixture(volume.path());
    assert!(matches!(f.reloader.check(), ReloadOutcome::Unchanged));
    let first = f.active.get().revision().to_owned();
    assert_eq!(
        first,
        Templates::load_dir(&repo_templates())
            .expect("loads")
            .revision(),
        "the mounted set is templates/"
    );

    let next = copy_of_templates();
    replace_in(
        next.path(),
        "values.yaml",
        "  annotations: {}",
        "  annotations: {rolled: out}",
    );
    configmap_volume::update(volume.path(), next.path(), "2026_11_27_15_05_00.000000002");
    let ReloadOutcome::Reloaded { to, .. } = f.reloader.check() else {
        panic!("the symlink swap is picked up");
    };
    assert_ne!(to, first);
    let pod = rendered_pod(&f.active.get(), volume.path());
    assert_eq!(pod["metadata"]["annotations"]["rolled"], "out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_reloader_picks_up_a_change_without_a_restart() {
    let dir = copy_of_templates();
    let f = fixture(dir.path());
    let active = Arc::clone(&f.active);
    let refusals = f.reloader.refusals();
    let first = active.get().revision().to_owned();
    let loaded_at = active.loaded_at();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(f.reloader.run(Duration::from_millis(20), async {
        let _ = stopped.await;
    }));

    replace_in(
        dir.path(),
        "values.yaml",
        "  annotations: {}",
        "  annotations: {live: reload}",
    );
    eventually(
        "the change is picked up",
        Duration::from_secs(10),
        || async { (active.get().revision() != first).then_some(()) },
    )
    .await;
    assert!(active.loaded_at() > loaded_at);
    let status = reload::status(&active, Some(&refusals));
    assert_eq!(status.revision, active.get().revision());
    assert_eq!(status.source, dir.path().display().to_string());
    assert!(status.last_refusal.is_none());

    stop.send(()).expect("the reloader is running");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the reloader stops on shutdown")
        .expect("the reloader task did not panic");
    assert_eq!(reloads(&f.registry, "ok"), "1");
}

#[test]
fn a_vanished_directory_keeps_the_active_set() {
    let dir = copy_of_templates();
    let mut f = fixture(dir.path());
    let good = f.active.get().revision().to_owned();
    let moved = dir.path().with_extension("moved");
    std::fs::rename(dir.path(), &moved).expect("moved away");
    assert!(matches!(f.reloader.check(), ReloadOutcome::Retry));
    assert!(matches!(f.reloader.check(), ReloadOutcome::Retry));
    assert_eq!(f.active.get().revision(), good);
    assert_eq!(reloads(&f.registry, "error"), "0");
    std::fs::rename(&moved, dir.path()).expect("moved back");
    assert!(matches!(f.reloader.check(), ReloadOutcome::Unchanged));
}

#[test]
fn start_up_refuses_a_broken_set() {
    let dir = copy_of_templates();
    replace_in(dir.path(), "pod.yaml.j2", "spec:", "spec: {% if %}");
    let error = load_active(&settings(dir.path())).expect_err("a broken set");
    assert!(
        error.messages().iter().any(|m| m.contains("pod.yaml.j2")),
        "{error}"
    );
    let missing = dir.path().join("missing");
    assert!(matches!(
        load_active(&settings(&missing)),
        Err(ReloadError::Io { .. })
    ));
}

#[tokio::test]
async fn watch_starts_only_for_a_template_directory() {
    let dir = copy_of_templates();
    let registry = Registry::new();
    let reloads = reload_counter(&registry).expect("the counter registers");

    let builtin = settings(dir.path());
    let builtin = InstanceSettings {
        templates_dir: None,
        ..builtin
    };
    let active = Arc::new(load_active(&builtin).expect("the built-in set is valid"));
    assert!(reload::watch(Arc::clone(&active), &builtin, reloads.clone(), async {}).is_none());

    let mounted = settings(dir.path());
    let active = Arc::new(load_active(&mounted).expect("the set is valid"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (task, refusals) = reload::watch(Arc::clone(&active), &mounted, reloads, async {
        let _ = stopped.await;
    })
    .expect("a directory is watched");
    assert!(refusals.last().is_none());
    stop.send(()).expect("the watch is running");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the watch stops on shutdown")
        .expect("the watch did not panic");
}

#[test]
fn a_set_that_still_renders_the_old_access_policy_is_reloaded_without_it() {
    // An admin's set that kept the per-instance AuthorizationPolicy of earlier versions:
    // reloaded (the render leaves the policy out), with or without JWT_ISSUER.
    let dir = copy_of_templates();
    let mut f = fixture(dir.path());
    let before = f.active.get().revision().to_owned();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/retired/authorizationpolicy.yaml.j2"),
        dir.path().join("authorizationpolicy.yaml.j2"),
    )
    .expect("the old template is copied");
    let values = dir.path().join("values.yaml");
    let mut text = std::fs::read_to_string(&values).expect("values.yaml");
    text.push_str("\naccessPolicy:\n  enabled: true\n  gatewaySelector: {istio: ingressgateway}\n");
    std::fs::write(&values, text).expect("values.yaml is writable");
    assert!(matches!(f.reloader.check(), ReloadOutcome::Reloaded { .. }));
    assert_ne!(f.active.get().revision(), before);
    let settings = InstanceSettings {
        jwt_issuer: None,
        ..settings(dir.path())
    };
    load_active(&settings).expect("loads without JWT_ISSUER");
}
