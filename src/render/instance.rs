//! Rendering one instance with a loaded set: every object template (or the sync Job)
//! through one path, each document checked before it becomes an object.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::DynamicObject;
use minijinja::{Template, Value as JinjaValue, value::Serde};
use serde_json::Value;

use super::{
    SYNC_JOB_TEMPLATE, Templates,
    check::{self, Expect},
    error::{Problem, RenderError, none_or, template_problem, yaml_problem},
    object::{finish, object_label, value_label},
    schema::{is_retired_policy, required_labels},
    shape,
};
use crate::{
    naming,
    values::InstanceSettings,
    values::{self, Owner, ProfileAccess, ProfileValues, Repo, Values},
};

/// One rendered object and the template it came from.
#[derive(Debug, Clone)]
pub struct RenderedObject {
    /// The template file.
    pub template: String,
    /// The object, ready to apply.
    pub object: DynamicObject,
}

/// The sync Job's own values: its name and the node the instance's pod runs on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobValues {
    /// Job name.
    pub name: String,
    /// Node to run on (the workspace volume is ReadWriteOnce), if the pod is scheduled.
    pub node: Option<String>,
}

/// Builds the full values for `owner`'s instance of the set's default profile over
/// `templates`' values; see [`values::build_values`], which this calls with the set's
/// shared values, and [`build_profile_values`] for another profile.
pub fn build_values(
    templates: &Templates,
    settings: &InstanceSettings,
    owner: &Owner,
    repos: &[Repo],
    sets: &[String],
) -> Result<Values, RenderError> {
    build_profile_values(templates, settings, owner, repos, None, sets)
}

/// Builds the full values for `owner`'s instance of `profile` (the set's default when
/// `None`): the set's values with the profile's overrides applied (shared, so the render
/// reuses their converted copy), then `sets`. An unknown profile is an error naming the
/// set's profiles.
pub fn build_profile_values(
    templates: &Templates,
    settings: &InstanceSettings,
    owner: &Owner,
    repos: &[Repo],
    profile: Option<&str>,
    sets: &[String],
) -> Result<Values, RenderError> {
    let profiles = templates.profiles();
    let chosen = match profile {
        Some(name) => profiles
            .choose(name, &ProfileAccess::Any)
            .map_err(values::ValuesError::from)?,
        None => profiles.default_profile(),
    };
    let index = profiles.position(&chosen.name).unwrap_or_default();
    let mut values = values::build_values(
        templates.profile_values(index),
        settings,
        owner,
        repos,
        sets,
    )?;
    values.profile = ProfileValues::of(chosen, profiles);
    Ok(values)
}

impl Templates {
    /// Renders every object of the instance described by `values`, checked. A retired
    /// per-instance access policy a template still renders is left out (see
    /// [`Templates::retired_policy_templates`]).
    pub fn render(&self, values: &Values) -> Result<Vec<RenderedObject>, RenderError> {
        let ctx = self.context(values);
        let labels = instance_labels(values);
        let expect = self.expect(values, &labels);
        let mut problems = Vec::new();
        let mut rendered = Vec::new();
        for name in &self.object_templates {
            match self.render_one(name, &ctx, &expect) {
                Ok(objects) => rendered.extend(objects),
                Err(RenderError::Problems(p)) => problems.extend(p),
                Err(other) => return Err(other),
            }
        }
        problems.extend(duplicates(&rendered));
        none_or(rendered, problems)
    }

