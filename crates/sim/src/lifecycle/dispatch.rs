//! Starting the controllers' work for committed writes, and the drivers in charge of pods.

use std::sync::Arc;
use std::time::Duration;

use crate::hooks::Hook;
use crate::ops::{self, uid_of};
use crate::resources::ids;
use crate::{GracePeriod, Shared, lock};

use super::*;

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
                ids::DAEMONSETS => {
                    rt.spawn(async move { daemonset_status(&sh, &ns, &name) });
                }
                ids::NODES => {
                    rt.spawn(async move { every_daemonset_status(&sh) });
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
                ids::DAEMONSETS => {
                    rt.spawn(async move { daemonset_status(&sh, &ns, &name) });
                }
                ids::NODES => {
                    rt.spawn(async move { every_daemonset_status(&sh) });
                }
                ids::PODS => {
                    let token = new_token(&sh, &uid);
                    rt.spawn(drive_pod(sh, ns, name, uid, token));
                }
                ids::PVCS => {
                    rt.spawn(expand_claim(sh, ns, name, uid));
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
                if res == ids::NODES {
                    let sh = sh.clone();
                    rt.spawn(async move { every_daemonset_status(&sh) });
                }
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

pub(crate) fn new_token(sh: &Shared, uid: &str) -> u64 {
    let token = {
        let mut c = lock(&sh.counters);
        c.driver += 1;
        c.driver
    };
    lock(&sh.drivers).insert(uid.to_string(), token);
    token
}

pub(crate) fn is_current(sh: &Shared, uid: &str, token: u64) -> bool {
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

pub(crate) async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
