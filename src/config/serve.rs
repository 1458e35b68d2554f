//! The `serve` command's settings, and their conversion into the settings each part of
//! the service takes (authentication, Gitea, the API, timeouts).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{
    Args, ValueEnum,
    builder::{BoolishValueParser, PossibleValue},
};

use super::{
    ApiArgs, CapacityArgs, IdleArgs, InstanceArgs, Secret,
    parse::{environment, http_url, log_level, secret},
};
use crate::{
    auth::{AuthSettings, DEFAULT_JWKS_URL, MIN_JWT_SECRET_BYTES},
    gitea::{AuthMode, GiteaError, GiteaSettings, LinkBy},
    graphql::limits::QueryLimits,
    http::{ApiSettings, ServerLimits},
    reconcile::Timeouts,
};

/// Settings of the `serve` command.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Port of the GraphQL API, /health and /ready.
    #[arg(long = "port", env = "PORT", value_name = "PORT", default_value_t = 8082,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Port of the Prometheus /metrics endpoint.
    #[arg(long = "metrics-port", env = "METRICS_PORT", value_name = "METRICS_PORT",
          default_value_t = 9092, value_parser = clap::value_parser!(u16).range(1..))]
    pub metrics_port: u16,
    /// Deployment environment; `production` refuses development switches.
    #[arg(long = "environment", env = "ENVIRONMENT", value_name = "ENVIRONMENT",
          default_value = "development", value_parser = environment)]
    pub environment: String,
    /// Log level or tracing filter (error, warn, info, debug, trace, or directives).
    #[arg(long = "log-level", env = "LOG_LEVEL", value_name = "LOG_LEVEL", default_value = "info",
          value_parser = log_level)]
    pub log_level: String,
    /// Seconds to finish in-flight requests after SIGTERM.
    #[arg(long = "shutdown-timeout", env = "SHUTDOWN_TIMEOUT", value_name = "SHUTDOWN_TIMEOUT",
          default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_timeout: u64,
    /// Kubeconfig file; in-cluster configuration when unset.
    #[arg(long = "kubeconfig", env = "KUBECONFIG", value_name = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds to wait for a new instance to become ready before answering STARTING.
    #[arg(long = "codeserver-timeout", env = "CODESERVER_TIMEOUT",
          value_name = "CODESERVER_TIMEOUT", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub codeserver_timeout: u64,
    /// Seconds a pod may stay unschedulable before the instance reports ERROR.
    #[arg(long = "unschedulable-timeout", env = "UNSCHEDULABLE_TIMEOUT",
          value_name = "UNSCHEDULABLE_TIMEOUT", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(0..=86400))]
    pub unschedulable_timeout: u64,
    /// Base URL of Gitea.
    #[arg(long = "gitea-url", env = "GITEA_URL", value_name = "GITEA_URL", required = true,
          value_parser = http_url)]
    pub gitea_url: Option<String>,
    /// Gitea site admin token: asks Gitea as the caller (Sudo) and manages deploy keys.
    #[arg(
        long = "gitea-token",
        env = "GITEA_TOKEN",
        value_name = "GITEA_TOKEN",
        required = true,
        hide_env_values = true,
        value_parser = secret
    )]
    pub gitea_token: Option<Secret>,
    /// Base URL of the Gitea API used for access checks; GITEA_URL when unset.
    #[arg(long = "gitea-service-url", env = "GITEA_SERVICE_URL", value_name = "GITEA_SERVICE_URL",
          value_parser = http_url)]
    pub gitea_service_url: Option<String>,
    /// Shared secret for HS256 tokens (optional; RS256 via JWKS otherwise).
    #[arg(
        long = "jwt-secret",
        env = "JWT_SECRET",
        value_name = "JWT_SECRET",
        hide_env_values = true,
        value_parser = secret
    )]
    pub jwt_secret: Option<Secret>,
    /// Keycloak JWKS endpoint for RS256 tokens.
    #[arg(long = "jwks-url", env = "JWKS_URL", value_name = "JWKS_URL",
          default_value = DEFAULT_JWKS_URL,
          value_parser = http_url)]
    pub jwks_url: String,
    /// Required token audience (`aud`), checked when set.
    #[arg(
        long = "jwt-audience",
        env = "JWT_AUDIENCE",
        value_name = "JWT_AUDIENCE"
    )]
    pub jwt_audience: Option<String>,
    /// Realm role that grants admin queries.
    #[arg(
        long = "admin-role",
        env = "ADMIN_ROLE",
        value_name = "ADMIN_ROLE",
        default_value = "admin"
    )]
    pub admin_role: String,
    /// Trust X-Forwarded-User/-Email (only behind Istio, which verified the token).
    #[arg(long = "auth-trust-forwarded", env = "AUTH_TRUST_FORWARDED",
          value_name = "AUTH_TRUST_FORWARDED", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub auth_trust_forwarded: bool,
    /// Development only: accept tokens without verifying them. Refused in production.
    #[arg(long = "auth-insecure-decode", env = "AUTH_INSECURE_DECODE",
          value_name = "AUTH_INSECURE_DECODE", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub auth_insecure_decode: bool,
    /// How Gitea is asked as the caller.
    #[command(flatten)]
    pub gitea_auth: GiteaAuthArgs,
    /// Instance settings.
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Listen addresses, API limits and developer tools.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Idle culling.
    #[command(flatten)]
    pub idle: IdleArgs,
    /// The workspace gatekeeper: the check listener and the browser login.
    #[command(flatten)]
    pub gate: super::GateArgs,
    /// Capacity limits.
    #[command(flatten)]
    pub capacity: CapacityArgs,
    /// Client-side rate limit of Kubernetes API calls.
    #[command(flatten)]
    pub kube_rate: super::KubeRateArgs,
    /// Recoverable delete (DELETE_RETENTION).
    #[command(flatten)]
    pub retention: super::RetentionArgs,
}

