//! Configuration: one clap-derive tree. Every setting is a flag and the environment
//! variable the specification names, with its defaults; a malformed value stops start-up
//! with one line naming the variable, the value and what is expected.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum, builder::BoolishValueParser};

use crate::{naming, quantity};

/// codeserver-service: personal, persistent code-server workspaces on Kubernetes.
#[derive(Parser, Debug)]
#[command(
    name = "codeserver-service",
    version = crate::VERSION,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings, for the default `serve` command.
    #[command(flatten)]
    pub serve: Box<ServeArgs>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the GraphQL API (the default command).
    Serve(Box<ServeArgs>),
    /// Print the manifests the service would create for a user, like `helm template`.
    Render(RenderArgs),
    /// Render the templates for sample users (hostile ids included) and report every problem.
    ValidateTemplates(ValidateArgs),
    /// Compare what would be rendered for a user with the cluster; changes nothing.
    Plan(PlanArgs),
    /// Exit 0 when the server on PORT answers /health (for container health checks).
    Healthcheck(HealthcheckArgs),
}

/// Settings that shape every instance: the inputs of `Values` that come from configuration.
#[derive(Args, Debug, Clone)]
pub struct InstanceSettings {
    /// Namespace of the instances.
    #[arg(long = "namespace", env = "CODESERVER_NAMESPACE", value_name = "CODESERVER_NAMESPACE",
          default_value = "codeserver-instances", value_parser = dns_label)]
    pub namespace: String,
    /// Storage class of workspace PVCs.
    #[arg(long = "pvc-storage-class", env = "PVC_STORAGE_CLASS", value_name = "PVC_STORAGE_CLASS",
          default_value = "standard", value_parser = storage_class)]
    pub pvc_storage_class: String,
    /// Size of each workspace PVC.
    #[arg(long = "pvc-size", env = "PVC_SIZE", value_name = "PVC_SIZE", default_value = "10Gi",
          value_parser = positive_quantity)]
    pub pvc_size: String,
    /// Image of the code-server container.
    #[arg(long = "image", env = "CODESERVER_IMAGE", value_name = "CODESERVER_IMAGE",
          default_value = "codercom/code-server:latest", value_parser = image)]
    pub image: String,
    /// CPU request of the code-server container.
    #[arg(long = "cpu", env = "CODESERVER_CPU", value_name = "CODESERVER_CPU", default_value = "500m",
          value_parser = positive_quantity)]
    pub cpu: String,
    /// Memory request of the code-server container.
    #[arg(long = "memory", env = "CODESERVER_MEMORY", value_name = "CODESERVER_MEMORY",
          default_value = "1Gi", value_parser = positive_quantity)]
    pub memory: String,
    /// CPU limit of the code-server container.
    #[arg(long = "cpu-limit", env = "CODESERVER_CPU_LIMIT", value_name = "CODESERVER_CPU_LIMIT",
          default_value = "2", value_parser = positive_quantity)]
    pub cpu_limit: String,
    /// Memory limit of the code-server container.
    #[arg(long = "memory-limit", env = "CODESERVER_MEMORY_LIMIT",
          value_name = "CODESERVER_MEMORY_LIMIT", default_value = "4Gi",
          value_parser = positive_quantity)]
    pub memory_limit: String,
    /// Domain under which instances are reachable as code-<name>.<BASE_DOMAIN>.
    #[arg(long = "base-domain", env = "BASE_DOMAIN", value_name = "BASE_DOMAIN",
          default_value = "devplatform.local", value_parser = dns_subdomain)]
    pub base_domain: String,
    /// Template directory (usually a mounted ConfigMap); the built-in set when unset.
    #[arg(
        long = "templates",
        env = "TEMPLATES_DIR",
        value_name = "TEMPLATES_DIR"
    )]
    pub templates_dir: Option<PathBuf>,
    /// Required token issuer (`iss`), checked when set. The per-instance access policy
    /// names the owner as `<JWT_ISSUER>/<sub>`, so it is required when the templates
    /// render one.
    #[arg(long = "jwt-issuer", env = "JWT_ISSUER", value_name = "JWT_ISSUER",
          value_parser = issuer)]
    pub jwt_issuer: Option<String>,
    /// Namespace of the Istio ingress gateway, where the per-instance access policies live.
    #[arg(long = "gateway-namespace", env = "GATEWAY_NAMESPACE", value_name = "GATEWAY_NAMESPACE",
          default_value = "istio-system", value_parser = dns_label)]
    pub gateway_namespace: String,
    /// Extra values files merged over the templates' values.yaml, in order.
    #[arg(
        long = "values",
        env = "VALUES_FILE",
        value_name = "VALUES_FILE",
        value_delimiter = ','
    )]
    pub values_files: Vec<PathBuf>,
}

