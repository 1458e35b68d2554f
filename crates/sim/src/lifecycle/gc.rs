//! The garbage collector (owner references, orphaning, foreground deletion) and namespace
//! termination.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::ops::{self, DeleteParams, controller_write, uid_of};
use crate::resources::{ResId, ids};
use crate::{Shared, lock};

use super::*;

pub(crate) fn collect_garbage(sh: &Arc<Shared>, ns: &str, uid: &str, orphan: bool) {
    let deps = {
        let store = lock(&sh.store);
        ops::dependents(&store, ns, uid)
    };
    for (res, dns, dname) in deps {
        if orphan {
            let duid = ops::get(sh, res, &dns, &dname)
                .map(|v| uid_of(&v))
                .unwrap_or_default();
            controller_write(
                sh,
                res,
                &dns,
                &dname,
                &duid,
                "kube-controller-manager",
                None,
                |o| {
                    ops::drop_owner_ref(o, uid);
                },
            );
        } else {
            let dp = DeleteParams {
                propagation: Some("Background".into()),
                ..DeleteParams::default()
            };
            delete_if_present(sh, res, &dns, &dname, &dp);
        }
    }
}

/// The garbage collector's foreground deletion: dependents first, then the owner's
/// `foregroundDeletion` finalizer goes and the owner with it.
pub(crate) async fn delete_in_foreground(
    sh: Arc<Shared>,
    res: ResId,
    ns: String,
    name: String,
    uid: String,
) {
    loop {
        let deps = {
            let store = lock(&sh.store);
            ops::dependents(&store, &ns, &uid)
        };
        if deps.is_empty() {
            break;
        }
        for (dres, dns, dname) in deps {
            let dp = DeleteParams {
                propagation: Some("Background".into()),
                ..DeleteParams::default()
            };
            delete_if_present(&sh, dres, &dns, &dname, &dp);
        }
        sleep(Duration::from_millis(10)).await;
    }
    controller_write(
        &sh,
        res,
        &ns,
        &name,
        &uid,
        "kube-controller-manager",
        None,
        |o| remove_finalizer(o, "foregroundDeletion"),
    );
}

pub(crate) async fn terminate_namespace(sh: Arc<Shared>, name: String, uid: String) {
    loop {
        let mut left = 0usize;
        for res in 0..crate::resources::RESOURCES.len() as ResId {
            if !crate::resources::def(res).namespaced {
                continue;
            }
            let names: Vec<String> = {
                let store = lock(&sh.store);
                store
                    .iter(res, Some(&name))
                    .map(|(k, _)| k.2.clone())
                    .collect()
            };
            left += names.len();
            for n in names {
                delete_if_present(&sh, res, &name, &n, &DeleteParams::default());
            }
        }
        if left == 0 {
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }
    let mut store = lock(&sh.store);
    if store
        .get(ids::NAMESPACES, "", &name)
        .is_some_and(|s| uid_of(&s.value()) == uid)
    {
        store.remove(ids::NAMESPACES, "", &name);
    }
}

/// Removes `finalizer` from an object's `metadata.finalizers`, and the list once empty,
/// as the controller that owns the finalizer does.
pub(crate) fn remove_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(list) = meta.get_mut("finalizers").and_then(Value::as_array_mut) {
        list.retain(|x| x != finalizer);
        if list.is_empty() {
            meta.remove("finalizers");
        }
    }
}

/// A controller's delete: an object already gone (404) is what it wanted; anything else
/// is logged, and the controller goes on as a real one would on its next pass.
pub(crate) fn delete_if_present(
    sh: &Arc<Shared>,
    res: ResId,
    ns: &str,
    name: &str,
    dp: &DeleteParams,
) {
    if let Err(e) = ops::delete(sh, res, ns, name, dp)
        && e.code != 404
    {
        tracing::debug!(namespace = ns, name, error = %e.message, "a controller's delete failed");
    }
}
