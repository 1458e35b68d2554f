//! The lifecycle record of an instance (`crate::instance::lifecycle`): stops with their
//! reason, keep-alive extensions, and recording that a start created the pod.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, PersistentVolumeClaim, Pod};
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions},
};
use serde_json::Value;

use super::{
    Error, Reconciler, Result,
    apply::{ApplyOptions, Updates, delete_if_present},
    cached::Written,
    live::{identity, named},
    with_retry,
};
use crate::{
    instance::{
        Instance, StopReason,
        lifecycle::{self, FIELD_MANAGER, Heal},
        record,
    },
    values::Owner,
};

impl Reconciler {
    /// Writes the lifecycle annotations `patch` to the PVC `pvc_name` (a merge patch
    /// under the lifecycle's own field manager: it never creates a PVC, and applying the
    /// templates leaves its keys alone); later reads show it.
    pub async fn record_lifecycle(&self, pvc_name: &str, patch: &Value) -> Result<()> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let api = self.pvcs();
        let what = "record the instance's lifecycle";
        let merge = Patch::Merge(patch);
        let pvc = with_retry(what, || api.patch(pvc_name, &params, &merge))
            .await
            .map_err(|e| Error::kube(what, e))?;
        if let Some(version) = pvc.metadata.resource_version {
            let ns = &self.settings.namespace;
            self.written(
                "v1/PersistentVolumeClaim",
                ns,
                pvc_name,
                Written::At(version),
            )
            .await;
        }
        Ok(())
    }

    /// Records that a start created the pod of instance `id` now (and clears any stop
    /// reason and keep-alive). A failure is logged: the pod runs either way.
    pub(super) async fn record_started(&self, id: &str) {
        let Ok(name) = crate::naming::parse_instance_id(id) else {
            return;
        };
        let pvc_name = crate::naming::pvc_name(name);
        let patch = lifecycle::on_start(Timestamp::now());
        if let Err(error) = self.record_lifecycle(&pvc_name, &patch).await {
            tracing::warn!(instance = id, %error, "failed to record the start on the instance");
        }
    }

    /// Stop: delete the pod; the PVC and the work in it stay. Answers at once (STOPPING).
    /// Stopped by its owner: `stopReason` USER.
    pub async fn stop(&self, owner: &Owner, id: &str) -> Result<()> {
        self.stop_as(owner, id, StopReason::User).await
    }

    /// [`Self::stop`], recording `reason`. The reason is recorded before the pod is
    /// deleted (so that the self-healing never takes the stop for a lost pod); stopping a
    /// stopped instance changes nothing.
    pub async fn stop_as(&self, owner: &Owner, id: &str, reason: StopReason) -> Result<()> {
        let (_, key) = identity(owner)?;
        let _guard = self.locks.lock(&key).await;
        let record = self.owned_record(owner, id).await?;
        let pod = self.pod(id).await?;
        let has_pod = pod
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none());
        if has_pod || lifecycle::runs_since(&record).is_some() {
            let name = record.metadata.name.clone().unwrap_or_default();
            self.record_lifecycle(&name, &lifecycle::on_stop(reason))
                .await?;
        }
        let what = format!("delete Pod/{id}");
        let (pods, params) = (self.pods(), DeleteParams::default());
        let deleted = delete_if_present(&pods, id, &params, &what)
            .await
            .map_err(|e| Error::Instance(format!("{what}: {}", super::reason(&e))))?;
        let ns = &self.settings.namespace;
        self.written("v1/Pod", ns, id, Written::of_delete(&deleted))
            .await;
        Ok(())
    }

    /// Keeps the instance `id` alive (no idle stop) for `hours` from now, at most
    /// IDLE_MAX_EXTENSION; it must have a pod (running or starting). A later call
    /// replaces the earlier one; a stop or a start ends it.
    pub async fn extend(&self, owner: &Owner, id: &str, hours: i32) -> Result<Instance> {
        let max = self.idle.max_extension;
        if max.is_zero() {
            return Err(Error::BadInput {
                argument: "hours",
                reason: "keeping instances alive is turned off (IDLE_MAX_EXTENSION is 0)"
                    .to_owned(),
            });
        }
        let max_hours = max.as_secs() / 3600;
        let seconds = u64::try_from(hours).unwrap_or(0).saturating_mul(3600);
        if hours < 1 || seconds > max.as_secs() {
            let most = if max_hours >= 1 {
                format!("at most {max_hours} hours")
            } else {
                format!("at most {} seconds", max.as_secs())
            };
            return Err(Error::BadInput {
                argument: "hours",
                reason: format!("must be at least 1 and {most} (IDLE_MAX_EXTENSION); got {hours}"),
            });
        }
        let (_, key) = identity(owner)?;
        let guard = self.locks.lock(&key).await;
        let record = self.owned_record(owner, id).await?;
        let pod = self.pod(id).await?;
        if pod
            .as_ref()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        {
            return Err(Error::NotReady(
                "the instance is not running; start it, then extend it".to_owned(),
            ));
        }
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        let until = Timestamp::now()
            .checked_add(SignedDuration::from_secs(seconds))
            .map_err(|_| Error::BadInput {
                argument: "hours",
                reason: "too far ahead".to_owned(),
            })?;
        // NB: to the second, as every recorded time.
        let until = Timestamp::from_second(until.as_second()).unwrap_or(until);
        let name = record.metadata.name.clone().unwrap_or_default();
        self.record_lifecycle(&name, &lifecycle::on_extend(until))
            .await?;
        drop(guard);
        self.get(owner, id).await
    }
}

