//! Template sets: loading a directory (usually a mounted ConfigMap) or the set compiled
//! into the binary, compiling it, merging its values, and the set's revision hash.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use minijinja::{Environment, Value as JinjaValue, value::Serde};
use serde_json::Value;

use super::{
    check::SchemaCache,
    error::{Problem, RenderError, template_problem},
    functions::environment,
    shape::ShapeCache,
};
use crate::{
    naming,
    values::{self, Profiles, ValuesError},
};

/// Name of the values file inside a template directory.
pub const VALUES_FILE: &str = "values.yaml";
/// The template of the syncRepository Job (not part of an instance's objects).
pub const SYNC_JOB_TEMPLATE: &str = "sync-job.yaml.j2";
/// Suffix of a template that renders objects.
const TEMPLATE_SUFFIX: &str = ".yaml.j2";

/// The built-in template set, compiled into the binary.
const BUILTIN: &[(&str, &str)] = &[
    ("_helpers.j2", include_str!("../../templates/_helpers.j2")),
    (
        "networkpolicy.yaml.j2",
        include_str!("../../templates/networkpolicy.yaml.j2"),
    ),
    ("pod.yaml.j2", include_str!("../../templates/pod.yaml.j2")),
    ("pvc.yaml.j2", include_str!("../../templates/pvc.yaml.j2")),
    (
        "service.yaml.j2",
        include_str!("../../templates/service.yaml.j2"),
    ),
    (
        "sync-job.yaml.j2",
        include_str!("../../templates/sync-job.yaml.j2"),
    ),
    ("values.yaml", include_str!("../../templates/values.yaml")),
    (
        "virtualservice.yaml.j2",
        include_str!("../../templates/virtualservice.yaml.j2"),
    ),
];

/// Where a template set was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Compiled into the binary.
    Builtin,
    /// A directory.
    Dir(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin => f.write_str("built-in templates"),
            Self::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// A loaded, compiled template set with its values.yaml. Immutable: a reload builds a new
/// one. Rendering an instance with it is in `instance`.
pub struct Templates {
    pub(super) env: Environment<'static>,
    pub(super) object_templates: Vec<String>,
    pub(super) has_sync_job: bool,
    pub(super) base_values: Arc<Value>,
    /// `base_values` converted for templates once, not once per render.
    pub(super) base_ctx: JinjaValue,
    /// The workspace profiles the values declare (or the implicit one).
    pub(super) profiles: Profiles,
    /// Per profile (in the order of `profiles`), the values with its overrides applied
    /// and their converted copy; `base_values` itself for a profile that overrides nothing.
    pub(super) profile_values: Vec<(Arc<Value>, JinjaValue)>,
    pub(super) revision: String,
    source: Source,
    pub(super) shapes: ShapeCache,
    pub(super) passed: SchemaCache,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("source", &self.source)
            .field("revision", &self.revision)
            .field("templates", &self.object_templates)
            .finish()
    }
}

impl Templates {
    /// The template set compiled into the binary.
    pub fn builtin() -> Result<Self, RenderError> {
        let files = BUILTIN
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        Self::from_files(files, Source::Builtin)
    }

    /// Loads `dir`, or the built-in set when `dir` is `None`.
    pub fn load(dir: Option<&Path>) -> Result<Self, RenderError> {
        match dir {
            Some(dir) => Self::load_dir(dir),
            None => Self::builtin(),
        }
    }