impl Default for InstanceSettings {
    /// The specification's defaults (the same as the flags' defaults; a test checks it).
    fn default() -> Self {
        Self {
            namespace: "codeserver-instances".to_owned(),
            pvc_storage_class: "standard".to_owned(),
            pvc_size: "10Gi".to_owned(),
            image: "codercom/code-server:latest".to_owned(),
            cpu: "500m".to_owned(),
            memory: "1Gi".to_owned(),
            cpu_limit: "2".to_owned(),
            memory_limit: "4Gi".to_owned(),
            base_domain: "devplatform.local".to_owned(),
            jwt_issuer: None,
            gateway_namespace: "istio-system".to_owned(),
            templates_dir: None,
            values_files: Vec::new(),
        }
    }
}

/// A secret setting (GITEA_TOKEN, JWT_SECRET): `Debug` shows `<redacted>`, so printing
/// the configuration can never leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret(s.to_owned()))
}

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
          default_value = "http://keycloak:30080/realms/devplatform/protocol/openid-connect/certs",
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
    pub instance: InstanceSettings,
    /// Listen addresses, API limits and developer tools.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Idle culling.
    #[command(flatten)]
    pub idle: crate::activity::IdleArgs,
    /// Capacity limits.
    #[command(flatten)]
    pub capacity: crate::capacity::CapacityArgs,
    /// Client-side rate limit of Kubernetes API calls.
    #[command(flatten)]
    pub kube_rate: KubeRateArgs,
}

/// Client-side rate limit of Kubernetes API calls, like client-go's QPS and Burst.
#[derive(Args, Debug, Clone)]
pub struct KubeRateArgs {
    /// Sustained Kubernetes API requests per second; more wait their turn.
    #[arg(long = "kube-qps", env = "KUBE_QPS", value_name = "KUBE_QPS",
          default_value_t = crate::rate_limit::DEFAULT_QPS, value_parser = kube_qps)]
    pub qps: f64,
    /// Kubernetes API requests that may go at once before KUBE_QPS applies.
    #[arg(long = "kube-burst", env = "KUBE_BURST", value_name = "KUBE_BURST",
          default_value_t = crate::rate_limit::DEFAULT_BURST,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub burst: u32,
}

impl KubeRateArgs {
    /// The token bucket's rate.
    pub fn rate(&self) -> Result<crate::rate_limit::Rate, crate::rate_limit::RateError> {
        crate::rate_limit::Rate::new(self.qps, self.burst)
    }
}

/// KUBE_QPS: a number of requests per second above 0 (fractions allowed), at most 100000.
fn kube_qps(s: &str) -> Result<f64, String> {
    let qps: f64 = s.trim().parse().map_err(|_| {
        format!("expected requests per second, a number above 0 such as 50, not {s:?}")
    })?;
    if qps.is_finite() && qps > 0.0 && qps <= 100_000.0 {
        Ok(qps)
    } else {
        Err(format!(
            "expected requests per second above 0 and at most 100000, not {s:?}"
        ))
    }
}

// --- Listen addresses, API limits and developer tools (issue 10) ---

