//! Live template reload: the active template set, replaced without a restart when the
//! templates directory changes and the new set passes `validate-templates`.
//!
//! In the cluster the directory is a mounted ConfigMap. The kubelet updates it by
//! writing the new files into a fresh hidden directory and swapping the `..data` symlink
//! atomically, so a reader sees either the old set or the new one. The [`Reloader`]
//! polls a content hash of the visible files every few seconds (a few small reads, and
//! no dependence on filesystem events, which symlink swaps make unreliable), loads and
//! validates a changed set exactly as `validate-templates` does, and swaps it into the
//! service's [`ActiveTemplates`], the set the reconciler renders with. A set with
//! problems is refused, every problem is logged and the last good set stays active;
//! `codeserver_templates_reload_total{result="ok"|"error"}` counts both. Requests hold
//! an `Arc` of the set they started with, so a swap never changes a render half-way.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use jiff::Timestamp;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{error, info, warn};

use crate::{
    config::InstanceSettings,
    render::{self, ActiveTemplates, Problem, RenderError, Source, Templates},
};

/// Name of the counter of reload attempts, labelled by `result`.
pub const RELOAD_METRIC: &str = "codeserver_templates_reload_total";
/// `result` of a reload that replaced the active set.
pub const RESULT_OK: &str = "ok";
/// `result` of a reload that was refused (unreadable or invalid templates).
pub const RESULT_ERROR: &str = "error";
/// How often the directory is checked unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Why a template set could not be loaded or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The directory or a file in it could not be read.
    #[error("cannot read templates from {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The set loads but has problems; each names file, object and cause.
    #[error("{} template problem(s) in {path}", problems.len())]
    Invalid {
        /// The template directory.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The set renders a per-instance access policy, which names the owner as
    /// `<JWT_ISSUER>/<sub>`, but JWT_ISSUER is not set.
    #[error(
        "JWT_ISSUER is not set, but the templates render a per-instance access policy that names each owner as <JWT_ISSUER>/<sub>; set JWT_ISSUER to the issuer (iss) of the users' tokens"
    )]
    NoIssuer,
    /// The reload counter could not be created or registered.
    #[error("cannot create metric {RELOAD_METRIC}: {0}")]
    Metric(#[source] prometheus::Error),
}

impl ReloadError {
    /// One line per problem, for logs and API answers.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Self::Invalid { problems, .. } => problems.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Loads the set in `dir` (the built-in set when `None`) and validates it as
/// `validate-templates` does: every template renders for every sample user.
pub fn load_validated(
    dir: Option<&Path>,
    settings: &InstanceSettings,
) -> Result<Templates, ReloadError> {
    let path = dir.map_or_else(|| PathBuf::from("built-in templates"), Path::to_owned);
    let loaded = Templates::load(dir).and_then(|t| t.with_values_files(&settings.values_files));
    let templates = loaded.map_err(|e| match e {
        RenderError::Io { path, source } => ReloadError::Io { path, source },
        RenderError::Problems(problems) => ReloadError::Invalid {
            path: path.clone(),
            problems,
        },
        other @ RenderError::Values(_) => ReloadError::Invalid {
            path: path.clone(),
            problems: vec![Problem {
                file: render::VALUES_FILE.to_owned(),
                line: None,
                object: None,
                message: other.to_string(),
            }],
        },
    })?;
    if settings.jwt_issuer.as_deref().is_none_or(str::is_empty)
        && render::access_report(&templates, settings).has_policy
    {
        return Err(ReloadError::NoIssuer);
    }
    let problems = render::validate(&templates, settings);
    if problems.is_empty() {
        Ok(templates)
    } else {
        Err(ReloadError::Invalid { path, problems })
    }
}

/// A content hash of the visible files of `dir`, following the ConfigMap symlinks.
///
/// NB: hidden names (`..data`, `..2026_11_27_...`) are skipped, as `Templates::load_dir`
/// skips them; the visible names are symlinks into them, so a swap changes the hash.
pub fn fingerprint(dir: &Path) -> io::Result<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    let mut hash = Sha256::new();
    for name in names {
        let path = dir.join(&name);
        // NB: `metadata` follows symlinks; a dangling one (mid-swap) is an error and the
        // caller retries on the next tick.
        if !std::fs::metadata(&path)?.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

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
/// [`Reloader`] and whatever reports status.
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

    fn set(&self, refusal: Option<Refusal>) {
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

/// Loads and validates the configured set (TEMPLATES_DIR, else the built-in one) as the
/// active set. A service must not start on a broken set: the caller reports the error
/// (every problem is in [`ReloadError::messages`]) and exits.
pub fn load_active(settings: &InstanceSettings) -> Result<ActiveTemplates, ReloadError> {
    load_validated(settings.templates_dir.as_deref(), settings).map(ActiveTemplates::new)
}

/// What one check of the directory did.
#[derive(Debug)]
pub enum Outcome {
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
    pub fn check(&mut self) -> Outcome {
        let before = match fingerprint(&self.dir) {
            Ok(f) => f,
            Err(source) => {
                if !std::mem::replace(&mut self.unreadable, true) {
                    warn!(dir = %self.dir.display(), error = %source, "cannot read the templates directory; keeping the active set");
                }
                return Outcome::Retry;
            }
        };
        if std::mem::take(&mut self.unreadable) {
            info!(dir = %self.dir.display(), "the templates directory is readable again");
        }
        if self.seen.as_deref() == Some(before.as_str()) {
            return Outcome::Unchanged;
        }
        let loaded = load_validated(Some(&self.dir), &self.settings);
        // NB: files are read one by one; if the directory changed meanwhile, what was
        // loaded may mix two versions. Try again on the next tick.
        if fingerprint(&self.dir).ok().as_deref() != Some(before.as_str()) {
            return Outcome::Retry;
        }
        self.seen = Some(before);
        let from = self.active.get().revision().to_owned();
        match loaded {
            Ok(templates) if templates.revision() == from => {
                self.refusals.set(None);
                Outcome::Unchanged
            }
            Ok(templates) => {
                let to = templates.revision().to_owned();
                self.active.swap(templates);
                self.refusals.set(None);
                self.reloads.with_label_values(&[RESULT_OK]).inc();
                info!(dir = %self.dir.display(), from = %from, to = %to, "templates reloaded; new instances and restarts use them");
                Outcome::Reloaded { from, to }
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
                Outcome::Refused(e)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn the_fingerprint_follows_content_and_ignores_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        file(dir.path(), "a.yaml.j2", "one");
        let first = fingerprint(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("..2026_11_27")).unwrap();
        file(dir.path(), ".hidden", "x");
        assert_eq!(fingerprint(dir.path()).unwrap(), first);
        file(dir.path(), "a.yaml.j2", "two");
        assert_ne!(fingerprint(dir.path()).unwrap(), first);
        // A file name moving content to another name is a change too.
        let dir2 = tempfile::tempdir().unwrap();
        file(dir2.path(), "b.yaml.j2", "one");
        assert_ne!(fingerprint(dir2.path()).unwrap(), first);
    }

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
