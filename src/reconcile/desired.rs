//! The desired state of an instance (values and rendered objects), its plan against what
//! is live, and the apply that converges them; the dry runs stop before the apply.

use std::{collections::BTreeSet, sync::atomic::Ordering};

use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;

use super::{
    Error, Reconciler, Result,
    apply::{self, ApplyOptions, Outcome},
    cached::Written,
    live::{self, dedupe_versions, identity, kinds_of, stamp_record},
    plan::{self, Plan},
    restart,
};
use crate::{
    instance::{git_identity::IdentityRecord, record},
    render::{self, RenderedObject},
    values::{Owner, ProfileAccess, Repo, Values},
};

/// The desired state of one instance: values, rendered objects, and the kinds to look at.
pub(super) struct Desired {
    pub(super) values: Values,
    pub(super) objects: Vec<DynamicObject>,
}

impl Reconciler {
    /// Values and objects for `owner`'s instance with `repos` and `profile` (the recorded
    /// one, [`record::profile`], or the one chosen; the default when `None` or no longer
    /// in the templates), the PVC stamped with the instance record. Records the pod's
    /// spec hash for the restart check.
    pub(super) fn desired(
        &self,
        owner: &Owner,
        repos: &[Repo],
        recorded: &BTreeSet<String>,
        lost: &[Repo],
        profile: Option<&str>,
    ) -> Result<Desired> {
        let templates = self.templates.get();
        let effective = templates.profiles().effective(profile).name.clone();
        let mut values = render::build_profile_values(
            &templates,
            &self.settings,
            owner,
            repos,
            Some(&effective),
            &[],
        )?;
        values.exclude(lost);
        self.renders.fetch_add(1, Ordering::Relaxed);
        let mut objects: Vec<DynamicObject> = templates
            .render(&values)?
            .into_iter()
            .map(|r| r.object)
            .collect();
        // NB: the restart check renders without lost repositories; only such a render
        // answers it.
        let restart_check = lost.is_empty();
        self.stamp(
            templates.revision(),
            objects.iter_mut().collect(),
            &values,
            recorded,
            restart_check,
        );
        if restart_check {
            // NB: keyed by the profile as a read finds it recorded (none in a set without
            // profiles), so that reads find what this render recorded.
            let read_profile = profile.filter(|_| values.profile.recorded);
            let inputs = restart::inputs(owner, repos, read_profile);
            let hash = restart::pod_hash(&objects);
            self.pod_hashes.insert(templates.revision(), inputs, hash);
        }
        Ok(Desired { values, objects })
    }

    /// Plans `desired` against what is live.
    pub(super) async fn plan_desired(
        &self,
        id: &str,
        desired: &Desired,
        recorded: &BTreeSet<String>,
    ) -> Result<(Plan, Vec<DynamicObject>)> {
        let mut kinds = kinds_of(&desired.objects);
        kinds.extend(recorded.iter().cloned());
        let kinds = dedupe_versions(kinds, &self.kinds);
        let live = self.live_objects(id, &kinds).await?;
        Ok((plan::plan(&desired.objects, &live), live))
    }

    /// Waits out a terminating `pod`, plans `desired` against what is live, and applies
    /// the plan as `opts` allow.
    pub(super) async fn converge(
        &self,
        id: &str,
        desired: &Desired,
        recorded: &BTreeSet<String>,
        pod: Option<&Pod>,
        opts: ApplyOptions,
        owner: &Owner,
    ) -> Result<Option<IdentityRecord>> {
        if let Some(p) = pod.filter(|p| p.metadata.deletion_timestamp.is_some()) {
            let ns = &self.settings.namespace;
            apply::wait_pod_gone(&self.client, ns, id, p.metadata.uid.as_deref()).await?;
            self.written("v1/Pod", ns, id, Written::Gone).await;
        }
        let (plan, live) = self.plan_desired(id, desired, recorded).await?;
        refuse_foreign(&desired.values, &live)?;
        // NB: the pod finds its keys when it starts; they are written only once the names
        // are known to be the owner's.
        self.ensure_keys(&desired.values).await?;
        let git = self.ensure_git_identity(&desired.values, owner).await?;
        let ns = &self.settings.namespace;
        let outcome = apply::apply(&self.client, &self.kinds, ns, &plan, opts).await?;
        log_outcome(id, &plan, &outcome);
        self.applied(&plan, &outcome).await;
        Ok(git)
    }
    /// Stamps the rendered `objects` with the instance record (on the PVC) and, for a
    /// render that answers the restart check, what the pod was rendered from.
    fn stamp(
        &self,
        revision: &str,
        mut objects: Vec<&mut DynamicObject>,
        values: &Values,
        recorded: &BTreeSet<String>,
        restart_check: bool,
    ) {
        stamp_record(
            objects.iter_mut().map(|o| &mut **o).collect(),
            values,
            recorded,
            &self.kinds,
        );
        if restart_check {
            self.stamp_rendered_from(revision, objects);
        }
    }

