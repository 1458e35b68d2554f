//! Workspace profiles in the API: the `profiles` query's types, and the check of a
//! `profile` argument before anything is asked of Gitea or written.

use async_graphql::SimpleObject;

use super::{ApiError, Services, args};
use crate::{auth::Identity, naming, reconcile::ProfileSummary, values::ProfileAccess};

/// A workspace profile the caller may choose (`provisionCodeServer(profile:)`,
/// `startCodeServer(profile:)`).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The name to choose it by.
    pub name: String,
    /// For people.
    pub display_name: String,
    /// For people; may be empty.
    pub description: String,
    /// Requests and limits of the workspace's code-server container.
    pub resources: ProfileResources,
    /// Size of a new workspace volume, such as `10Gi` (an existing volume is never
    /// shrunk).
    pub storage: String,
    /// True for the profile used when none is chosen.
    pub is_default: bool,
}

/// Requests and limits of a profile.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct ProfileResources {
    /// What the workspace is guaranteed.
    pub requests: ResourceQuantities,
    /// The most it may use.
    pub limits: ResourceQuantities,
}

/// CPU and memory, as Kubernetes quantities (`500m`, `2`, `1Gi`).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct ResourceQuantities {
    /// CPU.
    pub cpu: String,
    /// Memory.
    pub memory: String,
}

impl From<ProfileSummary> for Profile {
    fn from(p: ProfileSummary) -> Self {
        let quantities = |r: crate::values::ResourceValues| ResourceQuantities {
            cpu: r.cpu,
            memory: r.memory,
        };
        Self {
            name: p.name,
            display_name: p.display_name,
            description: p.description,
            resources: ProfileResources {
                requests: quantities(p.resources.requests),
                limits: quantities(p.resources.limits),
            },
            storage: p.storage,
            is_default: p.is_default,
        }
    }
}

/// Which profiles `identity` may use: any for admins, else those open to their realm
/// roles.
pub fn access(services: &Services, identity: &Identity) -> ProfileAccess {
    if args::admin(identity, &services.admin_role).is_ok() {
        ProfileAccess::Any
    } else {
        ProfileAccess::Roles(identity.roles.clone())
    }
}

/// Checks a `profile` argument: a profile of the active templates that `identity` may
/// use (`BAD_USER_INPUT` naming the ones they may, or `FORBIDDEN`). Makes no call.
pub fn check(
    services: &Services,
    identity: &Identity,
    profile: Option<&str>,
) -> Result<ProfileAccess, ApiError> {
    let access = access(services, identity);
    if let Some(name) = profile {
        if name.is_empty() || name.len() > naming::MAX_NAME_LEN {
            return Err(ApiError::bad_input(
                "profile",
                "must be a profile name (1 to 63 characters)",
            ));
        }
        services.reconciler.check_profile(name, &access)?;
    }
    Ok(access)
}
