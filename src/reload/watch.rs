//! Live reload: polling the templates directory and swapping a changed, valid set in.

use std::{path::PathBuf, sync::Arc, time::Duration};

use jiff::Timestamp;
use prometheus::{IntCounterVec, Opts, Registry};
use tracing::{error, info, warn};

use super::{
    ActiveTemplates, Refusal, Refusals, ReloadError,
    load::{fingerprint, load_validated},
    metric::{RELOAD_METRIC, RESULT_ERROR, RESULT_OK},
};
use crate::values::InstanceSettings;

/// How often the directory is checked unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What one check of the directory did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// Nothing new: the directory is as last seen, or holds the active set.
    Unchanged,
    /// A new set is active.
    Reloaded {
        /// Revision before.
        from: String,
        /// Revision now active.
        to: String,
    },
    /// The new set was refused; the active set is unchanged.
    Refused(ReloadError),
    /// The directory changed while it was read (or is mid-swap); checked again next time.
    Retry,
}

/// Watches a template directory and keeps the [`ActiveTemplates`] on its latest valid set.
pub struct Reloader {
    active: Arc<ActiveTemplates>,
    refusals: Arc<Refusals>,
    dir: PathBuf,
    settings: InstanceSettings,
    reloads: IntCounterVec,
    /// Fingerprint of the directory when it was last examined, accepted or refused.
    /// NB: starts empty, so the first check compares the directory with the active
    /// set: a change between start-up and the first check is not missed.
    seen: Option<String>,
    /// The directory could not be read at the last check (logged once, not every tick).
    unreadable: bool,
}

impl Reloader {
    /// A reloader of `dir` into `active`, counting attempts in `reloads` (labelled by
    /// `result`: [`RESULT_OK`] or [`RESULT_ERROR`]).
    pub fn new(
        active: Arc<ActiveTemplates>,
        dir: PathBuf,
        settings: InstanceSettings,
        reloads: IntCounterVec,
    ) -> Self {
        for result in [RESULT_OK, RESULT_ERROR] {
            // Exported at zero from the start, so alerts on increase() work.
            reloads.with_label_values(&[result]);
        }
        Self {
            active,
            refusals: Arc::default(),
            dir,
            settings,
            reloads,
            seen: None,
            unreadable: false,
        }
    }

    /// The refusal of the set now in the directory, for status reports.
    pub fn refusals(&self) -> Arc<Refusals> {
        Arc::clone(&self.refusals)
    }

    /// Checks the directory once: loads, validates and swaps in a changed set, or
    /// refuses it and logs every problem.
    pub fn check(&mut self) -> ReloadOutcome {
        let before = match fingerprint(&self.dir) {
            Ok(f) => f,
            Err(source) => {
                if !std::mem::replace(&mut self.unreadable, true) {
                    warn!(dir = %self.dir.display(), error = %source, "cannot read the templates directory; keeping the active set");
                }
                return ReloadOutcome::Retry;
            }
        };
        if std::mem::take(&mut self.unreadable) {
            info!(dir = %self.dir.display(), "the templates directory is readable again");
        }
        if self.seen.as_deref() == Some(before.as_str()) {
            return ReloadOutcome::Unchanged;
        }
        let loaded = load_validated(Some(&self.dir), &self.settings);
        // NB: files are read one by one; if the directory changed meanwhile, what was
        // loaded may mix two versions. Try again on the next tick.
        if fingerprint(&self.dir).ok().as_deref() != Some(before.as_str()) {
            return ReloadOutcome::Retry;
        }
        self.seen = Some(before);
        let from = self.active.get().revision().to_owned();
        match loaded {
            Ok(templates) if templates.revision() == from => {
                self.refusals.set(None);
                ReloadOutcome::Unchanged
            }
            Ok(templates) => {
                let to = templates.revision().to_owned();
                self.active.swap(templates);
                self.refusals.set(None);
                self.reloads.with_label_values(&[RESULT_OK]).inc();
                info!(dir = %self.dir.display(), from = %from, to = %to, "templates reloaded; new instances and restarts use them");
                ReloadOutcome::Reloaded { from, to }
            }
            Err(e) => {
                self.reloads.with_label_values(&[RESULT_ERROR]).inc();
                for message in e.messages() {
                    error!(dir = %self.dir.display(), problem = %message, "template problem");
                }
                error!(dir = %self.dir.display(), active = %from, error = %e, "new templates refused; the active set stays in use");
                self.refusals.set(Some(Refusal {
                    at: Timestamp::now(),
                    problems: e.messages(),
                }));
                ReloadOutcome::Refused(e)
            }
        }
    }

    /// Checks every `interval` until `shutdown` completes.
    pub async fn run(mut self, interval: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            // NB: reading and rendering are blocking work; keep them off the async workers.
            let checked = tokio::task::spawn_blocking(move || {
                let outcome = self.check();
                (self, outcome)
            })
            .await;
            match checked {
                Ok((reloader, _)) => self = reloader,
                Err(e) => {
                    error!(error = %e, "the template reload check failed; live reload stopped");
                    return;
                }
            }
        }
    }
}

/// Starts live reload of TEMPLATES_DIR into `active` (the set the reconciler renders
/// with), checking every [`DEFAULT_INTERVAL`] until `shutdown` completes. `None` when no
/// directory is configured: the built-in set never changes.
pub fn watch(
    active: Arc<ActiveTemplates>,
    settings: &InstanceSettings,
    reloads: IntCounterVec,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Option<(tokio::task::JoinHandle<()>, Arc<Refusals>)> {
    let dir = settings.templates_dir.clone()?;
    info!(dir = %dir.display(), interval_seconds = DEFAULT_INTERVAL.as_secs(), "watching the templates directory for changes");
    let reloader = Reloader::new(active, dir, settings.clone(), reloads);
    let refusals = reloader.refusals();
    let task = tokio::spawn(reloader.run(DEFAULT_INTERVAL, shutdown));
    Some((task, refusals))
}

/// The `codeserver_templates_reload_total{result}` counter, for callers without their
/// own metrics registry (the service's metrics create the same one).
pub fn reload_counter(registry: &Registry) -> Result<IntCounterVec, ReloadError> {
    let reloads = IntCounterVec::new(
        Opts::new(RELOAD_METRIC, "Template directory reloads by result"),
        &["result"],
    )
    .map_err(ReloadError::Metric)?;
    registry
        .register(Box::new(reloads.clone()))
        .map_err(ReloadError::Metric)?;
    Ok(reloads)
}
