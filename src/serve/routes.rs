//! The routes and what they are built from: authenticator, Gitea client, schema,
//! readiness and what `/ready` lists as degraded.

use std::sync::{Arc, Mutex};

use warp::{Filter, filters::BoxedFilter, reply::Response};

use super::ServeError;
use crate::{
    auth::{AuthSettings, Authenticator},
    gitea::{GiteaClient, GiteaSettings},
    graphql::{self, Services},
    http::{self, ApiSettings, App, ServerLimits},
    metrics::Metrics,
    ready::{Degraded, ready_check},
    reconcile::{self, Reconciler},
    reload, render,
};

/// The `degraded` list: what the cluster lacks (`cluster`, fixed at start) and, for the
/// active template set, workspaces published without a per-instance access policy
/// (allowed only by `security.allowUnauthenticatedWorkspaces`). Checked once per
/// template revision.
fn degraded(cluster: Vec<String>, reconciler: &Arc<Reconciler>) -> Degraded {
    let active = reconciler.templates().clone();
    let settings = reconciler.settings().clone();
    let seen: Mutex<Option<(String, bool)>> = Mutex::new(None);
    Arc::new(move || {
        let templates = active.get();
        let mut seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let unprotected = match seen.as_ref() {
            Some((revision, unprotected)) if revision == templates.revision() => *unprotected,
            _ => {
                let unprotected = render::access_report(&templates, &settings).unprotected();
                *seen = Some((templates.revision().to_owned(), unprotected));
                unprotected
            }
        };
        let mut list = cluster.clone();
        if unprotected {
            list.push(UNPROTECTED.to_owned());
        }
        list
    })
}

/// The `degraded` entry (and start-up warning) of a set that publishes workspaces
/// without a per-instance access policy.
pub const UNPROTECTED: &str = "security.allowUnauthenticatedWorkspaces: workspaces are published without a per-instance access policy; anyone who reaches the gateway can open any workspace";

/// What the routes are built from.
pub struct Parts {
    /// The lifecycle operations.
    pub reconciler: Arc<Reconciler>,
    /// Authentication.
    pub auth: AuthSettings,
    /// Gitea.
    pub gitea: GiteaSettings,
    /// The service's metrics.
    pub metrics: Metrics,
    /// Refusals of the template reloader, when templates are reloaded live.
    pub refusals: Option<Arc<reload::Refusals>>,
    /// The API's limits and switches.
    pub api: ApiSettings,
}

/// The service's two route sets.
pub struct Routes {
    /// `/graphql`, `/health`, `/ready` (PORT).
    pub api: BoxedFilter<(Response,)>,
    /// `/metrics` (METRICS_PORT).
    pub metrics: BoxedFilter<(Response,)>,
    /// The timeouts both listeners serve with.
    pub server: ServerLimits,
}

/// Builds the routes: authenticator, Gitea client, schema, readiness.
pub fn assemble(parts: Parts) -> Result<Routes, ServeError> {
    let admin_role = parts.auth.admin_role.clone();
    let auth = Authenticator::new(parts.auth).map_err(ServeError::Auth)?;
    let gitea = GiteaClient::new(parts.gitea)
        .map_err(ServeError::Gitea)?
        .with_metrics(parts.metrics.clone());
    let synced = parts.reconciler.clone();
    let ready = ready_check(
        parts.reconciler.client().clone(),
        parts.reconciler.templates().clone(),
        move || synced.caches_synced(),
    );
    let templates = reload::reporter(parts.reconciler.templates().clone(), parts.refusals);
    let cluster = match parts.reconciler.kinds().istio_version() {
        Some(_) => Vec::new(),
        None => vec![format!(
            "the cluster serves no {} VirtualService: instances whose templates render one cannot be provisioned",
            reconcile::kinds::ISTIO_GROUP
        )],
    };
    let degraded = degraded(cluster, &parts.reconciler);
    let schema = graphql::schema(Services {
        templates: templates.clone(),
        reconciler: parts.reconciler,
        gitea,
        admin_role,
        metrics: parts.metrics.clone(),
        ready: ready.clone(),
        subscriptions: graphql::SubscriptionLimits::new(
            parts.api.max_subscriptions_per_caller,
            parts.api.subscription_timeout,
        ),
    });
    Ok(Routes {
        api: http::routes(App {
            schema,
            auth,
            ready,
            templates,
            degraded,
            settings: parts.api,
        })
        .boxed(),
        metrics: http::metrics_routes(parts.metrics).boxed(),
        server: parts.api.server,
    })
}
