//! The routes and what they are built from: authenticator, Gitea client, schema,
//! readiness and what `/ready` lists as degraded.

use std::sync::Arc;

use warp::{Filter, filters::BoxedFilter, reply::Response};

use super::ServeError;
use crate::{
    auth::{AuthSettings, Authenticator},
    gate::{self, Gate, GateSettings},
    gitea::{GiteaClient, GiteaSettings},
    graphql::{self, Services},
    http::{self, ApiSettings, App, ServerLimits},
    metrics::Metrics,
    ready::{Degraded, ready_check},
    reconcile::{self, Reconciler},
    reload,
};

/// The `degraded` list: what the cluster lacks (`cluster`, fixed at start), and the
/// browser login while its issuer has not been discovered.
///
/// NB: no template set can leave workspaces unprotected any more (the gatekeeper guards
/// every workspace host, whatever the templates render), so nothing is added per set.
fn degraded(cluster: Vec<String>, gate: Arc<Gate>) -> Degraded {
    Arc::new(move || {
        let mut list = cluster.clone();
        list.extend(gate.login_problem().map(str::to_owned));
        list
    })
}

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
    /// The workspace gatekeeper (the check and the browser login).
    pub gate: GateSettings,
}

/// The service's three route sets.
pub struct Routes {
    /// `/graphql`, `/health`, `/ready` (PORT).
    pub api: BoxedFilter<(Response,)>,
    /// `/metrics` (METRICS_PORT).
    pub metrics: BoxedFilter<(Response,)>,
    /// The ext_authz checks of the ingress gateway (EXT_AUTHZ_PORT).
    pub ext_authz: BoxedFilter<(Response,)>,
    /// The timeouts both listeners serve with.
    pub server: ServerLimits,
}

/// Builds the routes: authenticator, Gitea client, schema, readiness.
pub fn assemble(parts: Parts) -> Result<Routes, ServeError> {
    let admin_role = parts.auth.admin_role.clone();
    let auth = Authenticator::new(parts.auth).map_err(ServeError::Auth)?;
    let gate = Gate::new(
        parts.gate,
        auth.clone(),
        parts.reconciler.clone(),
        parts.metrics.clone(),
    )
    .map_err(ServeError::Gate)?;
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
    let degraded = degraded(cluster, gate.clone());
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
        .or(gate::login_routes(gate.clone()))
        .unify()
        .boxed(),
        metrics: http::metrics_routes(parts.metrics).boxed(),
        ext_authz: gate::check_routes(gate).boxed(),
        server: parts.api.server,
    })
}
