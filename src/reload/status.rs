//! What the active set is and why the last one was refused, for `/ready` and the
//! GraphQL `templates` query.

use std::sync::{Arc, PoisonError, RwLock};

use jiff::Timestamp;
use serde::Serialize;

use super::ActiveTemplates;
use crate::render::Source;

/// The last refused set: when, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// When the set was refused.
    pub at: Timestamp,
    /// Every problem, one line each.
    pub problems: Vec<String>,
}

/// The refusal of the set now in the directory, if it was refused; shared between the
/// [`Reloader`](super::Reloader) and whatever reports status.
#[derive(Debug, Default)]
pub struct Refusals {
    last: RwLock<Option<Refusal>>,
}

impl Refusals {
    /// The refusal of the set now in the directory; `None` once the directory holds a
    /// set that was accepted (or is the active one).
    pub fn last(&self) -> Option<Refusal> {
        // NB: the lock guards one Option swap, never left half-done; a poisoned lock
        // still holds a valid value.
        self.last
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set(&self, refusal: Option<Refusal>) {
        *self.last.write().unwrap_or_else(PoisonError::into_inner) = refusal;
    }
}

/// What `/ready` and the GraphQL `templates` query report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplatesStatus {
    /// Revision (content hash) of the active set, as stamped on rendered objects.
    pub revision: String,
    /// When the active set was loaded.
    pub loaded_at: Timestamp,
    /// Where it was loaded from: a directory, or `built-in`.
    pub source: String,
    /// Why the set now in the directory was refused, if it was.
    pub last_refusal: Option<Refusal>,
}

/// Reports the active set's status on demand (for `/ready` and the `templates` query).
pub type TemplatesReport = Arc<dyn Fn() -> TemplatesStatus + Send + Sync>;

/// A [`TemplatesReport`] over `active`, with the reloader's `refusals` when there is one.
pub fn reporter(active: Arc<ActiveTemplates>, refusals: Option<Arc<Refusals>>) -> TemplatesReport {
    Arc::new(move || status(&active, refusals.as_deref()))
}

/// The status of `active`, with the reloader's `refusals` when there is a reloader.
pub fn status(active: &ActiveTemplates, refusals: Option<&Refusals>) -> TemplatesStatus {
    let templates = active.get();
    TemplatesStatus {
        revision: templates.revision().to_owned(),
        loaded_at: active.loaded_at(),
        source: match templates.source() {
            Source::Builtin => "built-in".to_owned(),
            Source::Dir(dir) => dir.display().to_string(),
        },
        last_refusal: refusals.and_then(Refusals::last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Templates;

    #[test]
    fn a_poisoned_refusal_slot_still_answers() {
        let refusals = Arc::new(Refusals::default());
        refusals.set(Some(Refusal {
            at: Timestamp::now(),
            problems: vec!["pod.yaml.j2: broken".to_owned()],
        }));
        let poisoner = Arc::clone(&refusals);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.last.write().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert_eq!(refusals.last().unwrap().problems.len(), 1);
        refusals.set(None);
        assert!(refusals.last().is_none());
    }

    #[test]
    fn status_reports_the_active_set() {
        let active = ActiveTemplates::new(Templates::builtin().unwrap());
        let status = status(&active, None);
        assert_eq!(status.revision, active.get().revision());
        assert_eq!(status.source, "built-in");
        assert_eq!(status.loaded_at, active.loaded_at());
        let json = serde_json::to_value(&status).unwrap();
        assert!(json.get("loadedAt").is_some() && json.get("lastRefusal").is_some());
    }
}