/// The shortest JWT_SECRET accepted: HS256 keys shorter than the hash are guessable.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Where the service listens and what one request and one caller may cost.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// Address the GraphQL API, /health and /ready listen on.
    #[arg(
        long = "bind-address",
        env = "BIND_ADDRESS",
        value_name = "BIND_ADDRESS",
        default_value = "0.0.0.0"
    )]
    pub bind_address: std::net::IpAddr,
    /// Address the Prometheus /metrics endpoint listens on.
    #[arg(
        long = "metrics-bind-address",
        env = "METRICS_BIND_ADDRESS",
        value_name = "METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0"
    )]
    pub metrics_bind_address: std::net::IpAddr,
    /// Serve GraphiQL on GET /graphql; default on, off when ENVIRONMENT is production.
    #[arg(long = "graphiql", env = "GRAPHIQL", value_name = "GRAPHIQL",
          action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub graphiql: Option<bool>,
    /// Answer GraphQL introspection; default on, off when ENVIRONMENT is production.
    #[arg(long = "graphql-introspection", env = "GRAPHQL_INTROSPECTION",
          value_name = "GRAPHQL_INTROSPECTION", action = clap::ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub graphql_introspection: Option<bool>,
    /// Largest expanded size of a request: fields, with fragment spreads counted expanded.
    #[arg(long = "graphql-max-query-size", env = "GRAPHQL_MAX_QUERY_SIZE",
          value_name = "GRAPHQL_MAX_QUERY_SIZE", default_value_t = crate::graphql::limits::DEFAULT_MAX_QUERY_SIZE,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub graphql_max_query_size: u64,
    /// Most root fields (aliases included) in one operation.
    #[arg(long = "graphql-max-root-fields", env = "GRAPHQL_MAX_ROOT_FIELDS",
          value_name = "GRAPHQL_MAX_ROOT_FIELDS", default_value_t = crate::graphql::limits::DEFAULT_MAX_ROOT_FIELDS,
          value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub graphql_max_root_fields: u64,
    /// Most mutations in one request.
    #[arg(long = "graphql-max-mutations", env = "GRAPHQL_MAX_MUTATIONS",
          value_name = "GRAPHQL_MAX_MUTATIONS", default_value_t = crate::graphql::limits::DEFAULT_MAX_MUTATIONS,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub graphql_max_mutations: u64,
    /// GraphQL requests one caller may have in flight; more are answered TOO_MANY_REQUESTS.
    #[arg(long = "max-requests-per-caller", env = "MAX_REQUESTS_PER_CALLER",
          value_name = "MAX_REQUESTS_PER_CALLER", default_value_t = crate::http::DEFAULT_MAX_REQUESTS_PER_CALLER as u16,
          value_parser = clap::value_parser!(u16).range(1..=1_000))]
    pub max_requests_per_caller: u16,
    /// Seconds one request may take (must exceed CODESERVER_TIMEOUT).
    #[arg(long = "request-timeout", env = "REQUEST_TIMEOUT", value_name = "REQUEST_TIMEOUT",
          default_value_t = crate::http::DEFAULT_REQUEST_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub request_timeout: u64,
    /// Seconds a client may take to send a request's headers, then its body; idle
    /// connections close after it.
    #[arg(long = "header-read-timeout", env = "HEADER_READ_TIMEOUT",
          value_name = "HEADER_READ_TIMEOUT",
          default_value_t = crate::http::DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub header_read_timeout: u64,
    /// Subscriptions (codeServerEvents) one caller may have open; more are answered
    /// `too many subscriptions`.
    #[arg(long = "max-subscriptions-per-caller", env = "MAX_SUBSCRIPTIONS_PER_CALLER",
          value_name = "MAX_SUBSCRIPTIONS_PER_CALLER",
          default_value_t = crate::graphql::DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER as u16,
          value_parser = clap::value_parser!(u16).range(1..=1_000))]
    pub max_subscriptions_per_caller: u16,
    /// Seconds a subscription (and its websocket connection) may stay open; should
    /// exceed CODESERVER_TIMEOUT so that a start can be followed to its end.
    #[arg(long = "subscription-timeout", env = "SUBSCRIPTION_TIMEOUT",
          value_name = "SUBSCRIPTION_TIMEOUT",
          default_value_t = crate::graphql::DEFAULT_SUBSCRIPTION_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub subscription_timeout: u64,
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
        // NB: an empty JWT_SECRET means unset, as in AuthSettings::from_args.
        if let Some(secret) = self
            .jwt_secret
            .as_ref()
            .filter(|s| !s.expose().trim().is_empty())
        {
            let len = secret.expose().len();
            if len < MIN_JWT_SECRET_BYTES {
                return Err(SettingsError::ShortJwtSecret { len });
            }
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
    pub fn api_settings(&self) -> crate::http::ApiSettings {
        let tools_default = !self.is_production();
        crate::http::ApiSettings {
            query: crate::graphql::limits::QueryLimits {
                max_size: self.api.graphql_max_query_size,
                max_root_fields: self.api.graphql_max_root_fields,
                max_mutations: self.api.graphql_max_mutations,
            },
            max_requests_per_caller: usize::from(self.api.max_requests_per_caller),
            server: crate::http::ServerLimits {
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

// --- end of listen addresses, API limits and developer tools ---

/// How the service asks Gitea as the caller.
#[derive(Args, Debug, Clone)]
pub struct GiteaAuthArgs {
    /// `sudo`: GITEA_TOKEN (a site admin's) with Gitea's Sudo header naming the caller;
    /// `forward`: the caller's own bearer token (only for a Gitea that accepts it).
    #[arg(long = "gitea-auth-mode", env = "GITEA_AUTH_MODE", value_name = "GITEA_AUTH_MODE",
          value_enum, default_value_t = crate::gitea::AuthMode::Sudo)]
    pub gitea_auth_mode: crate::gitea::AuthMode,
}

impl ServeArgs {
    /// CODESERVER_TIMEOUT as a duration.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.codeserver_timeout)
    }

    /// True when ENVIRONMENT is production.
    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }
}

