//! Gitea's REST API v1, called with the caller's own token.
//!
//! Access to a repository is decided by Gitea: a lookup with the caller's token that answers
//! 200 with `permissions.pull` means access; 404, 403 and 401 mean `repository access denied`
//! (Gitea answers 404 for private repositories the caller may not see, so existence does not
//! leak). Repository owner and name are checked against Gitea's naming rules before any call,
//! so hostile input never reaches the network. Transport errors and 5xx answers are retried a
//! few times with capped exponential backoff; after that the call fails as
//! [`GiteaError::Unavailable`].

mod search;

use std::{fmt, time::Duration};

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

pub use self::search::MAX_PAGE;
use crate::{
    metrics::Metrics,
    naming::{NamingError, validate_repo_part},
};

/// The page size used when listing repositories (Gitea's default maximum).
pub const PAGE_LIMIT: usize = 50;
/// The most pages read when listing repositories (5,000 repositories).
const MAX_PAGES: usize = 100;

/// A repository the caller can read (the spec's `Repository`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Repository {
    /// The owner's login (user or organisation).
    pub owner: String,
    /// The repository name.
    pub name: String,
    /// The HTTP(S) clone URL.
    pub clone_url: String,
    /// Whether the repository is private.
    pub private: bool,
}

/// Why a Gitea call failed.
#[derive(Debug, thiserror::Error)]
pub enum GiteaError {
    /// The owner or name breaks Gitea's naming rules; no call was made.
    #[error(transparent)]
    InvalidName(#[from] NamingError),
    /// The caller may not read the repository, or it does not exist (indistinguishable).
    #[error("repository access denied")]
    AccessDenied,
    /// Gitea could not be reached or kept failing.
    #[error("gitea is unavailable after {attempts} attempt(s)")]
    Unavailable {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        cause: Unavailable,
    },
    /// Gitea answered with a status this client does not expect.
    #[error("gitea answered HTTP {status} to {path}")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The API path.
        path: String,
    },
    /// Gitea's answer could not be read.
    #[error("gitea's answer to {path} could not be read")]
    Decode {
        /// The API path.
        path: String,
        /// The decoding error.
        #[source]
        source: reqwest::Error,
    },
    /// The base URL cannot carry API paths.
    #[error("invalid gitea URL {0:?}")]
    BaseUrl(String),
    /// The HTTP client could not be built.
    #[error("failed to build the gitea HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The last failure behind [`GiteaError::Unavailable`].
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// No HTTP answer (connection refused, timeout, reset).
    #[error("request failed")]
    Transport(#[source] reqwest::Error),
    /// Gitea answered with a server error.
    #[error("gitea answered HTTP {0}")]
    Status(u16),
}

impl GiteaError {
    /// The label value for `codeserver_gitea_requests_total{result}`.
    fn metric_result(&self) -> &'static str {
        match self {
            Self::AccessDenied => "denied",
            Self::Unavailable { .. } => "unavailable",
            _ => "error",
        }
    }
}

