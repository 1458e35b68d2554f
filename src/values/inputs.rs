//! The inputs of values: who the instance belongs to and which repositories it holds,
//! as the caller's identity and Gitea give them.

use serde::{Deserialize, Serialize};

use crate::naming::{self, NamingError};

/// Who an instance belongs to, as the caller's identity gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user id (`preferred_username`), any characters.
    pub user_id: String,
    /// The user's email, when known.
    pub email: Option<String>,
    /// The token's `sub`, when there is one: the durable owner key.
    pub sub: Option<String>,
    /// The safe name of the owner's existing instance, which is kept when the username
    /// changes (the instance is found by `sub`).
    pub known_name: Option<String>,
    /// The caller's bearer token, for asking Gitea as them in the forwarding mode
    /// (`Debug` redacts it).
    pub gitea_token: Option<crate::secret::Secret>,
}

impl Owner {
    /// An owner known only by user id.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            email: None,
            sub: None,
            known_name: None,
            gitea_token: None,
        }
    }
}

/// A repository of the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repo {
    /// Gitea owner (user or organisation).
    pub owner: String,
    /// Repository name.
    pub name: String,
    /// URL to clone from.
    pub clone_url: String,
    /// Gitea's SSH URL, which the instance's deploy key reads; clones prefer it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_url: Option<String>,
}

impl Repo {
    /// A repository, with owner and name checked against Gitea's rules.
    pub fn new(owner: &str, name: &str, clone_url: &str) -> Result<Self, NamingError> {
        naming::validate_repo_part("owner", owner)?;
        naming::validate_repo_part("name", name)?;
        naming::validate_clone_url(clone_url)?;
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
            clone_url: clone_url.to_owned(),
            ssh_url: None,
        })
    }

    /// The repository with Gitea's SSH URL (`ssh://...` or `user@host:path`), checked.
    pub fn with_ssh_url(mut self, url: &str) -> Result<Self, NamingError> {
        naming::validate_ssh_url(url)?;
        self.ssh_url = Some(url.to_owned());
        Ok(self)
    }

    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The name of the repository's deploy key in the instance's credentials Secret:
    /// `id-` and a hash of `owner/name` (unique per repository, a valid Secret key).
    pub fn key_slot(&self) -> String {
        let digest = naming::hex_digest(self.full_name().to_ascii_lowercase().as_bytes());
        format!("id-{}", &digest[..20])
    }
}