/// The user and repository a render or plan is for.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// User id (preferred_username), any characters.
    #[arg(long = "user")]
    pub user: String,
    /// The user's email.
    #[arg(long = "email")]
    pub email: Option<String>,
    /// The token's `sub`, the durable owner key.
    #[arg(long = "sub")]
    pub sub: Option<String>,
    /// Repository owner (Gitea user or organisation).
    #[arg(long = "repo-owner")]
    pub repo_owner: String,
    /// Repository name.
    #[arg(long = "repo-name")]
    pub repo_name: String,
    /// Clone URL; <GITEA_URL>/<owner>/<name>.git when unset.
    #[arg(long = "clone-url")]
    pub clone_url: Option<String>,
    /// Gitea base URL used for the default clone URL.
    #[arg(long = "gitea-url", env = "GITEA_URL", value_name = "GITEA_URL",
          default_value = "http://gitea:3000", value_parser = http_url)]
    pub gitea_url: String,
    /// Value overrides, `key.path=value`, applied last (as Helm's --set).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Instance settings.
    #[command(flatten)]
    pub instance: InstanceSettings,
}

/// Output format of `render`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Multi-document YAML.
    Yaml,
    /// One JSON list.
    Json,
}

/// Arguments of `render`.
#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    /// Who and what to render for.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format.
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Kubeconfig of a cluster to read the user's instance record from (its owner and
    /// repositories, as provisioning would); offline when unset.
    #[arg(long = "kubeconfig", value_name = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Arguments of `validate-templates`.
#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Instance settings (the template directory among them).
    #[command(flatten)]
    pub instance: InstanceSettings,
}

/// Arguments of `plan`.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Who and what to plan for.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Kubeconfig file; in-cluster configuration when unset.
    #[arg(long = "kubeconfig", env = "KUBECONFIG", value_name = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Arguments of `healthcheck`.
#[derive(Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// Port of the server to check.
    #[arg(
        long = "port",
        env = "PORT",
        value_name = "PORT",
        default_value_t = 8082
    )]
    pub port: u16,
}

/// Renders a clap error as the one line start-up prints (help and version pass through).
pub fn one_line_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information")
        {
            if !parts.is_empty() {
                break;
            }
            continue;
        }
        parts.push(line.to_owned());
    }
    parts.join(" ")
}

fn positive_quantity(s: &str) -> Result<String, String> {
    quantity::parse_positive(s)
        .map(|_| s.to_owned())
        .map_err(|_| {
            "expected a Kubernetes quantity greater than zero, such as 500m, 2, 1Gi or 10Gi"
                .to_owned()
        })
}