    /// Renders the syncRepository Job for the instance described by `values`.
    pub fn render_sync_job(
        &self,
        values: &Values,
        job: &JobValues,
    ) -> Result<DynamicObject, RenderError> {
        let not_one_job = |message: &str| Problem::new(SYNC_JOB_TEMPLATE, None, message.to_owned());
        if !self.has_sync_job {
            return Err(not_one_job("the template set has no sync Job template").into());
        }
        let ctx =
            minijinja::context! { job => JinjaValue::from(Serde(job)), ..self.context(values) };
        let mut labels = instance_labels(values);
        labels.insert(naming::LABEL_NAME, naming::APP_NAME_VALUE.to_owned());
        let expect = self.expect(values, &labels);
        let mut objects = self.render_one(SYNC_JOB_TEMPLATE, &ctx, &expect)?;
        match (objects.pop(), objects.is_empty()) {
            (Some(job), true) if job.object.types.as_ref().is_some_and(|t| t.kind == "Job") => {
                Ok(job.object)
            }
            _ => Err(not_one_job("must render exactly one Job").into()),
        }
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
                problems.push(Problem::new(
                    name,
                    None,
                    "renders differently through the shape cache: a filter rewrites formatted output (e.g. `| length` on a macro call); transform values before printing them".to_owned(),
                ));
            }
        }
        problems
    }

    /// The template context of `values`, reusing the converted base values when the
    /// instance uses them unchanged.
    fn context(&self, values: &Values) -> JinjaValue {
        let shared = std::iter::once((&self.base_values, &self.base_ctx)).chain(
            self.profile_values
                .iter()
                .map(|(values, ctx)| (values, ctx)),
        );
        let extra = shared
            .into_iter()
            .find(|(shared, _)| std::sync::Arc::ptr_eq(&values.extra, shared))
            .map_or_else(
                || JinjaValue::from(Serde(&*values.extra)),
                |(_, ctx)| ctx.clone(),
            );
        minijinja::context! { extra => extra, ..JinjaValue::from(Serde(values)) }
    }

    /// What every object of `values`' instance must match: its namespace and `labels`.
    fn expect<'a>(
        &'a self,
        values: &'a Values,
        labels: &'a BTreeMap<&'static str, String>,
    ) -> Expect<'a> {
        Expect {
            namespace: &values.namespace,
            labels,
            passed: &self.passed,
        }
    }

    /// The object templates that render the retired per-instance access policy for
    /// `values`' instance: the render leaves those documents out, and validate-templates
    /// warns that they are no longer needed. A template that does not render is not
    /// listed (validation reports why).
    pub fn retired_policy_templates(&self, values: &Values) -> Vec<String> {
        let ctx = self.context(values);
        self.object_templates
            .iter()
            .filter(|name| {
                self.documents(name, &ctx)
                    .is_ok_and(|docs| docs.iter().any(is_retired))
            })
            .cloned()
            .collect()
    }

    /// The checked objects of one template, without a retired access policy.
    fn render_one(
        &self,
        name: &str,
        ctx: &JinjaValue,
        expect: &Expect<'_>,
    ) -> Result<Vec<RenderedObject>, RenderError> {
        let docs = self.documents(name, ctx)?;
        let mut problems = Vec::new();
        let mut objects = Vec::new();
        // NB: the index stays the document's position in the template, for messages.
        for (index, value) in docs.into_iter().enumerate() {
            if is_retired(&value) {
                continue;
            }
            let label = value_label(&value, index);
            let found = check::object_problems(&value, expect);
            if !found.is_empty() {
                problems.extend(
                    found
                        .into_iter()
                        .map(|message| Problem::new(name, Some(label.clone()), message)),
                );
                continue;
            }
            match finish(value, &self.revision) {
                Ok(object) => objects.push(RenderedObject {
                    template: name.to_owned(),
                    object,
                }),
                Err(message) => problems.push(Problem::new(name, Some(label), message)),
            }
        }
        none_or(objects, problems)
    }

    /// The documents `name` renders to: through the shape cache, or directly when the
    /// shape cannot be used.
    fn documents(&self, name: &str, ctx: &JinjaValue) -> Result<Vec<Value>, RenderError> {
        let template = self.template(name)?;
        let (text, slots) = shape::with_slots(|| template.render(ctx));
        let text = text.map_err(|e| template_problem(name, &e))?;
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
            .template(name)?
            .render(ctx)
            .map_err(|e| template_problem(name, &e))?;
        let mut docs = Vec::new();
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            match <Value as serde::Deserialize>::deserialize(doc) {
                Ok(Value::Null) => {}
                Ok(v) => docs.push(v),
                // NB: after a syntax error the parser cannot resynchronise.
                Err(e) => return Err(yaml_problem(name, index, &text, &e).into()),
            }
        }
        Ok(docs)
    }

    /// The compiled template `name`.
    fn template(&self, name: &str) -> Result<Template<'_, '_>, RenderError> {
        self.env
            .get_template(name)
            .map_err(|e| template_problem(name, &e).into())
    }
}

/// True for a document of the retired per-instance access policy's kind (an Istio
/// AuthorizationPolicy), which the service no longer applies.
fn is_retired(value: &Value) -> bool {
    let field = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default();
    is_retired_policy(field("apiVersion"), field("kind"))
}

/// The ownership labels every object of `values`' instance carries.
fn instance_labels(values: &Values) -> BTreeMap<&'static str, String> {
    required_labels(&values.instance.id, &values.user.name, &values.user.owner)
}

/// A problem for every object rendered more than once.
fn duplicates(rendered: &[RenderedObject]) -> Vec<Problem> {
    let mut seen = BTreeSet::new();
    rendered
        .iter()
        .filter_map(|r| {
            let key = object_label(&r.object);
            (!seen.insert(key.clone())).then(|| {
                Problem::new(
                    &r.template,
                    Some(key),
                    "rendered twice; every object must be unique".to_owned(),
                )
            })
        })
        .collect()
}