/// What the self-healing did about one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healed {
    /// Nothing needed doing (or not yet).
    Nothing,
    /// The lost pod was started again (restart `attempt`).
    Restarted(u32),
    /// The pod was lost once more than the retries allow: left stopped, EVICTED.
    GaveUp,
    /// The restarted pod has run long enough: the loss is cleared.
    Settled,
}

impl Reconciler {
    /// The self-healing of instance `id` at `now` (the Lease holder's, after each idle
    /// check): an instance meant to run whose pod was lost (evicted, its node lost, deleted
    /// from outside) is started again from its record, with bounded retries and backoff
    /// (`crate::instance::lifecycle::heal`). Decided again under the owner's lock from
    /// the API server, the pod read before the record: a stop records its reason before it
    /// deletes the pod, so a stop is never taken for a loss.
    pub async fn heal(&self, id: &str, now: Timestamp) -> Result<Healed> {
        let name = crate::naming::parse_instance_id(id).map_err(|_| Error::NotFound)?;
        let pvc_name = crate::naming::pvc_name(name);
        let Some(cached) = self.pvc(&pvc_name).await? else {
            return Ok(Healed::Nothing);
        };
        // NB: the lock its owner's own calls take (their key as today's naming derives it,
        // which a record named by the earlier scheme does not carry as its label).
        let (_, key) = identity(&record::owner(&cached))?;
        let _guard = self.locks.lock(&key).await;
        let pod = named(&self.pods(), id)
            .await
            .map_err(|e| Error::kube("read the instance's pod", e))?;
        let Some(pvc) = named(&self.pvcs(), &pvc_name)
            .await
            .map_err(|e| Error::kube("read the workspace volume", e))?
        else {
            return Ok(Healed::Nothing);
        };
        match lifecycle::heal(&pvc, pod.as_ref(), now) {
            Heal::Nothing | Heal::Wait => Ok(Healed::Nothing),
            Heal::Settled => {
                self.record_lifecycle(&pvc_name, &lifecycle::on_healed())
                    .await?;
                Ok(Healed::Settled)
            }
            Heal::GiveUp => {
                self.record_lifecycle(&pvc_name, &lifecycle::on_heal_given_up())
                    .await?;
                self.remove_failed_pod(id, pod.as_ref()).await?;
                let message = format!(
                    "The workspace's pod was lost again after {} restarts; it stays stopped \
                     until its owner starts it",
                    lifecycle::HEAL_MAX_ATTEMPTS
                );
                self.record_event(&pvc, "Warning", "WorkspaceLost", &message)
                    .await;
                Ok(Healed::GaveUp)
            }
            Heal::Restart { attempt, next } => {
                self.record_lifecycle(&pvc_name, &lifecycle::on_heal(attempt, next))
                    .await?;
                let why = lost_why(pod.as_ref());
                let message = format!(
                    "The workspace's pod was lost ({why}); starting it again (restart \
                     {attempt} of {})",
                    lifecycle::HEAL_MAX_ATTEMPTS
                );
                self.record_event(&pvc, "Warning", "WorkspaceRestarted", &message)
                    .await;
                self.remove_failed_pod(id, pod.as_ref()).await?;
                let owner = record::owner(&pvc);
                let repos = record::repos(Some(&pvc));
                let recorded = record::kinds(Some(&pvc));
                let desired =
                    self.desired(&owner, &repos, &recorded, &[], record::profile(&pvc))?;
                let opts = ApplyOptions {
                    updates: Updates::All,
                    recreate: true,
                    prune: true,
                };
                let admitted = self.admit_start(id).await?;
                self.converge(id, &desired, &recorded, None, opts, &owner)
                    .await?;
                let _turn = admitted.created();
                tracing::info!(instance = id, attempt, %why, "restarted a lost workspace");
                Ok(Healed::Restarted(attempt))
            }
        }
    }

