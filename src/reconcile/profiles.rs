//! Workspace profiles for callers: which ones a caller may use, with what they get, and
//! the choice of an instance's profile on provision and start. Pure reads of the active
//! templates and the record already read: no API call, nothing written, so a refused
//! choice changes nothing.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use super::{Error, Reconciler, Result};
use crate::{
    instance::record,
    values::{ProfileAccess, ProfileError, ProfileSizing, Resources},
};

/// How provision and start run: whether they wait for readiness, and the profile the
/// caller chose (with what the caller may choose).
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Wait for readiness (up to CODESERVER_TIMEOUT) before answering.
    pub wait: bool,
    /// The profile to use from now on; `None` keeps the recorded one (the default for a
    /// new instance).
    pub profile: Option<String>,
    /// Whose roles decide which profiles may be used, the recorded one included.
    pub access: ProfileAccess,
}

impl Default for StartOptions {
    /// Waiting, the recorded profile, any profile (the service acting on its own).
    fn default() -> Self {
        Self {
            wait: true,
            profile: None,
            access: ProfileAccess::Any,
        }
    }
}

/// A profile as a caller sees it: what instances of it get.
#[derive(Debug, Clone)]
pub struct ProfileSummary {
    /// The name to choose it by.
    pub name: String,
    /// For people.
    pub display_name: String,
    /// For people.
    pub description: String,
    /// Requests and limits of the code-server container.
    pub resources: Resources,
    /// Size of a new workspace volume.
    pub storage: String,
    /// True for the default profile.
    pub is_default: bool,
}

/// The profile provision or start uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chosen {
    /// Its name.
    pub(super) name: String,
    /// True when an existing instance used another profile until now.
    pub(super) changed: bool,
}

/// The caller's error for a profile that cannot be used: `BAD_USER_INPUT` for an unknown
/// one, `FORBIDDEN` for one reserved for other roles.
pub(super) fn refusal(error: ProfileError) -> Error {
    match error {
        ProfileError::NotAllowed(_) => Error::Forbidden(error.to_string()),
        ProfileError::Unknown { .. } => Error::BadInput {
            argument: "profile",
            reason: error.to_string(),
        },
    }
}

impl Reconciler {
    /// The profiles of the active templates that `access` may use, in the order
    /// values.yaml declares them, with the image-independent sizing each gives.
    pub fn profiles(&self, access: &ProfileAccess) -> Result<Vec<ProfileSummary>> {
        let templates = self.templates.get();
        let profiles = templates.profiles();
        let default = &profiles.default_profile().name;
        profiles
            .all()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.allows(access))
            .map(|(i, p)| {
                let sizing = ProfileSizing::of(&self.settings, templates.profile_values(i))?;
                Ok(ProfileSummary {
                    name: p.name.clone(),
                    display_name: p.display_name.clone(),
                    description: p.description.clone(),
                    resources: sizing.resources,
                    storage: sizing.storage,
                    is_default: p.name == *default,
                })
            })
            .collect()
    }

    /// Checks that `access` may use the profile `name` of the active templates:
    /// `BadInput` for an unknown one, `Forbidden` for one reserved for other roles.
    pub fn check_profile(&self, name: &str, access: &ProfileAccess) -> Result<()> {
        self.templates
            .get()
            .profiles()
            .choose(name, access)
            .map(|_| ())
            .map_err(refusal)
    }

    /// The profile an instance recorded by `record` (none for a new one) uses once
    /// provisioned or started: `chosen`, else the recorded one (the default when it has
    /// none or the templates no longer have it). Either must be open to `access`: a
    /// caller who lost the role of their recorded profile chooses another.
    pub(super) fn choose_profile(
        &self,
        chosen: Option<&str>,
        record: Option<&PersistentVolumeClaim>,
        access: &ProfileAccess,
    ) -> Result<Chosen> {
        let templates = self.templates.get();
        let profiles = templates.profiles();
        let current = record.map(|pvc| profiles.effective(record::profile(pvc)));
        let profile = match chosen {
            Some(name) => profiles.choose(name, access).map_err(refusal)?,
            None => {
                let profile = current.unwrap_or_else(|| profiles.default_profile());
                if !profile.allows(access) {
                    return Err(refusal(ProfileError::NotAllowed(profile.name.clone())));
                }
                profile
            }
        };
        Ok(Chosen {
            name: profile.name.clone(),
            changed: current.is_some_and(|c| c.name != profile.name),
        })
    }

    /// The profile an instance shows: the one it renders with (the recorded one while the
    /// templates still have it, else the default), as `desired` chooses it.
    pub(super) fn shown_profile(&self, pvc: &PersistentVolumeClaim) -> String {
        self.templates
            .get()
            .profiles()
            .effective(record::profile(pvc))
            .name
            .clone()
    }
}
