//! Live progress of one instance: its status as it changes (with the reason), the state of
//! its init (clone) containers, and the Kubernetes events of its pod and workspace volume,
//! from watches on the API server (no polling). The stream ends once the instance is
//! RUNNING, ERROR or STOPPED.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Duration,
};

use futures::{Stream, StreamExt as _, stream::BoxStream};
use k8s_openapi::api::core::v1::{ContainerState, Event, Pod};
use kube::{
    Api,
    runtime::{WatchStreamExt as _, watcher},
};

use super::{Reconciler, Result, events::InstanceEvent};
use crate::{
    instance::{self, InstanceStatus, Status},
    values::Owner,
};

/// The most distinct events one progress stream reports; an object has far fewer (events
/// are aggregated per reason and message), this only bounds a pathological case.
const MAX_EVENTS_REPORTED: usize = 200;

/// What a progress item is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressKind {
    /// The instance's status changed (the first item is the status when watching began).
    Phase,
    /// An init (clone) container changed state.
    Clone,
    /// A Kubernetes event of the pod or its workspace volume.
    Event,
}

/// One item of an instance's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What it is about.
    pub kind: ProgressKind,
    /// The instance's status (and its reason) at this point.
    pub status: Status,
    /// For people: the status reason, the container state, or the event's reason and
    /// message.
    pub message: Option<String>,
    /// When (RFC 3339): now, or when the event last happened.
    pub at: String,
    /// The Kubernetes event, for [`ProgressKind::Event`].
    pub event: Option<InstanceEvent>,
}

impl Reconciler {
    /// The progress of `owner`'s instance `id`, from now until it is RUNNING, ERROR or
    /// STOPPED; `NotFound` when it is not `owner`'s. The first item is its current status.
    pub async fn progress(
        &self,
        owner: &Owner,
        id: &str,
    ) -> Result<impl Stream<Item = Progress> + Send + use<>> {
        let record = self.owned_record(owner, id).await?;
        let pvc = record.metadata.name.clone().unwrap_or_default();
        let pod_id = id.to_owned();
        let pods = watcher(
            self.pods(),
            watcher::Config::default().fields(&format!("metadata.name={pod_id}")),
        )
        .default_backoff()
        .boxed();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let pod_events = watcher(
            api.clone(),
            watcher::Config::default().fields(&format!(
                "involvedObject.kind=Pod,involvedObject.name={pod_id}"
            )),
        );
        let pvc_events = watcher(
            api,
            watcher::Config::default().fields(&format!(
                "involvedObject.kind=PersistentVolumeClaim,involvedObject.name={pvc}"
            )),
        );
        let events = futures::stream::select(pod_events, pvc_events)
            .default_backoff()
            .boxed();
        let state = Watch {
            pods,
            events,
            unschedulable: self.timeouts.unschedulable,
            started: false,
            initial: None,
            status: None,
            clones: BTreeMap::new(),
            seen: HashMap::new(),
            queue: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(state, |mut state| async move {
            state.next().await.map(|item| (item, state))
        }))
    }
}

/// The watches and what they have reported so far.
struct Watch {
    pods: BoxStream<'static, watcher::Result<watcher::Event<Pod>>>,
    events: BoxStream<'static, watcher::Result<watcher::Event<Event>>>,
    unschedulable: Duration,
    /// The first status has been reported (events are read only after it).
    started: bool,
    /// The pod of the initial list, while it is read.
    initial: Option<Pod>,
    status: Option<Status>,
    /// Last reported state of each init container.
    clones: BTreeMap<String, String>,
    /// Events reported, by uid, with their count then.
    seen: HashMap<String, i32>,
    queue: VecDeque<Progress>,
    /// A final status was queued: end once the queue is empty.
    done: bool,
}