    /// Deletes the failed pod `pod` of `id` (its uid as a precondition) and waits until it
    /// is gone; nothing for no pod.
    async fn remove_failed_pod(&self, id: &str, pod: Option<&Pod>) -> Result<()> {
        let Some(pod) = pod else {
            return Ok(());
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let what = format!("delete the failed Pod/{id}");
        delete_if_present(&self.pods(), id, &params, &what)
            .await
            .map_err(|e| Error::kube(&what, e))?;
        let ns = &self.settings.namespace;
        super::apply::wait_pod_gone(&self.client, ns, id, pod.metadata.uid.as_deref()).await?;
        self.written("v1/Pod", ns, id, Written::Gone).await;
        Ok(())
    }

    /// Records a core/v1 Event about the workspace volume `pvc` (shown by
    /// `CodeServerInstance.events` and the progress subscription). A failure is logged.
    async fn record_event(
        &self,
        pvc: &PersistentVolumeClaim,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let ns = &self.settings.namespace;
        let pvc_name = pvc.metadata.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
        let event = Event {
            metadata: ObjectMeta {
                // NB: as client-go's recorder names events: `<object>.<unix nanos in hex>`.
                name: Some(format!("{pvc_name}.{:x}", now.as_nanosecond())),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("PersistentVolumeClaim".to_owned()),
                name: Some(pvc_name.clone()),
                namespace: Some(ns.clone()),
                uid: pvc.metadata.uid.clone(),
                resource_version: pvc.metadata.resource_version.clone(),
                ..ObjectReference::default()
            },
            type_: Some(type_.to_owned()),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            source: Some(EventSource {
                component: Some("codeserver-service".to_owned()),
                host: None,
            }),
            reporting_component: Some("codeserver-service".to_owned()),
            reporting_instance: Some("codeserver-service".to_owned()),
            count: Some(1),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(pvc = %pvc_name, %error, "failed to record an event");
        }
    }
}

/// Why the pod counts as lost, for people.
fn lost_why(pod: Option<&Pod>) -> String {
    let Some(status) = pod.and_then(|p| p.status.as_ref()) else {
        return "its pod is gone: evicted, its node lost or drained, or deleted".to_owned();
    };
    match (status.reason.as_deref(), status.message.as_deref()) {
        (Some(reason), Some(message)) => format!("{reason}: {message}"),
        (Some(reason), None) => reason.to_owned(),
        (None, Some(message)) => message.to_owned(),
        (None, None) => "its pod failed".to_owned(),
    }
}
