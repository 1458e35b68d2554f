//! The recent Kubernetes events of an instance's pod and workspace volume, newest first:
//! what the scheduler and the kubelet said (pulling, back-off, unschedulable, ...).

use k8s_openapi::api::core::v1::Event;
use kube::{Api, api::ListParams};

use super::{Error, Reconciler, Result, with_retry};
use crate::naming;

/// The most events returned for one instance.
pub const MAX_EVENTS: usize = 20;
/// The longest event message returned, in bytes.
const MAX_MESSAGE_LEN: usize = 1_000;

/// One event of an instance's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEvent {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// Machine-readable reason (`Scheduled`, `Pulling`, `BackOff`, `FailedScheduling`).
    pub reason: String,
    /// For people.
    pub message: String,
    /// How many times it happened.
    pub count: i32,
    /// When it last happened (RFC 3339), if known.
    pub last_seen: Option<String>,
    /// `Kind/name` of the object it is about.
    pub object: String,
}

impl Reconciler {
    /// The newest [`MAX_EVENTS`] events of instance `id`'s pod and workspace volume. The
    /// caller has already checked that the instance is theirs (or that they are an admin).
    pub async fn events(&self, id: &str) -> Result<Vec<InstanceEvent>> {
        let name = naming::parse_instance_id(id).map_err(|_| Error::NotFound)?;
        let pvc = naming::pvc_name(name);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let selectors = [
            format!("involvedObject.kind=Pod,involvedObject.name={id}"),
            format!("involvedObject.kind=PersistentVolumeClaim,involvedObject.name={pvc}"),
        ];
        let (pod_events, pvc_events) = futures::try_join!(
            list_events(&api, &selectors[0]),
            list_events(&api, &selectors[1])
        )?;
        Ok(newest(pod_events.into_iter().chain(pvc_events).collect()))
    }
}

/// The most events read per object.
///
/// NB: the API server pages in name order, not by time, so a page could miss the newest;
/// events of one object are aggregated (one per reason and message, with a count), so an
/// object has far fewer than this and the cap only bounds a pathological case.
const MAX_READ: u32 = 500;

async fn list_events(api: &Api<Event>, selector: &str) -> Result<Vec<Event>> {
    let lp = ListParams::default().fields(selector).limit(MAX_READ);
    with_retry("list events", || api.list(&lp))
        .await
        .map(|l| l.items)
        .map_err(|e| Error::kube("list the instance's events", e))
}

/// When `e` last happened: `lastTimestamp`, else `eventTime`, else its creation.
fn last_seen(e: &Event) -> Option<jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// `events` newest first, at most [`MAX_EVENTS`], as the API reports them.
fn newest(mut events: Vec<Event>) -> Vec<InstanceEvent> {
    events.sort_by_key(|e| std::cmp::Reverse(last_seen(e)));
    events
        .into_iter()
        .take(MAX_EVENTS)
        .map(|e| instance_event(&e))
        .collect()
}

/// `e` as the API reports it, its message cut to [`MAX_MESSAGE_LEN`].
pub(super) fn instance_event(e: &Event) -> InstanceEvent {
    let mut message = e.message.clone().unwrap_or_default();
    if message.len() > MAX_MESSAGE_LEN {
        let mut cut = MAX_MESSAGE_LEN;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    InstanceEvent {
        type_: e.type_.clone().unwrap_or_else(|| "Normal".to_owned()),
        reason: e.reason.clone().unwrap_or_default(),
        message,
        count: e.count.unwrap_or(1),
        last_seen: last_seen(e).map(|t| t.to_string()),
        object: format!(
            "{}/{}",
            e.involved_object.kind.as_deref().unwrap_or_default(),
            e.involved_object.name.as_deref().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(reason: &str, last: &str, count: i32) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p.{reason}")},
            "involvedObject": {"kind": "Pod", "name": "code-server-a"},
            "reason": reason, "message": "m", "type": "Warning",
            "count": count, "lastTimestamp": last,
        }))
        .unwrap()
    }

    #[test]
    fn newest_first_and_bounded() {
        let mut events = vec![
            event("Scheduled", "2026-01-01T00:00:00Z", 1),
            event("BackOff", "2026-01-01T00:05:00Z", 7),
            event("Pulling", "2026-01-01T00:01:00Z", 1),
        ];
        events.extend((0..30).map(|i| event(&format!("Old{i}"), "2025-01-01T00:00:00Z", 1)));
        let out = newest(events);
        assert_eq!(out.len(), MAX_EVENTS);
        assert_eq!(out[0].reason, "BackOff");
        assert_eq!(out[0].count, 7);
        assert_eq!(out[0].object, "Pod/code-server-a");
        assert_eq!(out[0].last_seen.as_deref(), Some("2026-01-01T00:05:00Z"));
        assert_eq!(out[1].reason, "Pulling");
    }
}
