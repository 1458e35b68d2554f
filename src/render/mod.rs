//! Render: MiniJinja templates from a directory (usually a mounted ConfigMap), or the set
//! compiled into the binary, to checked Kubernetes objects. Pure and fast: no I/O after
//! loading. The render CLI, validate-templates, the reconciler and the GraphQL dry-run all
//! call [`Templates::render`].

mod check;
pub(crate) mod cidr;
pub mod istio;
mod shape;
mod validate;
mod yaml;

use std::{
    collections::BTreeSet,
    fmt,
    path::{Path, PathBuf},
};

use kube::api::DynamicObject;
use minijinja::{Environment, UndefinedBehavior, Value as JinjaValue, value::Serde};
use serde_json::Value;

pub use self::{
    check::{in_gateway_namespace, required_labels, unknown_fields},
    validate::{AccessReport, PLACEHOLDER_ISSUER, SAMPLE_USERS, access_report, validate},
};
use crate::{
    naming,
    values::{self, Values, ValuesError},
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
        "authorizationpolicy.yaml.j2",
        include_str!("../../templates/authorizationpolicy.yaml.j2"),
    ),
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

/// One problem found while loading or rendering templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The template (or values) file.
    pub file: String,
    /// Line in the template, when known.
    pub line: Option<usize>,
    /// The object (`Kind/name`, or `document N`), when the problem is with one.
    pub object: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template directory or a file in it could not be read.
    #[error("cannot read templates from {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The inputs of the values are unusable.
    #[error(transparent)]
    Values(#[from] ValuesError),
    /// Templates or rendered objects have problems; each names file, object and cause.
    #[error("{}", display_problems(.0))]
    Problems(Vec<Problem>),
}