fn dns_label(s: &str) -> Result<String, String> {
    if naming::is_dns_label(s) {
        Ok(s.to_owned())
    } else {
        Err("expected a DNS-1123 label (lowercase letters, digits and '-', at most 63)".to_owned())
    }
}

fn dns_subdomain(s: &str) -> Result<String, String> {
    if naming::is_dns_subdomain(s) {
        Ok(s.to_owned())
    } else {
        Err("expected a lowercase DNS name such as devplatform.local".to_owned())
    }
}

/// JWT_ISSUER: empty (unset), or an issuer the access policy can name exactly.
///
/// NB: Istio reads a leading or trailing `*` in a principal as a wildcard, so an issuer
/// with `*` would widen every per-instance policy; whitespace and control characters are
/// never part of a real issuer.
fn issuer(s: &str) -> Result<String, String> {
    if s.is_empty() || naming::principal_part_problem(s).is_none() {
        Ok(s.to_owned())
    } else {
        Err("expected the token issuer exactly as tokens carry it in `iss` (such as https://keycloak.example/realms/devplatform), without '*', whitespace or control characters".to_owned())
    }
}

fn storage_class(s: &str) -> Result<String, String> {
    if s.is_empty() || naming::is_dns_subdomain(s) {
        Ok(s.to_owned())
    } else {
        Err("expected a storage class name (a DNS-1123 subdomain), or empty for the cluster default".to_owned())
    }
}

fn image(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 512
        && s.bytes().all(|b| b.is_ascii_graphic())
        && !s.starts_with(['-', ':', '@', '/']);
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected a container image reference such as codercom/code-server:4.96.4".to_owned())
    }
}

fn http_url(s: &str) -> Result<String, String> {
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err("expected an http(s) URL such as http://gitea:3000".to_owned()),
    }
}

fn environment(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "development" | "staging" | "production" | "test"
    ) {
        Ok(lower)
    } else {
        Err("expected one of development, staging, production, test".to_owned())
    }
}

