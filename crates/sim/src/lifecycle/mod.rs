//! Standing in for the scheduler, the kubelet and the controllers: pod phases and container
//! states, pod logs, graceful deletion, PVC binding and protection, jobs, garbage
//! collection and namespace termination.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::ops::{self, DeleteParams, WriteParams, controller_write, now, uid_of};
use super::resources::{ResId, ids};
use super::{GracePeriod, Shared, lock};
use crate::admission::random_suffix;
use crate::hooks::Hook;

mod claims;
mod containers;
mod events;
mod init;
mod jobs;
mod kubelet;
mod logs;
mod states;

pub(crate) use claims::*;
pub(crate) use containers::*;
pub(crate) use events::*;
pub(crate) use init::*;
pub(crate) use jobs::*;
pub(crate) use kubelet::*;
pub(crate) use logs::*;
pub(crate) use states::*;

/// How a pod behaves, chosen per pod by the handle, an annotation or an image marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodBehaviour {
    /// Pending → init containers → Running and Ready.
    Normal,
    /// Containers wait with ErrImagePull, then ImagePullBackOff (image marker `errimagepull`).
    ErrImagePull,
    /// Containers start, exit 1 and go to CrashLoopBackOff (image marker `crashloop`).
    CrashLoop,
    /// Containers wait with CreateContainerConfigError (image marker `createconfigerror`).
    CreateContainerConfigError,
    /// The first init container exits 1 with git-style error lines in its log
    /// (init image marker `initfail`).
    InitFail,
    /// The scheduler finds no node: PodScheduled False, reason Unschedulable
    /// (image marker `unschedulable`).
    Unschedulable,
    /// Containers run but never become Ready.
    NeverReady,
}

/// How a Job's pod ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobBehaviour {
    /// The pod exits 0 and the Job completes.
    Succeed,
    /// Every pod exits 1 until the backoff limit is reached (image marker `jobfail`).
    Fail,
}

/// Annotation that selects a pod behaviour (`errimagepull`, `crashloop`, `createconfigerror`,
/// `initfail`, `unschedulable`, `neverready`, `jobfail`).
pub const BEHAVIOUR_ANNOTATION: &str = "sim.devplatform.io/behaviour";

/// Start the work hooks ask for.
pub(crate) fn run(sh: &Arc<Shared>, hooks: Vec<Hook>) {
    if hooks.is_empty() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for h in hooks {
        let sh = sh.clone();
        match h {
            Hook::Created { .. } if !sh.opts.lifecycle => {}
            Hook::Created { res, ns, name, uid } => match res {
                ids::PODS => {
                    let token = new_token(&sh, &uid);
                    rt.spawn(drive_pod(sh, ns, name, uid, token));
                }
                ids::JOBS => {
                    rt.spawn(drive_job(sh, ns, name, uid));
                }
                ids::PVCS => {
                    rt.spawn(bind_pvc(sh, ns, name, uid));
                }
                _ => {}
            },
            Hook::Deleting {
                res,
                ns,
                name,
                uid,
                foreground: true,
                ..
            } => {
                rt.spawn(delete_in_foreground(sh, res, ns, name, uid));
            }
            Hook::Deleting {
                res,
                ns,
                name,
                uid,
                grace,
                orphan,
                ..
            } => match res {
                ids::PODS => {
                    let delay = match sh.opts.grace {
                        _ if grace <= 0 => Duration::ZERO,
                        GracePeriod::Fixed(d) => d,
                        GracePeriod::Real => Duration::from_secs(grace as u64),
                    };
                    rt.spawn(async move {
                        tokio::time::sleep(delay).await;
                        expire_grace(&sh, &ns, &name, &uid, orphan);
                    });
                }
                ids::PVCS => {
                    rt.spawn(async move { pvc_sweep(&sh, &ns) });
                }
                ids::NAMESPACES => {
                    rt.spawn(terminate_namespace(sh, name, uid));
                }
                _ => {}
            },
            Hook::SpecChanged { .. } if !sh.opts.lifecycle => {}
            Hook::SpecChanged { res, ns, name, uid } => match res {
                ids::PODS => {
                    let token = new_token(&sh, &uid);
                    rt.spawn(drive_pod(sh, ns, name, uid, token));
                }
                ids::PVCS => {
                    rt.spawn(async move {
                        sleep(sh.opts.pvc_bind_delay).await;
                        controller_write(
                            &sh,
                            ids::PVCS,
                            &ns,
                            &name,
                            &uid,
                            "kube-controller-manager",
                            Some("status"),
                            |p| {
                                if let Some(q) =
                                    p.pointer("/spec/resources/requests/storage").cloned()
                                {
                                    p["status"]["capacity"]["storage"] = q;
                                }
                            },
                        );
                    });
                }
                _ => {}
            },
            Hook::Removed {
                res,
                ns,
                name,
                uid,
                orphan,
            } => {
                lock(&sh.drivers).remove(&uid);
                if res == ids::PODS {
                    lock(&sh.logs).retain(|(lns, pod, _), _| *lns != ns || *pod != name);
                }
                lock(&sh.grace_expired).remove(&uid);
                rt.spawn(async move {
                    collect_garbage(&sh, &ns, &uid, orphan);
                    if res == ids::PODS {
                        pvc_sweep(&sh, &ns);
                    }
                });
            }
        }
    }
}

fn new_token(sh: &Shared, uid: &str) -> u64 {
    let token = {
        let mut c = lock(&sh.counters);
        c.driver += 1;
        c.driver
    };
    lock(&sh.drivers).insert(uid.to_string(), token);
    token
}

fn is_current(sh: &Shared, uid: &str, token: u64) -> bool {
    lock(&sh.drivers).get(uid) == Some(&token)
}

/// Restart the lifecycle of an existing pod (after its behaviour was changed).
pub(crate) fn restart_pod(sh: &Arc<Shared>, ns: &str, name: &str) {
    let Ok(pod) = ops::get(sh, ids::PODS, ns, name) else {
        return;
    };
    let uid = uid_of(&pod);
    let token = new_token(sh, &uid);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(drive_pod(
            sh.clone(),
            ns.to_string(),
            name.to_string(),
            uid,
            token,
        ));
    }
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn collect_garbage(sh: &Arc<Shared>, ns: &str, uid: &str, orphan: bool) {
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
            let _ = ops::delete(sh, res, &dns, &dname, &dp);
        }
    }
}

/// The garbage collector's foreground deletion: dependents first, then the owner's
/// `foregroundDeletion` finalizer goes and the owner with it.
async fn delete_in_foreground(sh: Arc<Shared>, res: ResId, ns: String, name: String, uid: String) {
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
            let _ = ops::delete(&sh, dres, &dns, &dname, &dp);
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

async fn terminate_namespace(sh: Arc<Shared>, name: String, uid: String) {
    loop {
        let mut left = 0usize;
        for res in 0..super::resources::RESOURCES.len() as ResId {
            if !super::resources::def(res).namespaced {
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
                let _ = ops::delete(&sh, res, &name, &n, &DeleteParams::default());
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
