//! What the API allows a request and a caller, and the server's timeouts.

use std::time::Duration;

use crate::graphql::{
    DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER, DEFAULT_SUBSCRIPTION_TIMEOUT, limits::QueryLimits,
};

/// The largest GraphQL request body accepted.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// The largest GraphQL answer sent, in bytes of JSON; a larger one is answered
/// `RESPONSE_TOO_LARGE` instead (a 1 MiB log of printable text fits; one whose every byte
/// JSON escapes 6-fold does not).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// The pieces an answer is handed to the connection in: hyper buffers a few of them, so a
/// caller's slot is held until all but the last few are written.
pub const RESPONSE_CHUNK_BYTES: usize = 8 * 1024;

/// The default header-read timeout: a client must send a request's headers within this,
/// and an idle keep-alive connection is closed after it.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default server-side timeout of one request (longer than CODESERVER_TIMEOUT's
/// default, which a provisioning may wait).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// The default number of GraphQL requests one caller may have in flight.
pub const DEFAULT_MAX_REQUESTS_PER_CALLER: usize = 4;

/// Timeouts of the HTTP server, for every route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a client may take to send a request's headers, and then the body of a
    /// GraphQL request; also how long an idle keep-alive connection is kept open, and how
    /// long a write may wait for a client that does not read its answer.
    pub header_read_timeout: Duration,
    /// How long one request (body included) may take before it is answered `TIMEOUT`.
    pub request_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// What the API allows a request and a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// The cost limits of one GraphQL request.
    pub query: QueryLimits,
    /// GraphQL requests one caller may have in flight.
    pub max_requests_per_caller: usize,
    /// Subscriptions one caller may have open.
    pub max_subscriptions_per_caller: usize,
    /// How long a subscription, and a websocket connection, may stay open.
    pub subscription_timeout: Duration,
    /// Server timeouts.
    pub server: ServerLimits,
    /// Serve the GraphiQL page on `GET /graphql`.
    pub graphiql: bool,
    /// Answer introspection queries.
    pub introspection: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            query: QueryLimits::default(),
            max_requests_per_caller: DEFAULT_MAX_REQUESTS_PER_CALLER,
            max_subscriptions_per_caller: DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER,
            subscription_timeout: DEFAULT_SUBSCRIPTION_TIMEOUT,
            server: ServerLimits::default(),
            graphiql: true,
            introspection: true,
        }
    }
}