    /// What a dry run for the caller with `repo` renders from: the owner as recorded on
    /// their instance (if any), its repositories with `repo`, its recorded kinds, and
    /// `profile` (which must be one of the templates'), else the recorded one.
    async fn dry_run_inputs(
        &self,
        owner: &Owner,
        repo: Repo,
        profile: Option<&str>,
    ) -> Result<DryRun> {
        if let Some(name) = profile {
            self.check_profile(name, &ProfileAccess::Any)?;
        }
        let (_, key) = identity(owner)?;
        let record = self
            .find_record(owner, &key)
            .await?
            .filter(|p| p.metadata.deletion_timestamp.is_none());
        let (repos, _) = record::repos_with(record.as_ref(), repo);
        Ok(DryRun {
            owner: record::caller(owner, record.as_ref()),
            repos,
            recorded: record::kinds(record.as_ref()),
            profile: profile
                .or_else(|| record.as_ref().and_then(record::profile))
                .map(str::to_owned),
        })
    }

    /// Dry run: the objects the caller's instance with `repo` would have (the existing
    /// instance's repositories included). Makes no writes.
    pub async fn render_for(&self, owner: &Owner, repo: Repo) -> Result<Vec<RenderedObject>> {
        self.render_with_profile(owner, repo, None).await
    }

    /// [`Self::render_for`] with the instance on `profile` (the recorded one, or the
    /// default for a new instance, when `None`).
    pub async fn render_with_profile(
        &self,
        owner: &Owner,
        repo: Repo,
        profile: Option<&str>,
    ) -> Result<Vec<RenderedObject>> {
        let dry = self.dry_run_inputs(owner, repo, profile).await?;
        let templates = self.templates.get();
        let effective = templates.profiles().effective(dry.profile.as_deref());
        let values = render::build_profile_values(
            &templates,
            &self.settings,
            &dry.owner,
            &dry.repos,
            Some(&effective.name),
            &[],
        )?;
        self.renders.fetch_add(1, Ordering::Relaxed);
        let mut rendered = templates.render(&values)?;
        let objects = rendered.iter_mut().map(|r| &mut r.object).collect();
        self.stamp(templates.revision(), objects, &values, &dry.recorded, true);
        Ok(rendered)
    }

    /// Dry run: the plan of the caller's instance with `repo`. Makes no writes.
    pub async fn plan_for(&self, owner: &Owner, repo: Repo) -> Result<Plan> {
        self.plan_with_profile(owner, repo, None).await
    }

    /// [`Self::plan_for`] with the instance on `profile` (the recorded one, or the
    /// default for a new instance, when `None`).
    pub async fn plan_with_profile(
        &self,
        owner: &Owner,
        repo: Repo,
        profile: Option<&str>,
    ) -> Result<Plan> {
        let dry = self.dry_run_inputs(owner, repo, profile).await?;
        let desired = self.desired(
            &dry.owner,
            &dry.repos,
            &dry.recorded,
            &[],
            dry.profile.as_deref(),
        )?;
        let id = desired.values.instance.id.clone();
        Ok(self.plan_desired(&id, &desired, &dry.recorded).await?.0)
    }
}

/// What a dry run renders from (see `Reconciler::dry_run_inputs`).
struct DryRun {
    owner: Owner,
    repos: Vec<Repo>,
    recorded: BTreeSet<String>,
    profile: Option<String>,
}

/// The safety net under the naming scheme: nothing is applied over a live object of the
/// instance that another owner holds (`NameTaken`, before any write).
pub(super) fn refuse_foreign(values: &Values, live: &[DynamicObject]) -> Result<()> {
    let (safe, key) = (&values.user.name, &values.user.owner);
    match live
        .iter()
        .find(|o| !live::labels_own(o.metadata.labels.as_ref(), safe, key))
    {
        Some(foreign) => {
            let kind = foreign.types.as_ref().map_or("", |t| t.kind.as_str());
            let name = foreign.metadata.name.as_deref().unwrap_or_default();
            tracing::warn!(
                instance = %values.instance.id,
                object = %format!("{kind}/{name}"),
                "refused to write over another owner's object"
            );
            Err(Error::NameTaken(format!(
                "{kind}/{name} belongs to another owner"
            )))
        }
        None => Ok(()),
    }
}

fn log_outcome(id: &str, plan: &Plan, outcome: &Outcome) {
    tracing::info!(
        instance = id,
        create = plan.count("create"),
        update = plan.count("update"),
        unchanged = plan.count("unchanged"),
        recreate = plan.count("recreate"),
        prune = plan.count("prune"),
        applied = outcome.applied.len(),
        deleted = outcome.deleted.len(),
        held = ?outcome.held,
        "reconciled"
    );
}
