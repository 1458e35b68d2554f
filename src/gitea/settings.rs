//! How the client calls Gitea: the base URL, how the caller is presented, timeouts and
//! retries.

use std::time::Duration;

use crate::secret::Secret;

/// How the service asks Gitea as the caller (GITEA_AUTH_MODE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// The service's admin token and Gitea's `Sudo` header with the caller's username.
    Sudo,
    /// The caller's own bearer token.
    Forward,
}

/// How a Gitea account is proven to be the caller's before `Sudo` (GITEA_LINK_BY).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkBy {
    /// The account signs in through the identity provider's login source and its
    /// `login_name` is the token's `sub`.
    #[default]
    Sub,
    /// As [`LinkBy::Sub`], or the account's email is the token's email and the token says
    /// it is verified (`email_verified: true`): for platforms that link accounts by email.
    Email,
}

/// The caller, as Gitea is asked about them. Made only from an authenticated identity.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The caller's Gitea username (the token's `preferred_username`), for `Sudo`.
    pub username: &'a str,
    /// The caller's verified bearer token: forwarded in [`AuthMode::Forward`]; in
    /// [`AuthMode::Sudo`] its `sub` (and verified email) must link the caller to the
    /// account `username` names, so a caller without one is never acted as.
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
    pub service_token: Option<Secret>,
    /// How an account is proven to be the caller's before `Sudo` (GITEA_LINK_BY).
    pub link_by: LinkBy,
    /// The id of the identity provider's login source in Gitea (GITEA_LOGIN_SOURCE_ID);
    /// unset: any login source but local accounts (`source_id` 0).
    pub login_source: Option<i64>,
    /// How long a verdict on whose account a caller may be acted as is kept.
    pub link_ttl: Duration,
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
    /// caller's token is forwarded, as no service token is known; in `Sudo` mode accounts
    /// are linked by `sub` through any non-local login source, verdicts kept 60 s.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            auth_mode: AuthMode::Forward,
            service_token: None,
            link_by: LinkBy::Sub,
            login_source: None,
            link_ttl: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            attempts: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }

    /// Defaults for `base_url`, asking as the caller with Sudo under `service_token` (an
    /// admin token of that Gitea).
    pub fn sudo(base_url: &str, service_token: &str) -> Self {
        Self {
            auth_mode: AuthMode::Sudo,
            service_token: Some(Secret::new(service_token)),
            ..Self::new(base_url)
        }
    }
}