fn log_level(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|_| {
            "expected a log level (error, warn, info, debug, trace) or tracing directives"
                .to_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("codeserver-service").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_requires_gitea_but_render_does_not() {
        let err = parse(&["serve"]).unwrap_err();
        let line = one_line_error(&err);
        assert!(line.contains("GITEA_URL") && !line.contains('\n'), "{line}");
        let cli = parse(&[
            "render",
            "--user",
            "u",
            "--repo-owner",
            "o",
            "--repo-name",
            "n",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Render(_))));
    }

    #[test]
    fn defaults_match_the_specification() {
        let cli = parse(&["--gitea-url", "http://gitea:3000", "--gitea-token", "t"]).unwrap();
        let s = &cli.serve;
        assert_eq!(
            (
                s.port,
                s.metrics_port,
                s.shutdown_timeout,
                s.codeserver_timeout
            ),
            (8082, 9092, 30, 300)
        );
        let i = &s.instance;
        assert_eq!(i.namespace, "codeserver-instances");
        assert_eq!(
            (i.pvc_storage_class.as_str(), i.pvc_size.as_str()),
            ("standard", "10Gi")
        );
        assert_eq!((i.cpu.as_str(), i.memory.as_str()), ("500m", "1Gi"));
        assert_eq!(i.base_domain, "devplatform.local");
        assert_eq!(i.image, "codercom/code-server:latest");
        assert_eq!(
            format!("{i:?}"),
            format!("{:?}", InstanceSettings::default())
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let cli = parse(&[
            "--gitea-url",
            "http://g",
            "--gitea-token",
            "tok-123",
            "--jwt-secret",
            "hunter2",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("tok-123") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert_eq!(
            cli.serve.jwt_secret.as_ref().map(Secret::expose),
            Some("hunter2")
        );
    }

    #[test]
    fn malformed_values_name_the_variable_the_value_and_the_expectation() {
        let cases: [(&[&str], &str, &str); 4] = [
            (&["--pvc-size", "ten gigs"], "PVC_SIZE", "ten gigs"),
            (&["--cpu=-1"], "CODESERVER_CPU", "-1"),
            (&["--port", "70000"], "PORT", "70000"),
            (
                &["--base-domain", "Not A Domain"],
                "BASE_DOMAIN",
                "Not A Domain",
            ),
        ];
        for (args, var, value) in cases {
            let mut all = vec!["--gitea-url", "http://g", "--gitea-token", "t"];
            all.extend_from_slice(args);
            let line = one_line_error(&parse(&all).unwrap_err());
            assert!(line.contains(var) && line.contains(value), "{line}");
            assert!(!line.contains('\n'));
        }
    }

    // --- listen addresses, API limits and developer tools ---

    #[test]
    fn graphiql_and_introspection_are_off_in_production_unless_enabled() {
        let base = ["--gitea-url", "http://g", "--gitea-token", "t"];
        let settings = |extra: &[&str]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            parse(&all).unwrap().serve.api_settings()
        };
        let development = settings(&[]);
        assert!(development.graphiql && development.introspection);
        let production = settings(&["--environment", "production"]);
        assert!(!production.graphiql && !production.introspection);
        let enabled = settings(&[
            "--environment",
            "production",
            "--graphiql",
            "true",
            "--graphql-introspection",
            "true",
        ]);
        assert!(enabled.graphiql && enabled.introspection);
        let off = settings(&["--graphiql", "false"]);
        assert!(!off.graphiql && off.introspection);
    }

    #[test]
    fn limits_have_their_documented_defaults() {
        let cli = parse(&["--gitea-url", "http://g", "--gitea-token", "t"]).unwrap();
        let api = cli.serve.api_settings();
        assert_eq!(
            (
                api.query.max_size,
                api.query.max_root_fields,
                api.query.max_mutations,
                api.max_requests_per_caller
            ),
            (2_000, 10, 3, 4)
        );
        assert_eq!(api.server.request_timeout, Duration::from_secs(600));
        assert_eq!(api.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(cli.serve.api.bind_address.to_string(), "0.0.0.0");
        assert!(cli.serve.check().is_ok());
        let line = one_line_error(
            &parse(&[
                "--gitea-url",
                "http://g",
                "--gitea-token",
                "t",
                "--bind-address",
                "all",
            ])
            .unwrap_err(),
        );
        assert!(
            line.contains("BIND_ADDRESS") && line.contains("all"),
            "{line}"
        );
    }

    #[test]
    fn a_short_jwt_secret_is_refused_without_showing_it() {
        let cli = parse(&[
            "--gitea-url",
            "http://g",
            "--gitea-token",
            "t",
            "--jwt-secret",
            "hunter2",
        ])
        .unwrap();
        let error = cli.serve.check().unwrap_err();
        assert_eq!(error, SettingsError::ShortJwtSecret { len: 7 });
        assert!(!error.to_string().contains("hunter2"));
        let empty = parse(&[
            "--gitea-url",
            "http://g",
            "--gitea-token",
            "t",
            "--jwt-secret",
            "",
        ])
        .unwrap();
        assert!(empty.serve.check().is_ok(), "empty means unset");
    }

    #[test]
    fn kube_rate_defaults_and_refuses_what_is_not_a_rate() {
        let base = ["--gitea-url", "http://g", "--gitea-token", "t"];
        let cli = parse(&base).unwrap();
        let rate = cli.serve.kube_rate.rate().unwrap();
        assert_eq!((rate.qps(), rate.burst()), (50.0, 100));
        let cli =
            parse(&[&base[..], &["--kube-qps", "2.5", "--kube-burst", "7"]].concat()).unwrap();
        assert_eq!(
            (cli.serve.kube_rate.qps, cli.serve.kube_rate.burst),
            (2.5, 7)
        );
        for (flag, value) in [
            ("--kube-qps", "0"),
            ("--kube-qps", "-3"),
            ("--kube-qps", "fast"),
            ("--kube-qps", "inf"),
            ("--kube-burst", "0"),
            ("--kube-burst", "-1"),
        ] {
            let err = parse(&[&base[..], &[flag, value]].concat()).unwrap_err();
            let line = one_line_error(&err);
            assert!(line.contains(value) && !line.contains('\n'), "{line}");
        }
    }
}
