//! What admins may do beyond their own instances: list every instance, and find the owner
//! of any instance so that stop, start and delete can act for that owner.

use super::{Error, Reconciler, Result, read::Records};
use crate::{
    instance::{Instance, InstanceStatus, record},
    naming,
    values::Owner,
};

/// Which instances an admin lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Only this user's (by user id, as the token gave it).
    pub user: Option<String>,
    /// Only instances in this status.
    pub status: Option<InstanceStatus>,
}

impl Reconciler {
    /// Every instance matching `filter`, ordered by id (from the caches; two list calls
    /// before they have synced).
    pub async fn all(&self, filter: &InstanceFilter) -> Result<Vec<Instance>> {
        let safe = match &filter.user {
            Some(user) => Some(naming::safe_name(user).map_err(crate::values::ValuesError::from)?),
            None => None,
        };
        let which = match safe.as_deref() {
            Some(safe) => Records::User(safe),
            None => Records::All,
        };
        let mut records = self.records_with_pods(&which).await?;
        // NB: the user's instance may still have the name the earlier naming scheme gave
        // them; under that name, only a record of exactly this user id is theirs.
        if let Some(user) = &filter.user
            && let Some(legacy) = naming::legacy_safe_name(user)
        {
            let old = self.records_with_pods(&Records::User(&legacy)).await?;
            records.extend(
                old.into_iter()
                    .filter(|(pvc, _)| record::user_id(pvc) == Some(user.as_str())),
            );
        }
        let mut instances = Vec::new();
        for (pvc, pod) in &records {
            let instance = self.instance(pvc, pod.as_deref())?;
            if filter.status.is_none_or(|s| s == instance.status.status) {
                instances.push(instance);
            }
        }
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }

    /// The owner recorded on instance `id` (user id, email and `sub`), for an admin to
    /// act on it; `NotFound` when there is no such instance.
    pub async fn owner_of(&self, id: &str) -> Result<Owner> {
        let name = naming::parse_instance_id(id).map_err(|_| Error::NotFound)?;
        let pvc = self
            .pvc(&naming::pvc_name(name))
            .await?
            .ok_or(Error::NotFound)?;
        let managed = pvc
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(naming::LABEL_MANAGED_BY))
            .is_some_and(|v| v == naming::MANAGED_BY_VALUE);
        if !managed || record::instance_id(&pvc) != Some(id) {
            return Err(Error::NotFound);
        }
        if record::user_id(&pvc)
            .or_else(|| record::safe_name(&pvc))
            .is_none()
        {
            return Err(Error::NotFound);
        }
        Ok(record::owner(&pvc))
    }
}
