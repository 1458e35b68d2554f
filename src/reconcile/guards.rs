//! Guards follow the templates on running instances: the kinds that only restrict
//! ([`is_guard`]: NetworkPolicies) are updated at once, without a restart. Provision and
//! start apply them with everything else; after a template reload the Lease holder (the
//! idle culler's replica) applies them to every instance with a pod, so a tightened
//! policy reaches a running workspace within one check interval.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use super::{
    Error, Reconciler, Result,
    apply::{self, ApplyOptions, Updates, is_guard},
    desired::refuse_foreign,
    plan::{Action, Plan, op_path},
};
use crate::{instance::record, naming};

impl Reconciler {
    /// Creates or updates the guards of the instance `record` records as the current
    /// templates render them; nothing else of the instance is touched (no record, key,
    /// route or pod write). Answers the guards written (`Kind/name`); none when they
    /// already match, at the cost of no API call once the caches have synced.
    ///
    /// NB: rendered for the owner as recorded (as admin actions are), with the recorded
    /// repositories: Gitea is not asked, as no credential is written.
    pub async fn apply_guards(&self, pvc: &PersistentVolumeClaim) -> Result<Vec<String>> {
        let id = record::instance_id(pvc).ok_or_else(|| {
            Error::Instance("the workspace volume lacks the instance labels".to_owned())
        })?;
        let repos = record::repos(Some(pvc));
        if repos.is_empty() || pvc.metadata.deletion_timestamp.is_some() {
            return Ok(Vec::new());
        }
        let key = record::owner_key(pvc).unwrap_or(id).to_owned();
        let _guard = self.locks.lock(&key).await;
        let owner = record::owner(pvc);
        let recorded = record::kinds(Some(pvc));
        let desired = self.desired(&owner, &repos, &recorded, &[], record::profile(pvc))?;
        let (plan, live) = self.plan_desired(id, &desired, &recorded).await?;
        refuse_foreign(&desired.values, &live)?;
        let guards = Plan {
            steps: plan
                .steps
                .into_iter()
                .filter(|s| is_guard(&s.api_version, &s.kind))
                .filter(|s| match &s.action {
                    Action::Create => true,
                    Action::Update { patch } => !only_revision(patch),
                    _ => false,
                })
                .collect(),
        };
        if guards.steps.is_empty() {
            return Ok(Vec::new());
        }
        let opts = ApplyOptions {
            updates: Updates::All,
            recreate: false,
            prune: false,
        };
        let ns = &self.settings.namespace;
        let outcome = apply::apply(&self.client, &self.kinds, ns, &guards, opts).await?;
        self.applied(&guards, &outcome).await;
        tracing::info!(instance = id, guards = ?guards.steps.iter().map(|s| &s.object).collect::<Vec<_>>(), "guards follow the templates");
        Ok(guards.steps.into_iter().map(|s| s.object).collect())
    }
}

/// True when `patch` changes nothing but the template revision an object was rendered
/// from: after a reload that left a guard as it was, the Lease holder writes nothing
/// (the next provision or start stamps the revision with the rest).
fn only_revision(patch: &json_patch::Patch) -> bool {
    let path = format!(
        "/metadata/annotations/{}",
        naming::ANNOTATION_TEMPLATE_REVISION
            .replace('~', "~0")
            .replace('/', "~1")
    );
    patch.0.iter().all(|op| op_path(op) == path)
}
