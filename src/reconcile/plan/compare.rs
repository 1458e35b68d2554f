//! Planning: desired objects against live ones, compared on what we own.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde_json::Value;

use super::{
    project::project,
    steps::{Action, Plan, Step},
};
use crate::{naming, quantity::Quantity, render::object_label};

/// Kinds that are never pruned: the PVC holds the user's work (deleted only with the
/// instance), and sync Jobs come and go on their own.
const NEVER_PRUNED: &[&str] = &["PersistentVolumeClaim", "Job"];

/// Plans `desired` against `live` (every live object labelled as this instance's).
pub fn plan(desired: &[DynamicObject], live: &[DynamicObject]) -> Plan {
    let mut by_key: BTreeMap<(String, String), &DynamicObject> =
        live.iter().map(|o| (key(o), o)).collect();
    let mut steps = Vec::with_capacity(desired.len());
    for want in desired {
        let k = key(want);
        let mut notes = Vec::new();
        let (action, applied) = match by_key.remove(&k) {
            None => (Action::Create, want.clone()),
            Some(have) => (compare(want, have, &mut notes), never_shrunk(want, have)),
        };
        steps.push(Step {
            object: object_label(want),
            api_version: api_version(want),
            kind: k.0,
            name: k.1,
            namespace: want.metadata.namespace.clone().unwrap_or_default(),
            action,
            desired: Some(applied),
            notes,
        });
    }
    for ((kind, name), have) in by_key {
        let controlled = have
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|refs| refs.iter().any(|r| r.controller == Some(true)));
        if NEVER_PRUNED.contains(&kind.as_str()) || controlled {
            continue;
        }
        steps.push(Step {
            object: object_label(have),
            api_version: api_version(have),
            kind,
            name,
            namespace: have.metadata.namespace.clone().unwrap_or_default(),
            action: Action::Prune,
            desired: None,
            notes: Vec::new(),
        });
    }
    Plan { steps }
}

fn api_version(o: &DynamicObject) -> String {
    o.types
        .as_ref()
        .map(|t| t.api_version.clone())
        .unwrap_or_default()
}

fn key(o: &DynamicObject) -> (String, String) {
    (
        o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

fn compare(want: &DynamicObject, have: &DynamicObject, notes: &mut Vec<String>) -> Action {
    let kind = want
        .types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or_default();
    let Ok(mut want_v) = serde_json::to_value(want) else {
        return Action::Create;
    };
    let Ok(have_v) = serde_json::to_value(have) else {
        return Action::Create;
    };
    if kind == "Pod" {
        let hash = |v: &Value| annotation(v, naming::ANNOTATION_SPEC_HASH).map(str::to_owned);
        let (live_hash, desired_hash) = (hash(&have_v), hash(&want_v));
        if live_hash != desired_hash {
            return Action::Recreate {
                live_hash: live_hash.unwrap_or_else(|| "none".to_owned()),
                desired_hash: desired_hash.unwrap_or_default(),
            };
        }
        // NB: the spec is immutable and unchanged (same hash); only metadata may differ.
        if let Some(obj) = want_v.as_object_mut() {
            obj.remove("spec");
        }
    }
    if kind == "PersistentVolumeClaim" {
        hold_immutable_pvc_fields(&mut want_v, &have_v, notes);
    }
    let projected = project(&want_v, &have_v);
    let patch = json_patch::diff(&projected, &want_v);
    if patch.0.is_empty() {
        Action::Unchanged
    } else {
        Action::Update { patch }
    }
}

/// NB: a PVC's spec is immutable except for growing its storage request. Everything
/// else the templates changed is held (live wins) and explained in a note; a smaller
/// size is never applied, since shrinking is refused and the data lives there.
fn hold_immutable_pvc_fields(want: &mut Value, have: &Value, notes: &mut Vec<String>) {
    let (Some(want_spec), Some(have_spec)) = (want.get("spec").cloned(), have.get("spec")) else {
        return;
    };
    let projected = project(&want_spec, have_spec);
    let mut held = projected.clone();
    let storage_path = "/resources/requests/storage";
    let wanted_size = want_spec
        .pointer(storage_path)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Quantity>().ok());
    let live_size = have_spec
        .pointer(storage_path)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Quantity>().ok());
    if let (Some(w), Some(l)) = (wanted_size, live_size) {
        if w > l {
            if let Some(slot) = held.pointer_mut(storage_path) {
                *slot = want_spec
                    .pointer(storage_path)
                    .cloned()
                    .unwrap_or(Value::Null);
            }
        } else if w < l {
            notes.push(format!(
                "storage stays at {l}: a workspace volume is never shrunk (templates ask for {w})"
            ));
        }
    }
    let other_changes = json_patch::diff(&projected, &want_spec)
        .0
        .iter()
        .any(|op| !op_path(op).starts_with(storage_path));
    if other_changes {
        notes.push(
            "spec changes other than a larger storage request are held: a PVC's spec is immutable"
                .to_owned(),
        );
    }
    want["spec"] = held;
}