fn display_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} template problems:", many.len());
            for p in many {
                s.push_str("\n  ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

impl RenderError {
    fn one(file: &str, line: Option<usize>, object: Option<String>, message: String) -> Self {
        Self::Problems(vec![Problem {
            file: file.to_owned(),
            line,
            object,
            message,
        }])
    }
}

/// One rendered object and the template it came from.
#[derive(Debug, Clone)]
pub struct RenderedObject {
    /// The template file.
    pub template: String,
    /// The object, ready to apply.
    pub object: DynamicObject,
}

/// Where a template set was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Compiled into the binary.
    Builtin,
    /// A directory.
    Dir(PathBuf),
}

/// A loaded, compiled template set with its values.yaml. Immutable: a reload builds a new one.
pub struct Templates {
    env: Environment<'static>,
    object_templates: Vec<String>,
    has_sync_job: bool,
    base_values: std::sync::Arc<Value>,
    /// `base_values` converted for templates once, not once per render.
    base_ctx: JinjaValue,
    revision: String,
    source: Source,
    shapes: shape::ShapeCache,
    passed: check::SchemaCache,
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

/// The sync Job's own values: its name and the node the instance's pod runs on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobValues {
    /// Job name.
    pub name: String,
    /// Node to run on (the workspace volume is ReadWriteOnce), if the pod is scheduled.
    pub node: Option<String>,
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
                    Err(e) => problems.push(Problem {
                        file: name,
                        line: None,
                        object: None,
                        message: e.to_string(),
                    }),
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
            problems.push(Problem {
                file: source_name(&source),
                line: None,
                object: None,
                message: format!("no templates (*{TEMPLATE_SUFFIX}) found"),
            });
        }
        if !problems.is_empty() {
            return Err(RenderError::Problems(problems));
        }
        let has_sync_job = env.get_template(SYNC_JOB_TEMPLATE).is_ok();
        let base_values = base_values.unwrap_or_else(|| Value::Object(Default::default()));
        Ok(Self {
            env,
            object_templates,
            has_sync_job,
            base_ctx: JinjaValue::from(Serde(&base_values)),
            base_values: std::sync::Arc::new(base_values),
            revision,
            source,
            shapes: shape::ShapeCache::default(),
            passed: check::SchemaCache::default(),
        })
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

    /// Merges values files (VALUES_FILE, `--values`) over values.yaml, in order. Done
    /// once when a set is loaded, so rendering reads no files; the revision covers them.
    pub fn with_values_files(mut self, files: &[std::path::PathBuf]) -> Result<Self, RenderError> {
        if files.is_empty() {
            return Ok(self);
        }
        let mut merged = (*self.base_values).clone();
        let mut fingerprint = self.revision.clone();
        for file in files {
            let overlay = values::read_values_file(file)?;
            fingerprint.push('\0');
            fingerprint.push_str(&overlay.to_string());
            values::merge(&mut merged, overlay);
        }
        let mut revision = naming::hex_digest(fingerprint.as_bytes());
        revision.truncate(12);
        self.revision = revision;
        self.base_ctx = JinjaValue::from(Serde(&merged));
        self.base_values = std::sync::Arc::new(merged);
        Ok(self)
    }

    /// The template context of `values`, reusing the converted base values when the
    /// instance uses them unchanged.
    fn context(&self, values: &Values) -> JinjaValue {
        let extra = if std::sync::Arc::ptr_eq(&values.extra, &self.base_values) {
            self.base_ctx.clone()
        } else {
            JinjaValue::from(Serde(&*values.extra))
        };
        minijinja::context! { extra => extra, ..JinjaValue::from(Serde(values)) }
    }

    /// Applies `--set key.path=value` overrides to the set's values (the revision then
    /// covers them too), for commands that reconcile with overrides, like `plan --set`.
    pub fn set_values(&mut self, sets: &[String]) -> Result<(), ValuesError> {
        for set in sets {
            values::apply_set(std::sync::Arc::make_mut(&mut self.base_values), set)?;
            self.base_ctx = JinjaValue::from(Serde(&*self.base_values));
            let mut hash = naming::hex_digest(format!("{}\0{set}", self.revision).as_bytes());
            hash.truncate(12);
            self.revision = hash;
        }
        Ok(())
    }

    /// The object templates, in render order.
    pub fn object_templates(&self) -> &[String] {
        &self.object_templates
    }

    /// Renders every object of the instance described by `values`, checked.
    pub fn render(&self, values: &Values) -> Result<Vec<RenderedObject>, RenderError> {
        let ctx = self.context(values);
        let expect_labels =
            required_labels(&values.instance.id, &values.user.name, &values.user.owner);
        let expect = check::Expect {
            namespace: &values.namespace,
            gateway_namespace: &values.access.gateway_namespace,
            labels: &expect_labels,
            passed: &self.passed,
        };
        let mut problems = Vec::new();
        let mut rendered = Vec::new();
        for name in &self.object_templates {
            match self.render_one(name, &ctx, &expect) {
                Ok(objects) => rendered.extend(objects),
                Err(RenderError::Problems(p)) => problems.extend(p),
                Err(other) => return Err(other),
            }
        }
        let mut seen = BTreeSet::new();
        for r in &rendered {
            let key = object_label(&r.object);
            if !seen.insert(key.clone()) {
                problems.push(Problem {
                    file: r.template.clone(),
                    line: None,
                    object: Some(key),
                    message: "rendered twice; every object must be unique".to_owned(),
                });
            }
        }
        if problems.is_empty() {
            Ok(rendered)
        } else {
            Err(RenderError::Problems(problems))
        }
    }

    /// Renders the syncRepository Job for the instance described by `values`.
    pub fn render_sync_job(
        &self,
        values: &Values,
        job: &JobValues,
    ) -> Result<DynamicObject, RenderError> {
        if !self.has_sync_job {
            return Err(RenderError::one(
                SYNC_JOB_TEMPLATE,
                None,
                None,
                "the template set has no sync Job template".to_owned(),
            ));
        }
        let ctx =
            minijinja::context! { job => JinjaValue::from(Serde(job)), ..self.context(values) };
        let mut labels =
            required_labels(&values.instance.id, &values.user.name, &values.user.owner);
        labels.insert(naming::LABEL_NAME, naming::APP_NAME_VALUE.to_owned());
        let expect = check::Expect {
            namespace: &values.namespace,
            // NB: the sync Job is never the access policy; no second namespace.
            gateway_namespace: &values.namespace,
            labels: &labels,
            passed: &self.passed,
        };
        let mut objects = self.render_one(SYNC_JOB_TEMPLATE, &ctx, &expect)?;
        match (objects.pop(), objects.is_empty()) {
            (Some(job), true) if job.object.types.as_ref().is_some_and(|t| t.kind == "Job") => {
                Ok(job.object)
            }
            _ => Err(RenderError::one(
                SYNC_JOB_TEMPLATE,
                None,
                None,
                "must render exactly one Job".to_owned(),
            )),
        }
    }

    fn render_one(
        &self,
        name: &str,
        ctx: &JinjaValue,
        expect: &check::Expect<'_>,
    ) -> Result<Vec<RenderedObject>, RenderError> {
        let docs = self.documents(name, ctx)?;
        let mut problems = Vec::new();
        let mut objects = Vec::new();
        for (index, value) in docs.into_iter().enumerate() {
            let label = value_label(&value, index);
            let found = check::object_problems(&value, expect);
            if !found.is_empty() {
                problems.extend(found.into_iter().map(|message| Problem {
                    file: name.to_owned(),
                    line: None,
                    object: Some(label.clone()),
                    message,
                }));
                continue;
            }
            match finish(value, &self.revision) {
                Ok(object) => objects.push(RenderedObject {
                    template: name.to_owned(),
                    object,
                }),
                Err(message) => problems.push(Problem {
                    file: name.to_owned(),
                    line: None,
                    object: Some(label),
                    message,
                }),
            }
        }
        if problems.is_empty() {
            Ok(objects)
        } else {
            Err(RenderError::Problems(problems))
        }
    }

    /// The documents `name` renders to: through the shape cache, or directly when the
    /// shape cannot be used.
    fn documents(&self, name: &str, ctx: &JinjaValue) -> Result<Vec<Value>, RenderError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| RenderError::Problems(vec![template_problem(name, &e)]))?;
        let (text, slots) = shape::with_slots(|| template.render(ctx));
        let text = text.map_err(|e| RenderError::Problems(vec![template_problem(name, &e)]))?;
        let substituted = self.shapes.parse(&text).and_then(|docs| {
            docs.iter()
                .map(|d| shape::substitute(d, &slots))
                .collect::<Option<Vec<_>>>()
        });
        match substituted {
            Some(docs) => Ok(docs),
            None => self.documents_direct(name, ctx),
        }
    }

    /// The documents `name` renders to, rendering real text and parsing it.
    fn documents_direct(&self, name: &str, ctx: &JinjaValue) -> Result<Vec<Value>, RenderError> {
        let text = self
            .env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| RenderError::Problems(vec![template_problem(name, &e)]))?;
        let mut docs = Vec::new();
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            match <Value as serde::Deserialize>::deserialize(doc) {
                Ok(Value::Null) => {}
                Ok(v) => docs.push(v),
                // NB: after a syntax error the parser cannot resynchronise.
                Err(e) => {
                    return Err(RenderError::Problems(vec![yaml_problem(
                        name, index, &text, &e,
                    )]));
                }
            }
        }
        Ok(docs)
    }

    /// Problems where the shape cache and the direct path disagree for `values` (a
    /// template filtering its own rendered output); validate-templates reports them.
    pub fn compare_paths(&self, values: &Values) -> Vec<Problem> {
        let ctx = self.context(values);
        let mut problems = Vec::new();
        for name in &self.object_templates {
            let (Ok(fast), Ok(direct)) = (
                self.documents(name, &ctx),
                self.documents_direct(name, &ctx),
            ) else {
                continue;
            };
            if fast != direct {
                problems.push(Problem {
                    file: name.clone(),
                    line: None,
                    object: None,
                    message: "renders differently through the shape cache: a filter rewrites formatted output (e.g. `| length` on a macro call); transform values before printing them".to_owned(),
                });
            }
        }
        problems
    }
}