/// Settings that parse but cannot work together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// JWT_SECRET is too short to be a safe HS256 key.
    #[error("JWT_SECRET is {len} bytes long; at least {MIN_JWT_SECRET_BYTES} bytes are required")]
    ShortJwtSecret {
        /// Its length in bytes.
        len: usize,
    },
    /// REQUEST_TIMEOUT would cut provisioning short.
    #[error(
        "REQUEST_TIMEOUT ({request}s) must be longer than CODESERVER_TIMEOUT ({ready}s), which a provisioning may wait"
    )]
    RequestTimeoutTooShort {
        /// REQUEST_TIMEOUT in seconds.
        request: u64,
        /// CODESERVER_TIMEOUT in seconds.
        ready: u64,
    },
}

impl ServeArgs {
    /// Refuses settings that parse but cannot work: a short JWT_SECRET (never shown), a
    /// REQUEST_TIMEOUT not above CODESERVER_TIMEOUT.
    pub fn check(&self) -> Result<(), SettingsError> {
        // NB: an empty JWT_SECRET means unset (see `auth_settings`).
        if let Some(secret) = self.auth_settings().jwt_secret
            && secret.len() < MIN_JWT_SECRET_BYTES
        {
            return Err(SettingsError::ShortJwtSecret { len: secret.len() });
        }
        if self.api.request_timeout <= self.codeserver_timeout {
            return Err(SettingsError::RequestTimeoutTooShort {
                request: self.api.request_timeout,
                ready: self.codeserver_timeout,
            });
        }
        Ok(())
    }

    /// The API's limits and switches; GraphiQL and introspection default to off in
    /// production.
    pub fn api_settings(&self) -> ApiSettings {
        let tools_default = !self.is_production();
        ApiSettings {
            query: QueryLimits {
                max_size: self.api.graphql_max_query_size,
                max_root_fields: self.api.graphql_max_root_fields,
                max_mutations: self.api.graphql_max_mutations,
            },
            max_requests_per_caller: usize::from(self.api.max_requests_per_caller),
            server: ServerLimits {
                header_read_timeout: Duration::from_secs(self.api.header_read_timeout),
                request_timeout: Duration::from_secs(self.api.request_timeout),
            },
            max_subscriptions_per_caller: usize::from(self.api.max_subscriptions_per_caller),
            subscription_timeout: Duration::from_secs(self.api.subscription_timeout),
            graphiql: self.api.graphiql.unwrap_or(tools_default),
            introspection: self.api.graphql_introspection.unwrap_or(tools_default),
        }
    }
}

/// How the service asks Gitea as the caller.
#[derive(Args, Debug, Clone)]
pub struct GiteaAuthArgs {
    /// `sudo`: GITEA_TOKEN (a site admin's) with Gitea's Sudo header naming the caller;
    /// `forward`: the caller's own bearer token (only for a Gitea that accepts it).
    #[arg(long = "gitea-auth-mode", env = "GITEA_AUTH_MODE", value_name = "GITEA_AUTH_MODE",
          value_enum, default_value_t = AuthMode::Sudo)]
    pub gitea_auth_mode: AuthMode,
    /// In `sudo` mode, how the named Gitea account is proven to be the caller's: `sub`
    /// (its login source is the identity provider's and its `login_name` is the token's
    /// `sub`) or `email` (that, or its email is the token's verified email).
    #[arg(long = "gitea-link-by", env = "GITEA_LINK_BY", value_name = "GITEA_LINK_BY", value_enum,
          default_value_t = LinkBy::Sub)]
    pub gitea_link_by: LinkBy,
    /// In `sudo` mode, the id of the identity provider's login source in Gitea (Site
    /// Administration, Authentication Sources); unset: any source but local accounts.
    #[arg(long = "gitea-login-source-id", env = "GITEA_LOGIN_SOURCE_ID",
          value_name = "GITEA_LOGIN_SOURCE_ID",
          value_parser = clap::value_parser!(i64).range(1..))]
    pub gitea_login_source_id: Option<i64>,
}

