//! Subscriptions: an instance's live progress (`codeServerEvents`), served over the
//! graphql-transport-ws protocol on `/graphql` (served by the HTTP layer).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_graphql::{Context, Enum, SimpleObject, Subscription as GraphqlSubscription};
use futures::{Stream, StreamExt as _};

use super::{
    ApiError, InstanceEvent, InstanceStatus, args,
    convert::owner,
    query::{caller, services},
};
use crate::reconcile::{Progress, ProgressKind as Kind};

/// The default number of subscriptions one caller may have open.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER: usize = 4;
/// The default longest a subscription stays open (CODESERVER_TIMEOUT's default and a
/// minute).
pub const DEFAULT_SUBSCRIPTION_TIMEOUT: Duration = Duration::from_secs(360);

/// What a [`ProgressEvent`] is about.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressKind {
    /// The instance's status changed; the first item is its status when the
    /// subscription began. `message` is the reason, if any.
    Phase,
    /// An init container (the clone) changed state; `message` is `name: state`, such as
    /// `git-clone: terminated (Completed, exit code 0)`.
    Clone,
    /// A Kubernetes event of the pod or workspace volume; `event` holds it.
    Event,
}

/// One item of an instance's live progress.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct ProgressEvent {
    /// What it is about.
    pub kind: ProgressKind,
    /// The instance's status at this point.
    pub status: InstanceStatus,
    /// For people: the status reason, the container state, or the event's reason and
    /// message.
    pub message: Option<String>,
    /// When (RFC 3339).
    pub at: String,
    /// The Kubernetes event, for `EVENT` items.
    pub event: Option<InstanceEvent>,
}

impl From<Progress> for ProgressEvent {
    fn from(p: Progress) -> Self {
        Self {
            kind: match p.kind {
                Kind::Phase => ProgressKind::Phase,
                Kind::Clone => ProgressKind::Clone,
                Kind::Event => ProgressKind::Event,
            },
            status: p.status.status,
            message: p.message.as_deref().map(super::redact),
            at: p.at,
            event: p.event.map(|e| InstanceEvent {
                type_: e.type_,
                reason: e.reason,
                message: super::redact(&e.message),
                count: e.count,
                last_seen: e.last_seen,
                object: e.object,
            }),
        }
    }
}

/// How many subscriptions a caller may have open and for how long.
#[derive(Clone, Debug)]
pub struct SubscriptionLimits {
    max_per_caller: usize,
    timeout: Duration,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl SubscriptionLimits {
    /// At most `max_per_caller` open per caller, each for at most `timeout`.
    pub fn new(max_per_caller: usize, timeout: Duration) -> Self {
        Self {
            max_per_caller,
            timeout,
            open: Arc::default(),
        }
    }

    /// A place for `user`, unless they have the most open already.
    fn acquire(&self, user: &str) -> Option<Open> {
        // NB: the lock is never held across a panic point; the counts stay right.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user.to_owned()).or_insert(0);
        if *count >= self.max_per_caller {
            return None;
        }
        *count += 1;
        Some(Open {
            open: self.open.clone(),
            user: user.to_owned(),
        })
    }
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        Self::new(
            DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER,
            DEFAULT_SUBSCRIPTION_TIMEOUT,
        )
    }
}

/// One open subscription; its place is given back when dropped (the stream ended, the
/// client completed it, or the connection closed).
struct Open {
    open: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// `type Subscription`.
pub struct Subscription;

#[GraphqlSubscription]
impl Subscription {
    /// The live progress of one of the caller's instances (any instance for admins): its
    /// status at once, then status changes with their reason, the clone's progress and
    /// the Kubernetes events of its pod and volume. Ends after RUNNING, ERROR or STOPPED
    /// (or after SUBSCRIPTION_TIMEOUT).
    async fn code_server_events(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<impl Stream<Item = ProgressEvent> + use<>, ApiError> {
        let identity = caller(ctx)?;
        args::instance_id(&id)?;
        let services = services(ctx)?;
        let open = services
            .subscriptions
            .acquire(&identity.user_id)
            .ok_or(ApiError::TooManySubscriptions)?;
        let reconciler = &services.reconciler;
        let owner = if identity.is_admin(&services.admin_role) {
            reconciler.owner_of(&id).await?
        } else {
            owner(identity)
        };
        let progress = reconciler.progress(&owner, &id).await?;
        let timeout = tokio::time::sleep(services.subscriptions.timeout);
        Ok(progress.take_until(timeout).map(move |item| {
            // NB: the place is held as long as the stream lives.
            let _open = &open;
            ProgressEvent::from(item)
        }))
    }
}