/// Builds the full values for `owner`'s instance: the set's values (values.yaml and values
/// files, merged when the set was loaded), then `--set` overrides, over the configured
/// settings. Reads no files.
pub fn build_values(
    templates: &Templates,
    settings: &crate::config::InstanceSettings,
    owner: &values::Owner,
    repos: &[values::Repo],
    sets: &[String],
) -> Result<Values, RenderError> {
    let extra = if sets.is_empty() {
        templates.base_values.clone()
    } else {
        let mut extra = (*templates.base_values).clone();
        for set in sets {
            values::apply_set(&mut extra, set)?;
        }
        std::sync::Arc::new(extra)
    };
    Ok(Values::build(settings, owner, repos, extra)?)
}

/// Stamps the template revision (and, on pods, the spec hash) and converts to an object.
fn finish(mut value: Value, revision: &str) -> Result<DynamicObject, String> {
    let spec_hash = (value.get("kind").and_then(Value::as_str) == Some("Pod"))
        .then(|| value.get("spec").map(spec_hash))
        .flatten();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                naming::ANNOTATION_TEMPLATE_REVISION.to_owned(),
                Value::String(revision.to_owned()),
            );
            if let Some(hash) = spec_hash {
                annotations.insert(naming::ANNOTATION_SPEC_HASH.to_owned(), Value::String(hash));
            }
        }
    }
    into_object(value)
}

