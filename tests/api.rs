//! The GraphQL API through the warp filter, in-process, against the simulated issuer and
//! Gitea.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use codeserver_service::{
    auth::{AuthSettings, Authenticator},
    gitea::{GiteaClient, GiteaSettings},
    graphql::{self, Services},
    http::{self, App, ReadyCheck},
    metrics::Metrics,
    sim::{
        gitea::{Fault, SimGitea},
        issuer::{DEFAULT_AUDIENCE, Issuer, TokenSpec},
    },
};
use serde_json::{Value, json};
use warp::Filter;

struct Harness {
    issuer: Arc<Issuer>,
    gitea: SimGitea,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    base: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn harness() -> Harness {
    let issuer = Arc::new(Issuer::start().await.unwrap());
    let gitea = SimGitea::start(issuer.clone()).await.unwrap();
    let metrics = Metrics::new().unwrap();
    let auth = Authenticator::new(AuthSettings {
        jwks_url: issuer.jwks_url(),
        issuer: Some(issuer.issuer_url()),
        audience: Some(DEFAULT_AUDIENCE.to_owned()),
        ..AuthSettings::default()
    })
    .unwrap();
    let client = GiteaClient::new(GiteaSettings {
        backoff: Duration::from_millis(5),
        ..GiteaSettings::new(&gitea.url())
    })
    .unwrap()
    .with_metrics(metrics.clone());
    let schema = graphql::schema(Services {
        gitea: client,
        admin_role: "admin".to_owned(),
        metrics: metrics.clone(),
    });
    let ready = Arc::new(AtomicBool::new(true));
    let flag = ready.clone();
    let check: ReadyCheck = Arc::new(move || {
        let ok = flag.load(Ordering::SeqCst);
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err("kubernetes API unreachable".to_owned())
            }
        })
    });
    let filter = http::routes(App {
        schema,
        auth,
        ready: check,
    })
    .or(http::metrics_routes(metrics.clone()))
    .unify();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(http::serve(
        listener,
        filter,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    codeserver_service::install_crypto();
    Harness {
        issuer,
        gitea,
        metrics,
        ready,
        base,
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Harness {
    fn token(&self, user: &str) -> String {
        self.issuer.mint(&TokenSpec::new(user)).unwrap()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self
            .request(reqwest::Method::POST, "/graphql")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    async fn query(&self, token: Option<&str>, query: &str) -> Value {
        let (status, body) = self.post(token, &json!({ "query": query })).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn error_of(body: &Value) -> (&str, &str) {
    let error = &body["errors"][0];
    (
        error["message"].as_str().unwrap_or_default(),
        error["extensions"]["code"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn my_repositories_lists_what_gitea_lets_the_caller_read() {
    let h = harness().await;
    let alice = h.token("alice");
    let body = h
        .query(
            Some(&alice),
            "{ myRepositories { owner name cloneUrl private } }",
        )
        .await;
    let repos = body["data"]["myRepositories"].as_array().unwrap();
    let names: Vec<String> = repos
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["owner"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        names.contains(&"devteam/backend-api".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"alice/notes".to_owned()));
    assert!(!names.iter().any(|n| n.starts_with("bob/")));
    assert!(h.metrics.encode().contains(
        "codeserver_graphql_request_duration_seconds_count{operation=\"myRepositories\"} 1"
    ));
}

#[tokio::test]
async fn unauthenticated_and_forged_callers_get_unauthorized() {
    let h = harness().await;
    let forged = h
        .issuer
        .mint(&TokenSpec::new("alice").audience("someone-else"))
        .unwrap();
    for token in [None, Some("garbage"), Some(forged.as_str())] {
        let body = h.query(token, "{ myRepositories { name } }").await;
        assert_eq!(
            error_of(&body),
            ("unauthorized", "UNAUTHENTICATED"),
            "{body}"
        );
        assert!(body["data"].is_null());
    }
    assert_eq!(h.gitea.requests(), 0, "nothing reached gitea");
}

#[tokio::test]
async fn gitea_outages_answer_with_a_message_not_a_crash() {
    let h = harness().await;
    h.gitea.set_fault(Fault::Unavailable);
    let body = h
        .query(Some(&h.token("alice")), "{ myRepositories { name } }")
        .await;
    assert_eq!(
        error_of(&body),
        ("repository service unavailable", "INTERNAL"),
        "{body}"
    );
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("503"),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_requests_are_refused_before_execution() {
    let h = harness().await;
    let alice = h.token("alice");
    let plain = h
        .request(reqwest::Method::POST, "/graphql")
        .header("content-type", "text/plain")
        .bearer_auth(&alice)
        .body(json!({"query": "{ myRepositories { name } }"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);

    let (status, _) = h.post(Some(&alice), &json!("not a request")).await;
    assert_eq!(status, 400);

    let huge =
        json!({ "query": format!("{{ myRepositories {{ name }} }} #{}", "x".repeat(70_000)) });
    let (status, _) = h.post(Some(&alice), &huge).await;
    assert_eq!(status, 413);

    let deep = format!(
        "{{ __schema {{ queryType {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType {".repeat(20),
        "}".repeat(20)
    );
    let body = h.query(Some(&alice), &deep).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{}", body["errors"]);

    let wide: String = (0..1_100)
        .map(|i| format!("a{i}: myRepositories {{ name }} "))
        .collect();
    let body = h.query(Some(&alice), &format!("{{ {wide} }}")).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{}", body["errors"]);
    assert_eq!(h.gitea.requests(), 0);
}

#[tokio::test]
async fn introspection_works_for_graphiql_and_the_page_is_served() {
    let h = harness().await;
    let body = h
        .query(None, "{ __schema { queryType { name fields { name } } } }")
        .await;
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
    let page = h.get("/graphql").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("graphiql"));
}

#[tokio::test]
async fn request_ids_are_echoed_when_safe_and_replaced_when_not() {
    let h = harness().await;
    let reply = |id: &'static str| {
        h.request(reqwest::Method::POST, "/graphql")
            .header("content-type", "application/json")
            .header("x-request-id", id)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
    };
    let ok = reply("trace-123").await.unwrap();
    assert_eq!(ok.headers()["x-request-id"], "trace-123");
    let hostile = reply("evil id with spaces").await.unwrap();
    let replaced = hostile.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(replaced, "evil id with spaces");
    assert_eq!(replaced.len(), 36, "a fresh uuid");
}

#[tokio::test]
async fn health_ready_and_metrics_endpoints() {
    let h = harness().await;
    assert_eq!(h.get("/health").await.status(), 200);
    assert_eq!(h.get("/ready").await.status(), 200);
    h.ready.store(false, Ordering::SeqCst);
    let not_ready = h.get("/ready").await;
    assert_eq!(not_ready.status(), 503);
    assert!(!not_ready.text().await.unwrap().contains("kubernetes"));
    h.query(None, "{ myRepositories { name } }").await;
    let metrics = h.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let content_type = metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            "codeserver_graphql_request_duration_seconds_count{operation=\"myRepositories\"} 1"
        ),
        "{text}"
    );
    assert_eq!(h.get("/nope").await.status(), 404);
    let put = h
        .request(reqwest::Method::PUT, "/graphql")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
}
