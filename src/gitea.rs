//! Gitea's REST API v1, asked as the caller.
//!
//! Stock Gitea does not accept Keycloak tokens on its API, so by default
//! ([`AuthMode::Sudo`]) the service calls with its own admin token (`GITEA_TOKEN`) and
//! Gitea's `Sudo` header naming the caller's Gitea username: Gitea then answers exactly as
//! it would answer that user. [`AuthMode::Forward`] forwards the caller's bearer token
//! instead, for a Gitea that trusts the identity provider's tokens.
//!
//! Access to a repository is decided by Gitea: a lookup as the caller that answers
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
    /// The SSH clone URL (empty when Gitea's SSH server is off).
    pub ssh_url: String,
    /// Whether the repository is private.
    pub private: bool,
}

impl Repository {
    /// The repository as an instance records it: owner, name and clone URL checked, and
    /// Gitea's SSH URL when it has a usable one (else git clones over HTTP).
    pub fn to_repo(&self) -> Result<crate::values::Repo, NamingError> {
        let repo = crate::values::Repo::new(&self.owner, &self.name, &self.clone_url)?;
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
    /// `Sudo` mode without a service token.
    #[error("GITEA_AUTH_MODE=sudo needs GITEA_TOKEN")]
    NoServiceToken,
    /// Gitea refused the service token itself (401 or 403 on a deploy key call).
    #[error(
        "gitea refused GITEA_TOKEN with HTTP {status} on {path} (it must be a site admin's, with repository scopes)"
    )]
    ServiceRefused {
        /// The HTTP status.
        status: u16,
        /// The API path.
        path: String,
    },
    /// Gitea refused the service token's `Sudo` (the token's user is no site admin).
    #[error(
        "gitea refused GITEA_TOKEN with Sudo (its user must be a site admin with repository scopes)"
    )]
    SudoRefused,
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

/// How the service asks Gitea as the caller (GITEA_AUTH_MODE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// The service's admin token and Gitea's `Sudo` header with the caller's username.
    Sudo,
    /// The caller's own bearer token.
    Forward,
}

/// The caller, as Gitea is asked about them.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The caller's Gitea username (the token's `preferred_username`), for `Sudo`.
    pub username: &'a str,
    /// The caller's bearer token, for [`AuthMode::Forward`].
    pub token: Option<&'a str>,
}