/// Converts a checked document into an object.
///
/// NB: `DynamicObject` flattens its type and data fields, which serde can only
/// deserialize through a buffered copy; taking the map apart by hand is several times
/// cheaper on this hot path.
fn into_object(value: Value) -> Result<DynamicObject, String> {
    let Value::Object(mut map) = value else {
        return Err("not a mapping".to_owned());
    };
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err("apiVersion and kind must be strings".to_owned()),
    };
    let api_version = text(map.remove("apiVersion"))?;
    let kind = text(map.remove("kind"))?;
    let metadata = serde_json::from_value(map.remove("metadata").unwrap_or(Value::Null))
        .map_err(|e| format!("metadata is not valid object metadata: {e}"))?;
    Ok(DynamicObject {
        types: Some(kube::api::TypeMeta { api_version, kind }),
        metadata,
        data: Value::Object(map),
    })
}

/// Hash of a pod's rendered spec, like a Deployment's pod-template-hash: 64-bit FNV-1a
/// over the spec's JSON, 16 hex digits. Stable across versions and replicas.
pub fn spec_hash(spec: &Value) -> String {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            for b in buf {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut fnv = Fnv(0xcbf2_9ce4_8422_2325);
    // NB: serde_json maps are sorted, so equal specs serialize identically.
    if serde_json::to_writer(&mut fnv, spec).is_err() {
        return String::new();
    }
    format!("{:016x}", fnv.0)
}

fn revision(files: &[(String, String)]) -> String {
    let mut all = String::new();
    for (name, text) in files {
        all.push_str(name);
        all.push('\0');
        all.push_str(text);
        all.push('\0');
    }
    let mut hash = naming::hex_digest(all.as_bytes());
    hash.truncate(12);
    hash
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, _state, value| shape::format(out, value));
    env.add_function("merge", merge_maps);
    env.add_function("required", required);
    env.add_function("egress_except", egress_except);
    env
}

/// `egress_except(cidr, excluded)`: the blocks of `excluded` that lie strictly inside
/// `cidr`, for a NetworkPolicy ipBlock's `except` (the API server refuses any other).
/// An error when `cidr` itself lies inside (or equals) an excluded block: such a rule
/// would reach only addresses that must never be reached.
fn egress_except(cidr: String, excluded: Vec<String>) -> Result<JinjaValue, minijinja::Error> {
    let invalid =
        |message: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message);
    let block = cidr::Block::parse(&cidr)
        .ok_or_else(|| invalid(format!("{cidr:?} is not a CIDR block")))?;
    let mut inside = Vec::new();
    for text in excluded {
        let ex = cidr::Block::parse(&text)
            .ok_or_else(|| invalid(format!("excluded block {text:?} is not a CIDR block")))?;
        if block.within(&ex) {
            return Err(invalid(format!(
                "egress block {cidr} lies inside the excluded block {text}; it would reach only addresses a workspace must never reach"
            )));
        }
        if ex.within(&block) {
            inside.push(JinjaValue::from(text));
        }
    }
    Ok(JinjaValue::from(inside))
}