/// `want` as it may be applied over `have`: a PVC asks for at least the storage it has
/// live (grown by `resizeStorage`, or by an earlier, larger size), since the API server
/// refuses a smaller request ("field can not be less than previous value") and the
/// volume never shrinks; every other object as rendered.
fn never_shrunk(want: &DynamicObject, have: &DynamicObject) -> DynamicObject {
    let mut applied = want.clone();
    let is_pvc = want
        .types
        .as_ref()
        .is_some_and(|t| t.kind == "PersistentVolumeClaim");
    if !is_pvc {
        return applied;
    }
    let path = "/spec/resources/requests/storage";
    let size = |v: &Value| {
        v.pointer(path)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Quantity>().ok())
    };
    let (Some(wanted), Some(live)) = (size(&want.data), size(&have.data)) else {
        return applied;
    };
    if live > wanted
        && let Some(slot) = applied.data.pointer_mut(path)
        && let Some(live_text) = have.data.pointer(path)
    {
        *slot = live_text.clone();
    }
    applied
}

/// The JSON pointer an operation of a patch writes to.
pub fn op_path(op: &json_patch::PatchOperation) -> String {
    use json_patch::PatchOperation as Op;
    match op {
        Op::Add(o) => o.path.to_string(),
        Op::Remove(o) => o.path.to_string(),
        Op::Replace(o) => o.path.to_string(),
        Op::Move(o) => o.path.to_string(),
        Op::Copy(o) => o.path.to_string(),
        Op::Test(o) => o.path.to_string(),
    }
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    fn pvc(size: &str, extra_annotation: Option<&str>) -> Value {
        let mut ann = json!({"devplatform.io/repos": "[]"});
        if let Some(a) = extra_annotation {
            ann["x"] = json!(a);
        }
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "workspace-u", "namespace": "ns", "labels": {"a": "b"}, "annotations": ann},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                        "resources": {"requests": {"storage": size}}}})
    }

    fn pod(hash: &str, image: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "code-server-u", "namespace": "ns", "labels": {"a": "b"},
                            "annotations": {"devplatform.io/spec-hash": hash}},
               "spec": {"containers": [{"name": "code-server", "image": image,
                                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}})
    }

    fn service() -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "code-server-u", "namespace": "ns", "labels": {"a": "b"}},
               "spec": {"type": "ClusterIP", "selector": {"a": "b"},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}})
    }

    /// What an API server makes of an applied object: defaults, reformatting, bookkeeping.
    fn as_live(mut v: Value) -> Value {
        let meta = v["metadata"].as_object_mut().unwrap();
        meta.insert("uid".into(), json!("1234"));
        meta.insert("resourceVersion".into(), json!("42"));
        meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        meta.insert(
            "managedFields".into(),
            json!([{"manager": "codeserver-service", "operation": "Apply"}]),
        );
        meta["labels"]["injected-by-someone-else"] = json!("x");
        v["status"] = json!({"phase": "Bound"});
        match v["kind"].as_str().unwrap() {
            "Pod" => {
                let c = &mut v["spec"]["containers"][0];
                c["terminationMessagePath"] = json!("/dev/termination-log");
                c["imagePullPolicy"] = json!("Always");
                c["resources"]["requests"]["memory"] = json!("1024Mi");
                v["spec"]["containers"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "istio-proxy", "image": "proxy"}));
                v["spec"]["restartPolicy"] = json!("Always");
                v["spec"]["nodeName"] = json!("node-1");
            }
            "PersistentVolumeClaim" => {
                v["spec"]["resources"]["requests"]["storage"] = json!("10240Mi");
                v["spec"]["volumeMode"] = json!("Filesystem");
                v["spec"]["volumeName"] = json!("pv-1");
            }
            "Service" => {
                v["spec"]["clusterIP"] = json!("10.0.0.7");
                v["spec"]["sessionAffinity"] = json!("None");
                v["spec"]["ports"][0]["targetPort"] = json!("http");
            }
            _ => {}
        }
        v
    }

    #[test]
    fn an_applied_unchanged_instance_plans_as_all_unchanged() {
        let desired = vec![
            obj(pvc("10Gi", None)),
            obj(service()),
            obj(pod("h1", "img:1")),
        ];
        let live: Vec<_> = desired
            .iter()
            .map(|d| obj(as_live(serde_json::to_value(d).unwrap())))
            .collect();
        let p = plan(&desired, &live);
        assert!(p.is_unchanged(), "{p}");
        assert_eq!(p.steps.len(), 3);
    }

    #[test]
    fn missing_objects_are_created_and_changed_ones_updated_with_a_patch() {
        let desired = vec![obj(pvc("10Gi", Some("new"))), obj(service())];
        let live = vec![obj(as_live(pvc("10Gi", None)))];
        let p = plan(&desired, &live);
        assert_eq!(p.steps[0].action.name(), "update");
        let Action::Update { patch } = &p.steps[0].action else {
            unreachable!()
        };
        assert_eq!(
            serde_json::to_value(patch).unwrap(),
            json!([{"op": "add", "path": "/metadata/annotations/x", "value": "new"}])
        );
        assert_eq!(p.steps[1].action, Action::Create);
        let text = p.to_string();
        assert!(
            text.starts_with("update PersistentVolumeClaim/workspace-u\n    [\n"),
            "{text}"
        );
        assert!(text.contains("create Service/code-server-u"));
    }

    #[test]
    fn a_pod_with_a_changed_spec_is_recreated_and_metadata_changes_update() {
        let live = vec![obj(as_live(pod("h1", "img:1")))];
        let p = plan(&[obj(pod("h2", "img:2"))], &live);
        assert_eq!(
            p.steps[0].action,
            Action::Recreate {
                live_hash: "h1".into(),
                desired_hash: "h2".into()
            }
        );
        let mut relabelled = pod("h1", "img:1");
        relabelled["metadata"]["labels"]["team"] = json!("x");
        let p = plan(&[obj(relabelled)], &live);
        assert_eq!(p.steps[0].action.name(), "update");
    }

    #[test]
    fn objects_no_longer_rendered_are_pruned_but_never_the_pvc_jobs_or_controlled_ones() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings-u", "namespace": "ns"}});
        let mut job_pod = pod("h", "i");
        job_pod["metadata"]["name"] = json!("sync-u-abcde-x");
        job_pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "sync-u-abcde", "uid": "1", "controller": true}]);
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "sync-u-abcde", "namespace": "ns"}});
        let live = vec![
            obj(as_live(pvc("10Gi", None))),
            obj(cm.take()),
            obj(job_pod),
            obj(job),
        ];
        let p = plan(&[], &live);
        let pruned: Vec<&str> = p.steps.iter().map(|s| s.object.as_str()).collect();
        assert_eq!(pruned, ["ConfigMap/settings-u"]);
        assert_eq!(p.count("prune"), 1);
    }

    #[test]
    fn a_pvc_grows_but_never_shrinks_and_immutable_changes_are_held() {
        let live = vec![obj(as_live(pvc("10Gi", None)))];
        let p = plan(&[obj(pvc("20Gi", None))], &live);
        let Action::Update { patch } = &p.steps[0].action else {
            panic!("{p}")
        };
        assert_eq!(
            serde_json::to_value(patch).unwrap()[0]["path"],
            "/spec/resources/requests/storage"
        );

        let p = plan(&[obj(pvc("5Gi", None))], &live);
        assert_eq!(p.steps[0].action, Action::Unchanged);
        assert!(
            p.steps[0].notes[0].contains("never shrunk"),
            "{:?}",
            p.steps[0].notes
        );

        let mut other_class = pvc("10Gi", None);
        other_class["spec"]["storageClassName"] = json!("fast");
        let p = plan(&[obj(other_class)], &live);
        assert_eq!(p.steps[0].action, Action::Unchanged);
        assert!(p.steps[0].notes[0].contains("immutable"));
    }

    #[test]
    fn a_grown_pvc_is_applied_at_its_live_size_never_the_smaller_rendered_one() {
        // NB: grown by resizeStorage to 20Gi; the templates still render 10Gi and the
        // record changed (a repository added), so the PVC is applied again.
        let mut grown = as_live(pvc("10Gi", None));
        grown["spec"]["resources"]["requests"]["storage"] = json!("20Gi");
        let live = vec![obj(grown)];
        let p = plan(&[obj(pvc("10Gi", Some("changed")))], &live);
        assert_eq!(p.steps[0].action.name(), "update");
        let applied = p.steps[0].desired.as_ref().unwrap();
        assert_eq!(
            applied.data.pointer("/spec/resources/requests/storage"),
            Some(&json!("20Gi"))
        );
        assert_eq!(
            applied.metadata.annotations.as_ref().unwrap()["x"],
            "changed"
        );
        // A larger rendered size is applied as rendered (the volume grows).
        let p = plan(&[obj(pvc("30Gi", None))], &live);
        let applied = p.steps[0].desired.as_ref().unwrap();
        assert_eq!(
            applied.data.pointer("/spec/resources/requests/storage"),
            Some(&json!("30Gi"))
        );
    }
}
