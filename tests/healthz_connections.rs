//! The idle culler's `/healthz` reads leave no connection open. code-server counts any open
//! TCP connection as use (its Heart asks `server.getConnections` every 60 s), so a pooled
//! keep-alive connection of the poller would keep an instance "active" forever. A stand-in
//! code-server answers with HTTP/1.1 keep-alive semantics (it never closes a connection
//! itself) and reports, per accepted connection, every request and how the connection
//! ended: only the client can have closed it.

#[path = "support/world.rs"]
mod world;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use codeserver_service::{
    activity::{Culler, IdlePolicy, IdleSettings},
    instance::InstanceStatus,
    metrics::Metrics,
    reconcile::{Reconciler, Timeouts},
    values::{Owner, Repo},
};
use codeserver_sim::Sim;
use jiff::Timestamp;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use world::NS;

const TIMEOUT: u64 = 600;
const INTERVAL: u64 = 60;
/// Only a watchdog: how long a connection may take to be closed by the client before the
/// test fails instead of hanging (a keep-alive pool would hold it for 90 s). Nothing
/// waits for it on success: the close is awaited as a signal from the stand-in.
const WATCHDOG: Duration = Duration::from_secs(30);

/// What the stand-in answers to a request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// code-server's answer: `{"status":"alive","lastHeartbeat":<ms>}`.
    Alive,
    /// An error status with a body the client does not read.
    Unavailable,
    /// A 200 larger than the client's size cap.
    Oversized,
}

/// How a connection ended, seen from the stand-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    /// The client closed it: a read returned 0.
    Eof,
    /// The client reset it (e.g. closing with part of an answer unread).
    Reset,
}

#[derive(Debug)]
enum Event {
    Accepted {
        conn: usize,
    },
    Request {
        conn: usize,
        path: String,
        connection_close: bool,
    },
    Closed {
        conn: usize,
        how: Closed,
        /// Bytes of a request begun but not finished when the connection ended.
        pending: usize,
    },
}

/// A connection as the stand-in saw it.
#[derive(Debug, Default)]
struct Seen {
    /// Per request: its path and whether it asked for `Connection: close`.
    requests: Vec<(String, bool)>,
    closed: Option<(Closed, usize)>,
}

/// A stand-in code-server `/healthz` on 127.0.0.1: the URL template to reach it and the
/// events of its connections. `answer` chooses the answer to the n-th request (from 0).
async fn stand_in(
    answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (String, mpsc::UnboundedReceiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for conn in 0.. {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = tx.send(Event::Accepted { conn });
            tokio::spawn(serve(
                conn,
                stream,
                tx.clone(),
                answer.clone(),
                served.clone(),
            ));
        }
    });
    (
        format!("http://127.0.0.1:{port}/{{namespace}}/{{service}}/healthz"),
        rx,
    )
}

/// Serves one connection with keep-alive semantics: requests are answered for as long as
/// the client sends them, and the stand-in never closes the connection itself.
async fn serve(
    conn: usize,
    mut stream: TcpStream,
    tx: mpsc::UnboundedSender<Event>,
    answer: Arc<impl Fn(usize) -> Answer + Send + Sync>,
    served: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One request head (a GET has no body).
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let path = head
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or_default()
                .to_owned();
            let connection_close = head.lines().skip(1).any(|l| {
                l.split_once(':').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("connection")
                        && value
                            .split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("close"))
                })
            });
            let _ = tx.send(Event::Request {
                conn,
                path,
                connection_close,
            });
            let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (status, body) = match answer(n) {
                Answer::Alive => (
                    "200 OK",
                    format!(
                        r#"{{"status":"alive","lastHeartbeat":{}}}"#,
                        Timestamp::now().as_millisecond()
                    ),
                ),
                Answer::Unavailable => ("503 Service Unavailable", "x".repeat(512)),
                Answer::Oversized => (
                    "200 OK",
                    format!(
                        r#"{{"status":"alive","lastHeartbeat":1,"pad":"{}"}}"#,
                        "x".repeat(64 * 1024)
                    ),
                ),
            };
            // NB: HTTP/1.1 with a Content-Length and no `Connection: close`: the
            // connection stays usable after the answer, so only the client ends it.
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = stream.write_all(response.as_bytes()).await {
                let how = closed_how(&e);
                let _ = tx.send(Event::Closed {
                    conn,
                    how,
                    pending: buf.len(),
                });
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) => {
                let _ = tx.send(Event::Closed {
                    conn,
                    how: Closed::Eof,
                    pending: buf.len(),
                });
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                let how = closed_how(&e);
                let _ = tx.send(Event::Closed {
                    conn,
                    how,
                    pending: buf.len(),
                });
                return;
            }
        }
    }
}

fn closed_how(e: &std::io::Error) -> Closed {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    assert!(
        matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe),
        "unexpected error on a stand-in connection: {e}"
    );
    Closed::Reset
}

fn record(seen: &mut BTreeMap<usize, Seen>, event: Event) {
    match event {
        Event::Accepted { conn } => {
            seen.entry(conn).or_default();
        }
        Event::Request {
            conn,
            path,
            connection_close,
        } => seen
            .entry(conn)
            .or_default()
            .requests
            .push((path, connection_close)),
        Event::Closed { conn, how, pending } => {
            seen.entry(conn).or_default().closed = Some((how, pending));
        }
    }
}

/// Everything the stand-in has reported so far, without waiting.
fn drain(events: &mut mpsc::UnboundedReceiver<Event>, seen: &mut BTreeMap<usize, Seen>) {
    while let Ok(event) = events.try_recv() {
        record(seen, event);
    }
}