/// Timeouts and retry policy of the client.
#[derive(Clone, Debug)]
pub struct GiteaSettings {
    /// Gitea's base URL (GITEA_SERVICE_URL, default GITEA_URL), without `/api/v1`.
    pub base_url: String,
    /// How the caller is presented to Gitea (GITEA_AUTH_MODE).
    pub auth_mode: AuthMode,
    /// The service's admin token (GITEA_TOKEN): `Sudo` and deploy keys need it.
    pub service_token: Option<crate::config::Secret>,
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
    /// Defaults for `base_url`: 10 s per request, 3 attempts, backoff 200 ms to 2 s; the
    /// caller's token is forwarded, as no service token is known.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            auth_mode: AuthMode::Forward,
            service_token: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            attempts: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl GiteaSettings {
    /// Defaults for `base_url`, asking as the caller with Sudo under `service_token` (an
    /// admin token of that Gitea).
    pub fn sudo(base_url: &str, service_token: &str) -> Self {
        Self {
            auth_mode: AuthMode::Sudo,
            service_token: Some(crate::config::Secret::new(service_token)),
            ..Self::new(base_url)
        }
    }

    /// Settings from the `serve` configuration: GITEA_SERVICE_URL, else GITEA_URL;
    /// GITEA_AUTH_MODE and GITEA_TOKEN.
    pub fn from_args(args: &crate::config::ServeArgs) -> Result<Self, GiteaError> {
        let base = args
            .gitea_service_url
            .as_deref()
            .or(args.gitea_url.as_deref())
            .ok_or_else(|| GiteaError::BaseUrl(String::new()))?;
        Ok(Self {
            auth_mode: args.gitea_auth.gitea_auth_mode,
            service_token: args.gitea_token.clone(),
            ..Self::new(base)
        })
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

/// The credentials one request carries.
struct Presented {
    authorization: String,
    sudo: Option<String>,
    /// The service acting as itself (deploy keys): a refusal is a configuration error,
    /// never a caller's denial.
    service: bool,
}

#[derive(Deserialize)]
struct ApiRepository {
    owner: ApiOwner,
    name: String,
    clone_url: String,
    #[serde(default)]
    ssh_url: String,
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
            ssh_url: repo.ssh_url,
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
        if settings.auth_mode == AuthMode::Sudo && settings.service_token.is_none() {
            return Err(GiteaError::NoServiceToken);
        }
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

    /// How the caller is presented on a request: `Authorization` and, in `Sudo` mode, the
    /// `Sudo` header. A caller Gitea could not know (no token to forward, a username
    /// Gitea would not accept) is denied without a call.
    fn as_caller(&self, caller: &Caller<'_>) -> Result<Presented, GiteaError> {
        match self.settings.auth_mode {
            AuthMode::Forward => caller
                .token
                .map(|token| Presented {
                    authorization: format!("Bearer {token}"),
                    sudo: None,
                    service: false,
                })
                .ok_or(GiteaError::AccessDenied),
            AuthMode::Sudo => {
                if validate_repo_part("owner", caller.username).is_err() {
                    tracing::debug!("the caller's username cannot be a Gitea username");
                    return Err(GiteaError::AccessDenied);
                }
                Ok(Presented {
                    authorization: self.service_authorization()?,
                    sudo: Some(caller.username.to_owned()),
                    service: false,
                })
            }
        }
    }

    /// `Authorization` with the service's own token.
    fn service_authorization(&self) -> Result<String, GiteaError> {
        self.settings
            .service_token
            .as_ref()
            .map(|t| format!("token {}", t.expose()))
            .ok_or(GiteaError::NoServiceToken)
    }

    /// Looks `owner/name` up as the caller; `Ok` means the caller may pull it.
    pub async fn repository(
        &self,
        caller: &Caller<'_>,
        owner: &str,
        name: &str,
    ) -> Result<Repository, GiteaError> {
        validate_repo_part("owner", owner)?;
        validate_repo_part("name", name)?;
        let presented = self.as_caller(caller)?;
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
        let presented = self.as_caller(caller)?;
        let mut all = Vec::new();
        let limit = PAGE_LIMIT.to_string();
        for page in 1..=MAX_PAGES {
            let page_text = page.to_string();
            let url = self.api_url(
                &["user", "repos"],
                &[("page", &page_text), ("limit", &limit)],
            );
            let result = self.get_json::<Vec<ApiRepository>>(&presented, url).await;
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

    /// The service itself, for deploy keys.
    fn as_service(&self) -> Result<Presented, GiteaError> {
        Ok(Presented {
            authorization: self.service_authorization()?,
            sudo: None,
            service: true,
        })
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
        presented: &Presented,
        url: Url,
    ) -> Result<T, GiteaError> {
        let path = url.path().to_owned();
        let attempts = self.settings.attempts;
        let response = self
            .send(presented, reqwest::Method::GET, url, None, attempts)
            .await?;
        response
            .json::<T>()
            .await
            .map_err(|source| GiteaError::Decode { path, source })
    }

    /// Sends one request (tried up to `attempts` times on transport errors and 5xx) and
    /// maps Gitea's refusals; `Ok` is a 2xx answer.
    async fn send(
        &self,
        presented: &Presented,
        method: reqwest::Method,
        url: Url,
        body: Option<&serde_json::Value>,
        attempts: u32,
    ) -> Result<reqwest::Response, GiteaError> {
        let path = url.path().to_owned();
        let attempts = attempts.max(1);
        let mut backoff = self.settings.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(http::header::AUTHORIZATION, &presented.authorization)
                .header(http::header::ACCEPT, "application/json");
            if let Some(user) = &presented.sudo {
                request = request.header("Sudo", user);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let cause = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => match response.status() {
                    StatusCode::FORBIDDEN if presented.sudo.is_some() => {
                        // NB: with Sudo, 403 is Gitea refusing the service token's Sudo
                        // (only site admins may); a repository the caller may not see is 404.
                        return Err(GiteaError::SudoRefused);
                    }
                    status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                        if presented.service =>
                    {
                        return Err(GiteaError::ServiceRefused {
                            status: status.as_u16(),
                            path,
                        });
                    }
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
