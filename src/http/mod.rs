//! The HTTP server: `POST /graphql` (JSON), `GET /graphql` (GraphiQL, or a websocket
//! upgrade for subscriptions over graphql-transport-ws), `/health` and `/ready` on PORT, and
//! Prometheus `/metrics` on METRICS_PORT.
//!
//! Each GraphQL request is authenticated here and runs in a span carrying its request id
//! (echoed in `X-Request-Id`); the caller's identity is attached as request data for the
//! resolvers. Bodies are limited in size and must be JSON. Before authentication and before
//! async-graphql validates anything, the parsed query's cost is checked
//! ([`crate::graphql::limits`]); each caller may have a few requests in flight; every request
//! has a server-side timeout and every connection a header-read (and idle) timeout, and
//! writes that stall for as long fail. An answer is at most [`MAX_RESPONSE_BYTES`] and
//! holds its caller's slot until it is handed to the connection. On
//! SIGTERM the server stops accepting connections and gives in-flight requests
//! SHUTDOWN_TIMEOUT to finish.
//!
//! The layer sits on top of [`crate::graphql`]: it carries requests to the schema and never
//! the other way round.

mod documents;
mod post;
mod reply;
mod routes;
mod server;
mod settings;
mod websocket;
mod write_timeout;

pub(crate) use self::{
    routes::{App, metrics_routes, routes},
    server::{bind, shutdown_signal},
    settings::{
        DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_REQUESTS_PER_CALLER, DEFAULT_REQUEST_TIMEOUT,
    },
};
pub use self::{
    server::{HttpError, serve, serve_with},
    settings::{ApiSettings, MAX_RESPONSE_BYTES, RESPONSE_CHUNK_BYTES, ServerLimits},
};