impl Watch {
    async fn next(&mut self) -> Option<Progress> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            if !self.started {
                let event = self.pods.next().await?;
                self.on_pod(event);
                continue;
            }
            tokio::select! {
                event = self.pods.next() => self.on_pod(event?),
                event = self.events.next() => self.on_event(event?),
            }
        }
    }

    fn on_pod(&mut self, event: watcher::Result<watcher::Event<Pod>>) {
        match event {
            Ok(watcher::Event::Init) => self.initial = None,
            Ok(watcher::Event::InitApply(pod)) => self.initial = Some(pod),
            Ok(watcher::Event::InitDone) => {
                let pod = self.initial.take();
                self.started = true;
                self.observe(pod.as_ref());
            }
            Ok(watcher::Event::Apply(pod)) => self.observe(Some(&pod)),
            Ok(watcher::Event::Delete(_)) => self.observe(None),
            Err(error) => tracing::warn!(%error, "watching an instance's pod failed; retrying"),
        }
    }

    fn on_event(&mut self, event: watcher::Result<watcher::Event<Event>>) {
        let event = match event {
            Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => e,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "watching an instance's events failed; retrying");
                return;
            }
        };
        let uid = event.metadata.uid.clone().unwrap_or_default();
        let count = event.count.unwrap_or(1);
        if self.seen.get(&uid).is_some_and(|seen| *seen >= count) {
            return;
        }
        if !self.seen.contains_key(&uid) && self.seen.len() >= MAX_EVENTS_REPORTED {
            return;
        }
        self.seen.insert(uid, count);
        let reported = super::events::instance_event(&event);
        self.queue.push_back(Progress {
            kind: ProgressKind::Event,
            status: self.current(),
            message: Some(format!("{}: {}", reported.reason, reported.message)),
            at: reported.last_seen.clone().unwrap_or_else(now),
            event: Some(reported),
        });
    }

    /// The status last reported.
    fn current(&self) -> Status {
        self.status.clone().unwrap_or(Status {
            status: InstanceStatus::Pending,
            reason: None,
        })
    }

    /// Queues what changed with the pod now being `pod`: a new status first, the init
    /// containers' states after it, except that a final status comes last (and a final
    /// status when watching began is all that is reported).
    fn observe(&mut self, pod: Option<&Pod>) {
        let status =
            instance::derive_status(pod, jiff::Timestamp::now().as_second(), self.unschedulable);
        let phase = (self.status.as_ref() != Some(&status)).then(|| Progress {
            kind: ProgressKind::Phase,
            status: status.clone(),
            message: status.reason.clone(),
            at: now(),
            event: None,
        });
        let last = matches!(
            status.status,
            InstanceStatus::Running | InstanceStatus::Error | InstanceStatus::Stopped
        );
        let first = self.status.is_none();
        if (first || !last)
            && let Some(phase) = phase.clone()
        {
            self.queue.push_back(phase);
        }
        if first && last {
            // NB: already at its end: the status is all there is to say.
            self.done = true;
            self.status = Some(status);
            return;
        }
        let inits = pod
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.init_container_statuses.as_deref())
            .unwrap_or_default();
        for init in inits {
            let Some(state) = init.state.as_ref().and_then(describe) else {
                continue;
            };
            if self.clones.get(&init.name) == Some(&state) {
                continue;
            }
            self.clones.insert(init.name.clone(), state.clone());
            self.queue.push_back(Progress {
                kind: ProgressKind::Clone,
                status: status.clone(),
                message: Some(format!("{}: {state}", init.name)),
                at: now(),
                event: None,
            });
        }
        if last && let Some(phase) = phase {
            self.queue.push_back(phase);
            self.done = true;
        }
        self.status = Some(status);
    }
}

/// A container state for people: `waiting (PodInitializing)`, `running`,
/// `terminated (Completed, exit code 0)`.
fn describe(state: &ContainerState) -> Option<String> {
    if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or("waiting");
        return Some(match w.message.as_deref() {
            Some(message) => format!("waiting ({reason}: {message})"),
            None => format!("waiting ({reason})"),
        });
    }
    if state.running.is_some() {
        return Some("running".to_owned());
    }
    state.terminated.as_ref().map(|t| {
        format!(
            "terminated ({}, exit code {})",
            t.reason.as_deref().unwrap_or("no reason given"),
            t.exit_code
        )
    })
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}
