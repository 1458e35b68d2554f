//! The GraphQL API: the spec's schema, with identity and arguments checked here and the
//! work done by the reconciler. The HTTP layer authenticates each request and attaches the
//! caller's [`Identity`](crate::auth::Identity) as request data; resolvers read it with
//! `ctx.data_opt`, and a request without one is answered `unauthorized`.

mod admin;
mod args;
mod calls;
mod code;
mod convert;
mod error;
mod extension;
pub mod limits;
mod mutation;
mod profiles;
mod query;
mod rate;
mod redact;
mod schema;
mod subscription;
mod types;

pub use self::{
    calls::{
        DEFAULT_READ_CALLS_BURST, DEFAULT_READ_CALLS_PER_SECOND, MAX_CALLS_PER_REQUEST,
        MAX_REPOSITORY_PAGES,
    },
    code::Code,
    error::ApiError,
    extension::RequestMetrics,
    mutation::Mutation,
    profiles::{Profile, ProfileResources, ResourceQuantities},
    query::Query,
    schema::{MAX_COMPLEXITY, MAX_DEPTH},
    subscription::{
        DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER, DEFAULT_SUBSCRIPTION_TIMEOUT, ProgressEvent,
        ProgressKind, Subscription, SubscriptionLimits,
    },
    types::{
        CodeServerConnection, CodeServerEdge, CodeServerInstance, InstanceEvent, InstanceStats,
        InstanceStatus, PageInfo, PlanAction, PlanResult, PlanStep, ProvisionResult, RenderResult,
        Repository, TemplateRefusal, TemplateSet, WorkspaceRepository, WorkspaceStorage,
    },
};
pub(crate) use self::{
    convert::record_stats,
    redact::redact,
    schema::{AppSchema, Services, schema},
};
