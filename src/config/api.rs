//! Where the service listens and what one request and one caller may cost.

use clap::{Args, builder::BoolishValueParser};

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
