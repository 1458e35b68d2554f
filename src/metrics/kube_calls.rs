//! `codeserver_kube_requests_total{verb,resource,result}`: a layer on the Kubernetes
//! client's HTTP stack that counts every API call by its RBAC verb and resource, so the
//! reconciler needs no bookkeeping of its own.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response, Uri};
use tower_layer::Layer;
use tower_service::Service;

use super::Metrics;

/// The layer to add to a `kube::client::ClientBuilder`.
#[derive(Clone, Debug)]
pub struct KubeCounter {
    metrics: Metrics,
}

impl KubeCounter {
    /// Counts into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for KubeCounter {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The client's HTTP service, counting each call.
#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, R> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (verb, resource) = classify(request.method(), request.uri());
        let metrics = self.metrics.clone();
        let call = self.inner.call(request);
        Box::pin(async move {
            let answer = call.await;
            let result = match &answer {
                Ok(response) if response.status().is_success() => "ok",
                _ => "error",
            };
            metrics.count_kube(verb, &resource, result);
            answer
        })
    }
}

/// The RBAC verb and resource (`pods`, `pods/log`) of an API request; requests outside
/// resource paths (discovery, version) are `discovery`.
pub fn classify(method: &Method, uri: &Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, resource, tail @ ..] => {
            let mut parts = vec![*resource];
            parts.extend(tail);
            parts
        }
        other => other.to_vec(),
    };
    let Some(resource) = rest.first() else {
        return ("get", "discovery".to_owned());
    };
    let named = rest.len() > 1;
    let resource = match rest.get(2) {
        Some(sub) => format!("{resource}/{sub}"),
        None => (*resource).to_owned(),
    };
    let watching = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, uri: &str) -> (&'static str, String) {
        classify(&method, &uri.parse().unwrap())
    }

    #[test]
    fn classifies_requests_by_rbac_verb_and_resource() {
        let ns = "/api/v1/namespaces/codeserver-instances";
        assert_eq!(
            of(Method::GET, &format!("{ns}/pods/code-server-a")),
            ("get", "pods".into())
        );
        assert_eq!(
            of(Method::GET, &format!("{ns}/pods?labelSelector=x")),
            ("list", "pods".into())
        );
        assert_eq!(
            of(
                Method::GET,
                &format!("{ns}/pods?watch=true&resourceVersion=1")
            ),
            ("watch", "pods".into())
        );
        assert_eq!(
            of(
                Method::PATCH,
                &format!("{ns}/persistentvolumeclaims/workspace-a?fieldManager=x")
            ),
            ("patch", "persistentvolumeclaims".into())
        );
        assert_eq!(
            of(
                Method::GET,
                &format!("{ns}/pods/code-server-a/log?tailLines=5")
            ),
            ("get", "pods/log".into())
        );
        assert_eq!(
            of(Method::DELETE, &format!("{ns}/pods/code-server-a")),
            ("delete", "pods".into())
        );
        assert_eq!(
            of(
                Method::PATCH,
                "/apis/networking.istio.io/v1/namespaces/ns/virtualservices/code-server-a"
            ),
            ("patch", "virtualservices".into())
        );
        assert_eq!(
            of(Method::POST, "/apis/batch/v1/namespaces/ns/jobs"),
            ("create", "jobs".into())
        );
        assert_eq!(
            of(Method::GET, "/api/v1/namespaces/ns"),
            ("get", "namespaces".into())
        );
        assert_eq!(of(Method::GET, "/apis"), ("get", "discovery".into()));
        assert_eq!(of(Method::GET, "/version"), ("get", "discovery".into()));
    }
}
