//! Readiness: whether the service can work (the Kubernetes API answers, a template set is
//! loaded and the caches of the managed objects have synced) and what it lacks. The HTTP layer answers `/ready` with it and the GraphQL
//! layer the `health` query; both only read it.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use kube::Client;

use crate::render::ActiveTemplates;

/// How long a readiness answer is reused (probes and `health` stay cheap under load).
const READY_CACHE: Duration = Duration::from_secs(2);
/// How long the readiness probe waits for the Kubernetes API.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Decides readiness: `Ok` when the Kubernetes API answers and the templates are loaded,
/// else why not (logged, never shown).
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What `/ready` lists under `degraded`, computed when asked.
pub type Degraded = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// A readiness answer and when it was given.
type ReadyAnswer = (Instant, Result<(), String>);

/// Ready when the Kubernetes API answers, a template set is loaded and `synced` says the
/// caches of the managed objects have synced; answers are reused for a moment so that
/// probes and `health` never pile up on the API server.
pub fn ready_check(
    client: Client,
    templates: Arc<ActiveTemplates>,
    synced: impl Fn() -> bool + Send + Sync + 'static,
) -> ReadyCheck {
    let last: Arc<Mutex<Option<ReadyAnswer>>> = Arc::default();
    Arc::new(move || {
        let client = client.clone();
        let templates = templates.clone();
        let synced = synced();
        let last = last.clone();
        Box::pin(async move {
            let cached = last
                .lock()
                .ok()
                .and_then(|slot| slot.clone())
                .filter(|(at, _)| at.elapsed() < READY_CACHE);
            if let Some((_, answer)) = cached {
                return answer;
            }
            let answer = if templates.get().object_templates().is_empty() {
                Err("no templates are loaded".to_owned())
            } else if !synced {
                Err("the caches of the managed objects have not synced yet".to_owned())
            } else {
                match tokio::time::timeout(READY_TIMEOUT, client.apiserver_version()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(format!("the Kubernetes API failed: {error}")),
                    Err(_) => Err("the Kubernetes API did not answer in time".to_owned()),
                }
            };
            if let Ok(mut slot) = last.lock() {
                *slot = Some((Instant::now(), answer.clone()));
            }
            answer
        })
    })
}