    /// Loads every `*.j2` file and `values.yaml` at the top of `dir`.
    ///
    /// NB: a mounted ConfigMap keeps its files behind `..data` symlinks and timestamped
    /// `..` directories; only the visible top-level names are read.
    pub fn load_dir(dir: &Path) -> Result<Self, RenderError> {
        let io = |source| RenderError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !(name.ends_with(".j2") || name == VALUES_FILE) {
                continue;
            }
            let path = entry.path();
            let text = std::fs::read_to_string(&path)
                .map_err(|source| RenderError::Io { path, source })?;
            files.push((name, text));
        }
        Self::from_files(files, Source::Dir(dir.to_owned()))
    }

    /// Compiles a template set from (file name, text) pairs; reports every syntax error.
    pub fn from_files(
        mut files: Vec<(String, String)>,
        source: Source,
    ) -> Result<Self, RenderError> {
        files.sort();
        let revision = revision(&files);
        let mut env = environment();
        let mut problems = Vec::new();
        let mut object_templates = Vec::new();
        let mut base_values = None;
        for (name, text) in files {
            if name == VALUES_FILE {
                match values::parse_values(&name, &text) {
                    Ok(v) => base_values = Some(v),
                    Err(e) => problems.push(Problem::new(&name, None, e.to_string())),
                }
                continue;
            }
            if name.ends_with(TEMPLATE_SUFFIX) && name != SYNC_JOB_TEMPLATE {
                object_templates.push(name.clone());
            }
            if let Err(e) = env.add_template_owned(name.clone(), text) {
                problems.push(template_problem(&name, &e));
            }
        }
        if object_templates.is_empty() {
            problems.push(Problem::new(
                &source.to_string(),
                None,
                format!("no templates (*{TEMPLATE_SUFFIX}) found"),
            ));
        }
        if !problems.is_empty() {
            return Err(RenderError::Problems(problems));
        }
        let has_sync_job = env.get_template(SYNC_JOB_TEMPLATE).is_ok();
        let base_values = base_values.unwrap_or_else(|| Value::Object(Default::default()));
        let mut templates = Self {
            env,
            object_templates,
            has_sync_job,
            base_ctx: JinjaValue::UNDEFINED,
            base_values: Arc::new(Value::Null),
            profiles: Profiles::default(),
            profile_values: Vec::new(),
            revision,
            source,
            shapes: ShapeCache::default(),
            passed: SchemaCache::default(),
        };
        templates
            .use_values(base_values)
            .map_err(|found| RenderError::Problems(profile_problems(found)))?;
        Ok(templates)
    }

    /// Content hash of the set (every file name and text), stamped on every object.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Where the set was loaded from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The set's values: values.yaml and the values files, the base `--set` applies to.
    pub fn base_values(&self) -> &Value {
        &self.base_values
    }

    /// The set's values, shared: an instance built from them unchanged renders with the
    /// set's converted copy (see [`values::build_values`]).
    pub fn shared_values(&self) -> &Arc<Value> {
        &self.base_values
    }

    /// Merges values files (VALUES_FILE, `--values`) over values.yaml, in order. Done
    /// once when a set is loaded, so rendering reads no files; the revision covers them.
    pub fn with_values_files(mut self, files: &[PathBuf]) -> Result<Self, RenderError> {
        if files.is_empty() {
            return Ok(self);
        }
        let mut merged = (*self.base_values).clone();
        let overlays = values::merge_files(&mut merged, files)?;
        self.use_values(merged)
            .map_err(|found| RenderError::Problems(profile_problems(found)))?;
        self.revision = short_hash(&format!("{}{overlays}", self.revision));
        Ok(self)
    }

    /// Applies `--set key.path=value` overrides to the set's values (the revision then
    /// covers them too), for commands that reconcile with overrides, like `plan --set`.
    /// On an error the set is left as it was.
    pub fn set_values(&mut self, sets: &[String]) -> Result<(), ValuesError> {
        if sets.is_empty() {
            return Ok(());
        }
        let mut merged = (*self.base_values).clone();
        values::apply_sets(&mut merged, sets)?;
        if let Err(mut found) = self.use_values(merged) {
            return Err(found.swap_remove(0));
        }
        self.revision = sets.iter().fold(self.revision.clone(), |rev, set| {
            short_hash(&format!("{rev}\0{set}"))
        });
        Ok(())
    }

    /// Puts `merged` in use as the set's values, with its profiles; on an error (a bad
    /// profile, at least one) the set is left as it was.
    fn use_values(&mut self, merged: Value) -> Result<(), Vec<ValuesError>> {
        let profiles = Profiles::from_values(&merged)?;
        let base_values = Arc::new(merged);
        let base_ctx = JinjaValue::from(Serde(&*base_values));
        self.profile_values = profiles
            .all()
            .iter()
            .map(|profile| {
                if profile.is_plain() {
                    (Arc::clone(&base_values), base_ctx.clone())
                } else {
                    let applied = profile.apply(&base_values);
                    let ctx = JinjaValue::from(Serde(&applied));
                    (Arc::new(applied), ctx)
                }
            })
            .collect();
        self.profiles = profiles;
        self.base_ctx = base_ctx;
        self.base_values = base_values;
        Ok(())
    }

    /// The workspace profiles of the set (the implicit one when values.yaml declares none).
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// The set's values with the overrides of the profile at `index` (see
    /// [`Profiles::position`]) applied; the shared values for an unknown index.
    pub fn profile_values(&self, index: usize) -> &Arc<Value> {
        self.profile_values
            .get(index)
            .map_or(&self.base_values, |(values, _)| values)
    }

    /// The object templates, in render order.
    pub fn object_templates(&self) -> &[String] {
        &self.object_templates
    }
}

/// Problems of values.yaml for each bad profile.
fn profile_problems(found: Vec<ValuesError>) -> Vec<Problem> {
    found
        .into_iter()
        .map(|e| Problem::new(VALUES_FILE, None, e.to_string()))
        .collect()
}

/// The revision of a set's files: a hash over every name and text.
fn revision(files: &[(String, String)]) -> String {
    let mut all = String::new();
    for (name, text) in files {
        all.push_str(name);
        all.push('\0');
        all.push_str(text);
        all.push('\0');
    }
    short_hash(&all)
}

/// The first 12 hex digits of the SHA-256 of `text`: a revision.
fn short_hash(text: &str) -> String {
    let mut hash = naming::hex_digest(text.as_bytes());
    hash.truncate(12);
    hash
}