// NB: the clap side of GITEA_AUTH_MODE lives here, so that `gitea` never sees clap.
impl ValueEnum for AuthMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Sudo, Self::Forward]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Sudo => PossibleValue::new("sudo").help(
                "The service's admin token and Gitea's `Sudo` header with the caller's username",
            ),
            Self::Forward => PossibleValue::new("forward").help("The caller's own bearer token"),
        })
    }
}

impl ValueEnum for LinkBy {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Sub, Self::Email]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Sub => PossibleValue::new("sub")
                .help("The account signs in through the identity provider as the token's `sub`"),
            Self::Email => PossibleValue::new("email")
                .help("As `sub`, or the account's email is the token's verified email"),
        })
    }
}

impl ServeArgs {
    /// How long an instance may take to come up (CODESERVER_TIMEOUT) and stay
    /// unschedulable (UNSCHEDULABLE_TIMEOUT).
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            ready: Duration::from_secs(self.codeserver_timeout),
            unschedulable: Duration::from_secs(self.unschedulable_timeout),
            ..Timeouts::default()
        }
    }

    /// How callers are authenticated (JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, JWT_SECRET,
    /// AUTH_TRUST_FORWARDED, AUTH_INSECURE_DECODE, ENVIRONMENT, ADMIN_ROLE); an empty value
    /// means unset.
    pub fn auth_settings(&self) -> AuthSettings {
        let non_empty = |v: Option<&str>| v.filter(|s| !s.trim().is_empty()).map(str::to_owned);
        AuthSettings {
            jwks_url: self.jwks_url.clone(),
            issuer: non_empty(self.instance.jwt_issuer.as_deref()),
            audience: non_empty(self.jwt_audience.as_deref()),
            jwt_secret: non_empty(self.jwt_secret.as_ref().map(Secret::expose)),
            trust_forwarded: self.auth_trust_forwarded,
            insecure_decode: self.auth_insecure_decode,
            environment: self.environment.clone(),
            admin_role: self.admin_role.clone(),
            ..AuthSettings::default()
        }
    }

    /// How Gitea is called: GITEA_SERVICE_URL, else GITEA_URL; GITEA_AUTH_MODE,
    /// GITEA_TOKEN, and how accounts are linked (GITEA_LINK_BY, GITEA_LOGIN_SOURCE_ID).
    pub fn gitea_settings(&self) -> Result<GiteaSettings, GiteaError> {
        let base = self
            .gitea_service_url
            .as_deref()
            .or(self.gitea_url.as_deref())
            .ok_or_else(|| GiteaError::BaseUrl(String::new()))?;
        Ok(GiteaSettings {
            auth_mode: self.gitea_auth.gitea_auth_mode,
            service_token: self.gitea_token.clone(),
            link_by: self.gitea_auth.gitea_link_by,
            login_source: self.gitea_auth.gitea_login_source_id,
            ..GiteaSettings::new(base)
        })
    }

    /// `host:port` of the API (BIND_ADDRESS, PORT), with an IPv6 host in brackets.
    pub fn api_addr(&self) -> String {
        SocketAddr::new(self.api.bind_address, self.port).to_string()
    }

    /// `host:port` of the ext_authz check listener (BIND_ADDRESS, EXT_AUTHZ_PORT).
    pub fn ext_authz_addr(&self) -> String {
        SocketAddr::new(self.api.bind_address, self.gate.ext_authz_port).to_string()
    }

    /// The workspace gatekeeper's settings (PUBLIC_URL, OIDC_*, SESSION_*,
    /// ADMIN_WORKSPACE_ACCESS; JWT_ISSUER and BASE_DOMAIN).
    pub fn gate_settings(&self) -> crate::gate::GateSettings {
        self.gate
            .settings(self.auth_settings().issuer, &self.instance.base_domain)
    }

    /// `host:port` of `/metrics` (METRICS_BIND_ADDRESS, METRICS_PORT).
    pub fn metrics_addr(&self) -> String {
        SocketAddr::new(self.api.metrics_bind_address, self.metrics_port).to_string()
    }

    /// True when ENVIRONMENT is production.
    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }
}
