//! What Gitea answers about repositories, and what the service keeps of it.

use serde::Deserialize;

use crate::{naming::NamingError, values::Repo};

/// A repository the caller can read (the spec's `Repository`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Repository {
    /// The owner's login (user or organisation).
    pub owner: String,
    /// The repository name.
    pub name: String,
    /// The HTTP(S) clone URL.
    pub clone_url: String,
    /// The SSH clone URL (empty when Gitea's SSH server is off).
    pub ssh_url: String,
    /// Whether the repository is private.
    pub private: bool,
}

impl Repository {
    /// The repository as an instance records it: owner, name and clone URL checked, and
    /// Gitea's SSH URL when it has a usable one (else git clones over HTTP).
    pub fn to_repo(&self) -> Result<Repo, NamingError> {
        let repo = Repo::new(&self.owner, &self.name, &self.clone_url)?;
        if self.ssh_url.is_empty() {
            return Ok(repo);
        }
        match repo.clone().with_ssh_url(&self.ssh_url) {
            Ok(with_ssh) => Ok(with_ssh),
            Err(error) => {
                tracing::warn!(%error, "gitea answered an unusable SSH URL; cloning over HTTP");
                Ok(repo)
            }
        }
    }
}

/// A deploy key of a repository.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DeployKey {
    /// Gitea's id of the key (for deleting it).
    pub id: u64,
    /// The key's title.
    #[serde(default)]
    pub title: String,
    /// Whether the key may only read.
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Deserialize)]
pub(super) struct ApiRepository {
    owner: ApiOwner,
    name: String,
    clone_url: String,
    #[serde(default)]
    ssh_url: String,
    private: bool,
    #[serde(default)]
    pub(super) permissions: Option<ApiPermissions>,
}

#[derive(Deserialize)]
struct ApiOwner {
    login: String,
}

#[derive(Deserialize)]
pub(super) struct ApiPermissions {
    #[serde(default)]
    pub(super) pull: bool,
}

impl From<ApiRepository> for Repository {
    fn from(repo: ApiRepository) -> Self {
        Self {
            owner: repo.owner.login,
            name: repo.name,
            clone_url: repo.clone_url,
            ssh_url: repo.ssh_url,
            private: repo.private,
        }
    }
}
