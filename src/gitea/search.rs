//! What a caller can provision: every repository Gitea lets them read (their own, their
//! organisations', those they collaborate on, and public ones), from Gitea's
//! `GET /repos/search`, which answers `{"ok": true, "data": [...]}` page by page.

use serde::Deserialize;

use super::{
    ApiRepository, Caller, GiteaClient, GiteaError, Repository,
    repos::{MAX_PAGES, PAGE_LIMIT, all_pages},
};

/// The most pages a caller may ask for (Gitea's own limit is its page size times this).
pub const MAX_PAGE: usize = MAX_PAGES;

#[derive(Deserialize)]
struct SearchResults {
    #[serde(default)]
    data: Vec<ApiRepository>,
}

impl GiteaClient {
    /// Page `page` (from 1) of `limit` (1 to [`PAGE_LIMIT`]) repositories the caller can
    /// read, public ones included, in Gitea's order.
    pub async fn provisionable_page(
        &self,
        caller: &Caller<'_>,
        page: usize,
        limit: usize,
    ) -> Result<Vec<Repository>, GiteaError> {
        let (page, limit) = (page.clamp(1, MAX_PAGE), limit.clamp(1, PAGE_LIMIT));
        let (page_text, limit_text) = (page.to_string(), limit.to_string());
        let url = self.api_url(
            &["repos", "search"],
            &[("page", &page_text), ("limit", &limit_text)],
        );
        let presented = self.as_caller(caller).await?;
        let result = self.get_json::<SearchResults>(&presented, url).await;
        self.count(&result);
        Ok(result?
            .data
            .into_iter()
            // NB: Gitea reports the caller's permissions on each result; a repository
            // the caller cannot pull cannot be cloned.
            .filter(|r| r.permissions.as_ref().is_none_or(|p| p.pull))
            .map(Repository::from)
            .collect())
    }

    /// Every repository the caller can read, public ones included, following pages up
    /// to [`MAX_PAGE`] pages.
    pub async fn provisionable(&self, caller: &Caller<'_>) -> Result<Vec<Repository>, GiteaError> {
        all_pages(|page| self.provisionable_page(caller, page, PAGE_LIMIT)).await
    }
}
