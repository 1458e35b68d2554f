//! What admins may do beyond their own instances: list every instance, and find the owner
//! of any instance so that stop, start and delete can act for that owner.

use super::{Error, Reconciler, Result, live, with_retry};
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
    /// Every instance matching `filter`, ordered by id (two list calls).
    pub async fn all(&self, filter: &InstanceFilter) -> Result<Vec<Instance>> {
        let mut selector = live::managed_selector();
        if let Some(user) = &filter.user {
            let safe = naming::safe_name(user).map_err(crate::values::ValuesError::from)?;
            selector.push_str(&format!(",{}={safe}", naming::LABEL_USER));
        }
        let records = self.records_with_pods(&selector).await?;
        let mut instances = Vec::new();
        for (pvc, pod) in &records {
            let instance = self.instance(pvc, pod.as_ref())?;
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
        let (api, pvc_name) = (self.pvcs(), naming::pvc_name(name));
        let pvc = with_retry("get a PVC", || api.get_opt(&pvc_name))
            .await
            .map_err(|e| Error::kube("read the workspace volume", e))?
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