/// `required(value, message)`: `value`, or a render error with `message` when it is
/// undefined, none or empty (as Helm's `required`).
fn required(value: JinjaValue, message: String) -> Result<JinjaValue, minijinja::Error> {
    if value.is_undefined() || value.is_none() || (value.len() == Some(0)) {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            message,
        ))
    } else {
        Ok(value)
    }
}

/// `merge(a, b)`: a mapping with `b`'s keys over `a`'s (used by the metadata helper).
fn merge_maps(a: JinjaValue, b: JinjaValue) -> Result<JinjaValue, minijinja::Error> {
    let mut out = std::collections::BTreeMap::new();
    for map in [&a, &b] {
        if map.is_none() || map.is_undefined() {
            continue;
        }
        for key in map.try_iter()? {
            let item = map.get_item(&key)?;
            out.insert(key.to_string(), item);
        }
    }
    Ok(JinjaValue::from(out))
}

fn template_problem(file: &str, e: &minijinja::Error) -> Problem {
    let mut message = e.kind().to_string();
    if let Some(detail) = e.detail() {
        message = format!("{message}: {detail}");
    }
    Problem {
        file: e.name().unwrap_or(file).to_owned(),
        line: e.line(),
        object: None,
        message,
    }
}

fn yaml_problem(file: &str, index: usize, text: &str, e: &serde_yaml_ng::Error) -> Problem {
    let mut message = format!("rendered YAML does not parse: {e}");
    if let Some(loc) = e.location()
        && let Some(line) = text.lines().nth(loc.line().saturating_sub(1))
    {
        message.push_str(&format!(
            " (rendered line {}: {:?})",
            loc.line(),
            line.trim()
        ));
    }
    Problem {
        file: file.to_owned(),
        line: None,
        object: Some(format!("document {}", index + 1)),
        message,
    }
}

fn value_label(v: &Value, index: usize) -> String {
    let kind = v.get("kind").and_then(Value::as_str);
    let name = v.pointer("/metadata/name").and_then(Value::as_str);
    match (kind, name) {
        (Some(k), Some(n)) => format!("{k}/{n}"),
        (Some(k), None) => format!("{k} (document {})", index + 1),
        _ => format!("document {}", index + 1),
    }
}

/// `Kind/name` of an object, for messages and plans.
pub fn object_label(obj: &DynamicObject) -> String {
    let kind = obj.types.as_ref().map(|t| t.kind.as_str()).unwrap_or("?");
    format!("{kind}/{}", obj.metadata.name.as_deref().unwrap_or("?"))
}

fn source_name(source: &Source) -> String {
    match source {
        Source::Builtin => "built-in templates".to_owned(),
        Source::Dir(d) => d.display().to_string(),
    }
}

/// The active template set, swapped atomically when the templates are reloaded. Readers
/// take an `Arc` to one whole set, so a render never mixes two revisions.
#[derive(Debug)]
pub struct ActiveTemplates {
    current: std::sync::RwLock<(std::sync::Arc<Templates>, jiff::Timestamp)>,
}

impl ActiveTemplates {
    /// Starts with `templates`, loaded now.
    pub fn new(templates: Templates) -> Self {
        Self {
            current: std::sync::RwLock::new((
                std::sync::Arc::new(templates),
                jiff::Timestamp::now(),
            )),
        }
    }

    /// The set in use.
    pub fn get(&self) -> std::sync::Arc<Templates> {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.0.clone()
    }

    /// When the set in use was loaded.
    pub fn loaded_at(&self) -> jiff::Timestamp {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.1
    }

    /// Puts `templates` in use.
    pub fn swap(&self, templates: Templates) {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = (std::sync::Arc::new(templates), jiff::Timestamp::now());
    }
}