/// Waits (on the stand-in's signals) until every connection it accepted has been closed.
async fn until_all_closed(
    events: &mut mpsc::UnboundedReceiver<Event>,
    seen: &mut BTreeMap<usize, Seen>,
) {
    let waited = tokio::time::timeout(WATCHDOG, async {
        while seen.values().any(|s| s.closed.is_none()) {
            let event = events.recv().await.expect("the stand-in keeps running");
            record(seen, event);
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "connections the client kept open: {:?}",
        seen.iter()
            .filter(|(_, s)| s.closed.is_none())
            .collect::<Vec<_>>()
    );
}

fn john() -> Owner {
    Owner {
        user_id: "john".into(),
        email: None,
        sub: Some("3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f".into()),
        known_name: None,
        gitea_token: None,
    }
}

fn repo() -> Repo {
    Repo::new("devteam", "api", "http://gitea:3000/devteam/api.git").unwrap()
}

fn secs(s: u64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(i64::try_from(s).unwrap())
}

/// Stops after IDLE_TIMEOUT, warning for the whole idle period; the rest as by default.
fn policy() -> IdlePolicy {
    IdlePolicy {
        timeout: Duration::from_secs(TIMEOUT),
        warning: Duration::from_secs(TIMEOUT),
        ..IdlePolicy::default()
    }
}

/// A running instance on the simulated cluster and a culler asking `healthz_url`.
async fn culler_of_one_instance(healthz_url: String) -> (Sim, Arc<Reconciler>, Culler, String) {
    let sim = Sim::start().await.unwrap();
    let rec = world::reconciler(&sim)
        .timeouts(Timeouts {
            ready: Duration::from_secs(10),
            unschedulable: Duration::from_secs(0),
            sync: Duration::from_secs(10),
        })
        .idle_policy(policy())
        .build();
    let p = rec.provision(&john(), repo()).await.unwrap();
    assert_eq!(p.instance.status.status, InstanceStatus::Running);
    let settings = IdleSettings {
        check_interval: Duration::from_secs(INTERVAL),
        policy: policy(),
        check_concurrency: 4,
        healthz_url,
        lease_name: "codeserver-service-idle-culler".to_owned(),
        pod_name: Some("replica-a".to_owned()),
    };
    let metrics = Metrics::new().unwrap();
    let culler = Culler::new(rec.clone(), &settings, Some(metrics.idle_stops.clone())).unwrap();
    (sim, rec, culler, p.instance.id)
}

#[tokio::test]
async fn every_healthz_read_closes_its_connection() {
    let (url, mut events) = stand_in(|_| Answer::Alive).await;
    // NB: the culler (and with it its HTTP client) lives to the end of the test: dropping
    // the client would close pooled connections too and hide a leak.
    let (_sim, _rec, culler, id) = culler_of_one_instance(url).await;
    let now = Timestamp::now();
    for at in [now, now + secs(INTERVAL)] {
        let report = culler.check(at).await.unwrap();
        assert!(report.leader);
        assert_eq!(report.checked, 1, "{report:?}");
        assert!(
            report.unreachable.is_empty() && report.stopped.is_empty(),
            "the stand-in's answer was used: {report:?}"
        );
    }

    // Every request was reported before it was answered, so all are in by now.
    let mut seen = BTreeMap::new();
    drain(&mut events, &mut seen);
    let want = format!("/{NS}/{id}/healthz");
    let requests: Vec<_> = seen.values().flat_map(|s| s.requests.clone()).collect();
    assert_eq!(
        requests,
        vec![(want.clone(), true), (want, true)],
        "{seen:?}"
    );
    for (conn, s) in &seen {
        assert_eq!(
            s.requests.len(),
            1,
            "connection {conn} was kept for another request: {s:?}"
        );
    }

    // The client closes each connection after its answer; the stand-in never does.
    until_all_closed(&mut events, &mut seen).await;
    for (conn, s) in &seen {
        assert_eq!(
            s.closed,
            Some((Closed::Eof, 0)),
            "connection {conn} was not closed cleanly by the client after the answer"
        );
    }
    assert_eq!(seen.len(), 2, "one connection per read: {seen:?}");
    drop(culler);
}

#[tokio::test]
async fn an_unusable_answer_closes_its_connection_too() {
    // An error status, then an answer over the size cap: the client stops reading.
    let (url, mut events) = stand_in(|n| {
        if n == 0 {
            Answer::Unavailable
        } else {
            Answer::Oversized
        }
    })
    .await;
    let (_sim, _rec, culler, id) = culler_of_one_instance(url).await;
    let now = Timestamp::now();
    for at in [now, now + secs(INTERVAL)] {
        let report = culler.check(at).await.unwrap();
        assert_eq!(report.unreachable, vec![id.clone()], "{report:?}");
        assert!(report.stopped.is_empty());
    }

    let mut seen = BTreeMap::new();
    drain(&mut events, &mut seen);
    for (conn, s) in &seen {
        assert!(
            s.requests.len() == 1 && s.requests[0].1,
            "connection {conn}: one request, asking for `Connection: close`: {s:?}"
        );
    }
    until_all_closed(&mut events, &mut seen).await;
    assert_eq!(seen.len(), 2, "one connection per read: {seen:?}");
    for (conn, s) in &seen {
        assert!(
            matches!(s.closed, Some((_, 0))),
            "connection {conn} was not closed by the client: {s:?}"
        );
    }
    drop(culler);
}