/// Timeouts and retry policy of the client.
#[derive(Clone, Debug)]
pub struct GiteaSettings {
    /// Gitea's base URL (GITEA_SERVICE_URL, default GITEA_URL), without `/api/v1`.
    pub base_url: String,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// How many times a request is tried in all.
    pub attempts: u32,
    /// The first backoff; each retry doubles it.
    pub backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

impl GiteaSettings {
    /// Defaults for `base_url`: 10 s per request, 3 attempts, backoff 200 ms to 2 s.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            attempts: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl GiteaSettings {
    /// Settings from the `serve` configuration: GITEA_SERVICE_URL, else GITEA_URL.
    pub fn from_args(args: &crate::config::ServeArgs) -> Result<Self, GiteaError> {
        args.gitea_service_url
            .as_deref()
            .or(args.gitea_url.as_deref())
            .map(Self::new)
            .ok_or_else(|| GiteaError::BaseUrl(String::new()))
    }
}

/// A Gitea API client; cheap to clone.
#[derive(Clone)]
pub struct GiteaClient {
    http: reqwest::Client,
    base: Url,
    settings: GiteaSettings,
    metrics: Option<Metrics>,
}

impl fmt::Debug for GiteaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GiteaClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ApiRepository {
    owner: ApiOwner,
    name: String,
    clone_url: String,
    private: bool,
    #[serde(default)]
    permissions: Option<ApiPermissions>,
}

#[derive(Deserialize)]
struct ApiOwner {
    login: String,
}

#[derive(Deserialize)]
struct ApiPermissions {
    #[serde(default)]
    pull: bool,
}

impl From<ApiRepository> for Repository {
    fn from(repo: ApiRepository) -> Self {
        Self {
            owner: repo.owner.login,
            name: repo.name,
            clone_url: repo.clone_url,
            private: repo.private,
        }
    }
}

impl GiteaClient {
    /// Builds a client for the Gitea at `settings.base_url`.
    pub fn new(settings: GiteaSettings) -> Result<Self, GiteaError> {
        let mut base = Url::parse(&settings.base_url)
            .map_err(|_| GiteaError::BaseUrl(settings.base_url.clone()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(GiteaError::BaseUrl(settings.base_url.clone()));
        }
        base.set_query(None);
        base.set_fragment(None);
        crate::install_crypto();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("codeserver-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(GiteaError::Client)?;
        Ok(Self {
            http,
            base,
            settings,
            metrics: None,
        })
    }

    /// Counts every call in `codeserver_gitea_requests_total`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Looks `owner/name` up with the caller's token; `Ok` means the caller may pull it.
    pub async fn repository(
        &self,
        token: &str,
        owner: &str,
        name: &str,
    ) -> Result<Repository, GiteaError> {
        validate_repo_part("owner", owner)?;
        validate_repo_part("name", name)?;
        let url = self.api_url(&["repos", owner, name], &[]);
        let result = self.get_json::<ApiRepository>(token, url).await;
        let result = match result {
            Ok(repo) if repo.permissions.as_ref().is_some_and(|p| p.pull) => Ok(repo.into()),
            Ok(_) => Err(GiteaError::AccessDenied),
            Err(error) => Err(error),
        };
        self.count(&result);
        result
    }

    /// Every repository the caller can read, following pagination.
    pub async fn repositories(&self, token: &str) -> Result<Vec<Repository>, GiteaError> {
        let mut all = Vec::new();
        let limit = PAGE_LIMIT.to_string();
        for page in 1..=MAX_PAGES {
            let page_text = page.to_string();
            let url = self.api_url(
                &["user", "repos"],
                &[("page", &page_text), ("limit", &limit)],
            );
            let result = self.get_json::<Vec<ApiRepository>>(token, url).await;
            self.count(&result);
            let batch = result?;
            let last = batch.len() < PAGE_LIMIT;
            all.extend(batch.into_iter().map(Repository::from));
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

    fn api_url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        url: Url,
    ) -> Result<T, GiteaError> {
        let path = url.path().to_owned();
        let attempts = self.settings.attempts.max(1);
        let mut backoff = self.settings.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .http
                .get(url.clone())
                .bearer_auth(token)
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await;
            let cause = match sent {
                Ok(response) if response.status().is_success() => {
                    return response
                        .json::<T>()
                        .await
                        .map_err(|source| GiteaError::Decode { path, source });
                }
                Ok(response) => match response.status() {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                        return Err(GiteaError::AccessDenied);
                    }
                    status if status.is_server_error() => Unavailable::Status(status.as_u16()),
                    status => {
                        return Err(GiteaError::UnexpectedStatus {
                            status: status.as_u16(),
                            path,
                        });
                    }
                },
                Err(error) => Unavailable::Transport(error),
            };
            if attempt >= attempts {
                return Err(GiteaError::Unavailable {
                    attempts: attempt,
                    cause,
                });
            }
            tracing::debug!(%path, attempt, error = %cause, "gitea call failed, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    fn count<T>(&self, result: &Result<T, GiteaError>) {
        if let Some(metrics) = &self.metrics {
            metrics.count_gitea(match result {
                Ok(_) => "ok",
                Err(error) => error.metric_result(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(extra: &[&str]) -> crate::config::ServeArgs {
        use clap::Parser;
        let mut args = vec!["codeserver-service", "--gitea-url", "http://gitea:3000"];
        args.extend_from_slice(&["--gitea-token", "t"]);
        args.extend_from_slice(extra);
        *crate::config::Cli::try_parse_from(args).unwrap().serve
    }

    #[test]
    fn the_service_url_wins_over_the_gitea_url() {
        let settings = GiteaSettings::from_args(&serve_args(&[])).unwrap();
        assert_eq!(settings.base_url, "http://gitea:3000");
        let args = serve_args(&["--gitea-service-url", "http://gitea-service:8081"]);
        let settings = GiteaSettings::from_args(&args).unwrap();
        assert_eq!(settings.base_url, "http://gitea-service:8081");
    }

    #[test]
    fn builds_api_urls_under_the_base_path() {
        let client = GiteaClient::new(GiteaSettings::new("http://gitea:3000/git/")).unwrap();
        let url = client.api_url(&["repos", "devteam", "backend-api"], &[]);
        assert_eq!(
            url.as_str(),
            "http://gitea:3000/git/api/v1/repos/devteam/backend-api"
        );
        let client = GiteaClient::new(GiteaSettings::new("http://gitea:3000")).unwrap();
        let url = client.api_url(&["user", "repos"], &[("page", "2"), ("limit", "50")]);
        assert_eq!(
            url.as_str(),
            "http://gitea:3000/api/v1/user/repos?page=2&limit=50"
        );
    }

    #[test]
    fn refuses_base_urls_that_cannot_carry_paths() {
        for bad in ["not a url", "mailto:a@b", "ftp://gitea"] {
            assert!(
                matches!(
                    GiteaClient::new(GiteaSettings::new(bad)),
                    Err(GiteaError::BaseUrl(_))
                ),
                "{bad}"
            );
        }
    }
}
