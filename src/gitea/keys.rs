//! Deploy keys, managed with the service's own token.

use super::{DeployKey, GiteaClient, GiteaError};
use crate::naming::validate_repo_part;

impl GiteaClient {
    /// Adds a read-only deploy key to `owner/name` with the service's token (a site admin
    /// may add keys to any repository). Not retried: a repeated POST would add the key
    /// twice, which Gitea refuses.
    pub async fn add_deploy_key(
        &self,
        owner: &str,
        name: &str,
        title: &str,
        public_key: &str,
    ) -> Result<DeployKey, GiteaError> {
        validate_repo_part("owner", owner)?;
        validate_repo_part("name", name)?;
        let presented = self.as_service()?;
        let url = self.api_url(&["repos", owner, name, "keys"], &[]);
        let body = serde_json::json!({"title": title, "key": public_key, "read_only": true});
        let path = url.path().to_owned();
        let response = self
            .send(&presented, reqwest::Method::POST, url, Some(&body), 1)
            .await;
        let result = match response {
            Ok(response) => response
                .json::<DeployKey>()
                .await
                .map_err(|source| GiteaError::Decode { path, source }),
            Err(error) => Err(error),
        };
        self.count(&result);
        result
    }

    /// Deletes deploy key `id` of `owner/name`; a key (or repository) already gone is no
    /// error.
    pub async fn remove_deploy_key(
        &self,
        owner: &str,
        name: &str,
        id: u64,
    ) -> Result<(), GiteaError> {
        validate_repo_part("owner", owner)?;
        validate_repo_part("name", name)?;
        let presented = self.as_service()?;
        let id = id.to_string();
        let url = self.api_url(&["repos", owner, name, "keys", &id], &[]);
        let attempts = self.settings.attempts;
        let result = match self
            .send(&presented, reqwest::Method::DELETE, url, None, attempts)
            .await
        {
            // NB: service calls answer 401/403 as `ServiceRefused`; what is left is 404.
            Ok(_) | Err(GiteaError::AccessDenied) => Ok(()),
            Err(error) => Err(error),
        };
        self.count(&result);
        result
    }
}
