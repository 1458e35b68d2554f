//! The client: how each request presents the caller (or the service), where it goes, and
//! how it is retried and counted.

use std::{fmt, sync::Arc};

use reqwest::StatusCode;
use url::Url;

use super::{AuthMode, Caller, GiteaError, GiteaSettings, Unavailable, link::Verdicts};
use crate::{metrics::Metrics, naming::validate_repo_part};

/// A Gitea API client; cheap to clone.
#[derive(Clone)]
pub struct GiteaClient {
    http: reqwest::Client,
    base: Url,
    pub(super) settings: GiteaSettings,
    metrics: Option<Metrics>,
    /// Whose accounts callers may be acted as, shared by the clones.
    pub(super) verdicts: Arc<Verdicts>,
    /// Set once GITEA_TOKEN is known to be a site admin's.
    pub(super) admin_token: Arc<tokio::sync::OnceCell<()>>,
}

impl fmt::Debug for GiteaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GiteaClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// The credentials one request carries.
pub(super) struct Presented {
    authorization: String,
    sudo: Option<String>,
    /// The service acting as itself (deploy keys): a refusal is a configuration error,
    /// never a caller's denial.
    service: bool,
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
        let verdicts = Arc::new(Verdicts::new(settings.link_ttl));
        Ok(Self {
            http,
            base,
            settings,
            metrics: None,
            verdicts,
            admin_token: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// How callers are presented to Gitea.
    pub fn auth_mode(&self) -> AuthMode {
        self.settings.auth_mode
    }

    /// Counts every call in `codeserver_gitea_requests_total`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How the caller is presented on a request: `Authorization` and, in `Sudo` mode, the
    /// `Sudo` header. A caller Gitea could not know (no token to forward, a username
    /// Gitea would not accept) is denied without a call; in `Sudo` mode so is a caller
    /// whose named account is not provably theirs (one lookup, then the kept verdict).
    pub(super) async fn as_caller(&self, caller: &Caller<'_>) -> Result<Presented, GiteaError> {
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
                self.ensure_linked(caller).await?;
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

    /// The service itself, for deploy keys.
    pub(super) fn as_service(&self) -> Result<Presented, GiteaError> {
        Ok(Presented {
            authorization: self.service_authorization()?,
            sudo: None,
            service: true,
        })
    }

    pub(super) fn api_url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
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
    pub(super) async fn send(
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

    pub(super) fn count<T>(&self, result: &Result<T, GiteaError>) {
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
