//! Simulated code-server `/healthz` endpoints, one per instance Service, on their own
//! loopback port: what the idle culler reads in tests and the demo.
//!
//! code-server answers `GET /healthz` with `{"status":"alive"|"expired","lastHeartbeat":<ms>}`:
//! `lastHeartbeat` is the last time a request or websocket message reached it (0 when none
//! did since it started; `/healthz` itself does not count), and `status` is `alive` while
//! that was less than a minute ago. Here an endpoint answers only while the instance's pod
//! is Ready (like a Service with no ready endpoint, it refuses otherwise), and a test sets
//! the heartbeat with [`CodeServers::heartbeat`] or marks an instance as in use with
//! [`CodeServers::set_active`].

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use warp::{Filter, Reply, http::StatusCode};

use super::{Shared, SimError, lock, resources::ids};

/// code-server's heartbeat interval: `alive` while the last heartbeat is younger.
const ALIVE_MS: i64 = 60_000;

#[derive(Debug, Default)]
struct State {
    /// (namespace, service) → last heartbeat, Unix milliseconds.
    beats: HashMap<(String, String), i64>,
    /// Instances someone is using right now: every answer reports a fresh heartbeat.
    active: HashSet<(String, String)>,
}

/// The simulated code-server endpoints. Dropping it stops the server.
#[derive(Debug)]
pub struct CodeServers {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for CodeServers {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl CodeServers {
    pub(crate) async fn start(sh: Arc<Shared>) -> Result<Self, SimError> {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| SimError::Bind { port: 0, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { port: 0, source })?;
        let st = state.clone();
        let route = warp::get()
            .and(warp::path!(String / String / "healthz"))
            .map(move |ns: String, svc: String| healthz(&sh, &st, ns, svc))
            .recover(|_r: warp::Rejection| async {
                Ok::<_, Infallible>(
                    warp::reply::with_status("404 page not found", StatusCode::NOT_FOUND)
                        .into_response(),
                )
            })
            .unify();
        let server = tokio::spawn(warp::serve(route).incoming(listener).run());
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// The HEALTHZ_URL template that reaches these endpoints:
    /// `http://127.0.0.1:<port>/{namespace}/{service}/healthz`.
    pub fn url_template(&self) -> String {
        format!("http://{}/{{namespace}}/{{service}}/healthz", self.addr)
    }

    /// Records a heartbeat of instance `service` at `at`.
    pub fn heartbeat(&self, namespace: &str, service: &str, at: jiff::Timestamp) {
        lock(&self.state).beats.insert(
            (namespace.to_owned(), service.to_owned()),
            at.as_millisecond(),
        );
    }

    /// Marks instance `service` as in use (every answer reports a heartbeat just now) or
    /// not (the heartbeat stays where it was last).
    pub fn set_active(&self, namespace: &str, service: &str, active: bool) {
        let key = (namespace.to_owned(), service.to_owned());
        let mut state = lock(&self.state);
        if active {
            state.active.insert(key);
        } else {
            let now = jiff::Timestamp::now().as_millisecond();
            if state.active.remove(&key) {
                state.beats.insert(key, now);
            }
        }
    }
}

fn healthz(
    sh: &Arc<Shared>,
    state: &Arc<Mutex<State>>,
    ns: String,
    svc: String,
) -> warp::reply::Response {
    let ready = lock(&sh.store)
        .get(ids::PODS, &ns, &svc)
        .map(|s| s.value())
        .is_some_and(|pod| pod_ready(&pod));
    if !ready {
        return warp::reply::with_status("no ready endpoint", StatusCode::SERVICE_UNAVAILABLE)
            .into_response();
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let key = (ns, svc);
    let mut st = lock(state);
    if st.active.contains(&key) {
        st.beats.insert(key.clone(), now);
    }
    let last = st.beats.get(&key).copied().unwrap_or(0);
    let status = if now - last < ALIVE_MS {
        "alive"
    } else {
        "expired"
    };
    warp::reply::json(&json!({"status": status, "lastHeartbeat": last})).into_response()
}

fn pod_ready(pod: &Value) -> bool {
    pod.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_none()
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Ready")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
}
