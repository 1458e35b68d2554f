//! Repositories as the caller sees them: one looked up, or all the caller can read.

use super::{ApiRepository, Caller, GiteaClient, GiteaError, Repository};
use crate::naming::validate_repo_part;

/// The page size used when listing repositories (Gitea's default maximum).
pub const PAGE_LIMIT: usize = 50;
/// The most pages read when listing repositories (5,000 repositories).
pub(super) const MAX_PAGES: usize = 100;

impl GiteaClient {
    /// Looks `owner/name` up as the caller; `Ok` means the caller may pull it.
    pub async fn repository(
        &self,
        caller: &Caller<'_>,
        owner: &str,
        name: &str,
    ) -> Result<Repository, GiteaError> {
        validate_repo_part("owner", owner)?;
        validate_repo_part("name", name)?;
        let presented = self.as_caller(caller).await?;
        let url = self.api_url(&["repos", owner, name], &[]);
        let result = self.get_json::<ApiRepository>(&presented, url).await;
        let result = match result {
            Ok(repo) if repo.permissions.as_ref().is_some_and(|p| p.pull) => Ok(repo.into()),
            Ok(_) => Err(GiteaError::AccessDenied),
            Err(error) => Err(error),
        };
        self.count(&result);
        result
    }

    /// Every repository the caller can read, following pagination.
    pub async fn repositories(&self, caller: &Caller<'_>) -> Result<Vec<Repository>, GiteaError> {
        let presented = &self.as_caller(caller).await?;
        let limit = &PAGE_LIMIT.to_string();
        all_pages(|page| async move {
            let page_text = page.to_string();
            let url = self.api_url(
                &["user", "repos"],
                &[("page", &page_text), ("limit", limit)],
            );
            let result = self.get_json::<Vec<ApiRepository>>(presented, url).await;
            self.count(&result);
            Ok(result?.into_iter().map(Repository::from).collect())
        })
        .await
    }
}

/// Pages 1, 2, ... of [`PAGE_LIMIT`] repositories read with `page`, until one comes back
/// short; at most [`MAX_PAGES`] pages.
pub(super) async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<Repository>, GiteaError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Vec<Repository>, GiteaError>>,
{
    let mut all = Vec::new();
    for n in 1..=MAX_PAGES {
        let batch = page(n).await?;
        let last = batch.len() < PAGE_LIMIT;
        all.extend(batch);
        if last {
            return Ok(all);
        }
    }
    tracing::warn!(
        pages = MAX_PAGES,
        "stopped listing gitea repositories at the page cap"
    );
    Ok(all)
}
