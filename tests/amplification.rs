//! Hostile requests that cost the service far more than they cost the caller (issue 21,
//! items 1 and 2), each made through the public surface: GraphQL over HTTP against the
//! whole service on the simulated cluster, which counts every Kubernetes call.
//!
//! - Nested amplification: `events` (two Kubernetes lists per instance), `codeServerLogs`
//!   and `myRepositories` (Gitea search pages) are capped per request wherever they occur,
//!   the events of an instance are read once per request, and each caller's reads that call
//!   out spend their own budget.
//! - Response memory: an answer holds its caller's slot until the client has read it, a
//!   client that never reads is cut off after the header-read timeout, and an answer over
//!   `MAX_RESPONSE_BYTES` is refused with `RESPONSE_TOO_LARGE`.
//!
//! The counts and the memory figure are printed (`cargo test --test amplification --
//! --nocapture`).

#[path = "support/world.rs"]
mod world;

use std::time::Duration;

use codeserver_service::http;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use world::{NS, World, error_of, ok};

/// Provisions `owner/name` for `token`'s user; the instance id.
async fn provisioned(w: &World, token: &str) -> String {
    let body = w.provision(token, "devteam", "docs").await;
    ok(&body, "provisionCodeServer")["instance"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

fn aliases(count: usize, field: &str) -> String {
    (0..count).map(|i| format!("e{i}: {field} ")).collect()
}

#[tokio::test]
async fn nine_hundred_ninety_nine_events_aliases_make_no_kubernetes_call() {
    let w = World::start().await;
    let alice = w.token("alice");
    provisioned(&w, &alice).await;
    let sim = w.sim();
    sim.reset_requests();
    let query = format!(
        "{{ myCodeServers {{ {} }} }}",
        aliases(999, "events { reason }")
    );
    let body = w.query(Some(&alice), &query).await;
    let lists = sim.count("list", "events");
    println!("999 aliases of `events`: {lists} Kubernetes event lists");
    assert_eq!(lists, 0, "the hostile request was executed");
    assert_eq!(error_of(&body), ("query too complex", "QUERY_TOO_COMPLEX"));
    let reason = body["errors"][0]["extensions"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("at most 3 `events`"), "{body}");
    assert!(body["data"].is_null(), "{body}");
    // The same through fragments: each spread counts as what it expands to.
    let spread = "{ myCodeServers { ...E ...E } } \
                  fragment E on CodeServerInstance { a: events { reason } b: events { reason } }";
    let body = w.query(Some(&alice), spread).await;
    assert_eq!(error_of(&body).1, "QUERY_TOO_COMPLEX", "{body}");
    assert_eq!(sim.count("list", "events"), 0);
}

#[tokio::test]
async fn the_events_of_an_instance_are_read_once_per_request() {
    let w = World::start().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    let sim = w.sim();
    sim.reset_requests();
    // Three `events` fields (the most allowed) over two root fields, one instance.
    let body = w
        .gql(
            &alice,
            "query($id: String!) { codeServer(id: $id) { events { reason } } \
             myCodeServers { a: events { reason } b: events { type message } } }",
            json!({"id": id}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let lists = sim.count("list", "events");
    println!("3 `events` fields of one instance: {lists} Kubernetes event lists");
    assert_eq!(
        lists, 2,
        "one list of the pod's and one of the volume's events"
    );
    assert_eq!(
        body["data"]["codeServer"]["events"],
        body["data"]["myCodeServers"][0]["a"],
    );
}

#[tokio::test]
async fn logs_and_repository_lists_are_capped_per_request() {
    let w = World::start().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    let sim = w.sim();
    sim.reset_requests();
    let logs: String = (0..10)
        .map(|i| format!("l{i}: codeServerLogs(id: \"{id}\", lines: 10000) "))
        .collect();
    let body = w.query(Some(&alice), &format!("{{ {logs} }}")).await;
    assert_eq!(error_of(&body), ("query too complex", "QUERY_TOO_COMPLEX"));
    assert_eq!(sim.count("get", "pods/log"), 0, "no log was read");
    // One is fine.
    let body = w
        .query(
            Some(&alice),
            &format!("{{ codeServerLogs(id: \"{id}\", lines: 10) }}"),
        )
        .await;
    assert!(body["data"]["codeServerLogs"].is_string(), "{body}");
    // Gitea: ten aliases of the unpaged list were ten listings of up to 100 search pages
    // each; now the list is read once per request, at most 20 pages.
    let one = "{ myRepositories { name } }";
    let body = w.query(Some(&alice), one).await;
    assert!(body["data"]["myRepositories"].is_array(), "{body}");
    let before = w.gitea.requests();
    w.query(Some(&alice), one).await;
    let single = w.gitea.requests() - before;
    let before = w.gitea.requests();
    let body = w
        .query(
            Some(&alice),
            &format!("{{ {} }}", aliases(10, "myRepositories { name }")),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["e0"], body["data"]["e9"]);
    let ten = w.gitea.requests() - before;
    println!("unpaged myRepositories: 1 alias {single}, 10 aliases {ten} Gitea requests");
    assert_eq!(ten, single, "the list is read once per request");
    assert!(ten <= codeserver_service::graphql::MAX_REPOSITORY_PAGES);
}

#[tokio::test]
async fn a_callers_reads_spend_their_own_budget_of_kubernetes_calls() {
    let w = World::start().await;
    let alice = w.token("alice");
    provisioned(&w, &alice).await;
    let bob = w.token("bob");
    provisioned(&w, &bob).await;
    let sim = w.sim();
    sim.reset_requests();
    let query = "{ myCodeServers { events { reason } } }";
    let mut refused = None;
    for n in 0..100 {
        let body = w.query(Some(&alice), query).await;
        if !body["errors"].is_null() {
            refused = Some((n, body));
            break;
        }
    }
    let lists = sim.count("list", "events");
    println!("100 requests of one caller: {lists} Kubernetes event lists");
    let (n, body) = refused.expect("alice is refused once her budget is spent");
    assert_eq!(error_of(&body), ("rate limited", "RATE_LIMITED"), "{body}");
    assert!(n >= 10, "refused after {n} requests");
    let burst = codeserver_service::graphql::DEFAULT_READ_CALLS_BURST as usize;
    assert!(lists <= burst + 10, "{lists} lists");
    // Bob's reads are his own.
    let body = w.query(Some(&bob), query).await;
    assert!(body["errors"].is_null(), "{body}");
}

/// 1,000 lines of 1,000 bytes of `byte`: just under the 1 MiB log cap.
fn log_of(byte: char) -> Vec<String> {
    (0..1_000)
        .map(|i| format!("{i:04}{}", byte.to_string().repeat(996)))
        .collect()
}

/// The largest answer a log can give: 1,000 lines of 1,000 bytes, 580 of each escaped
/// six-fold in JSON: about 3.9 MB, just under `MAX_RESPONSE_BYTES`.
fn largest_log() -> Vec<String> {
    (0..1_000)
        .map(|i| format!("{i:04}{}{}", "\u{1}".repeat(580), "x".repeat(416)))
        .collect()
}

fn set_logs(w: &World, id: &str, lines: &[String]) {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    w.sim().set_logs(NS, id, "code-server", &refs);
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_refused_with_its_own_code() {
    let w = World::start().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    // Every byte a control character: JSON escapes each one as six.
    set_logs(&w, &id, &log_of('\u{1}'));
    let query = format!("{{ codeServerLogs(id: \"{id}\", lines: 10000) }}");
    let response = w
        .request(reqwest::Method::POST, "/graphql")
        .bearer_auth(&alice)
        .json(&json!({"query": query}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    println!(
        "a 1 MiB log of control bytes: {} bytes answered",
        bytes.len()
    );
    assert!(
        bytes.len() <= http::MAX_RESPONSE_BYTES,
        "{} bytes",
        bytes.len()
    );
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        error_of(&body),
        ("response too large", "RESPONSE_TOO_LARGE"),
        "{body}"
    );
    // A printable 1 MiB log still fits.
    set_logs(&w, &id, &log_of('x'));
    let body = w.query(Some(&alice), &query).await;
    assert!(
        body["data"]["codeServerLogs"].is_string(),
        "{}",
        body["errors"]
    );
}

/// A raw client with a tiny receive window that sends `query` as `token`'s user and reads
/// only the head of the answer: the rest stays unread, as a slow reader's would.
async fn slow_reader(w: &World, token: &str, query: &str) -> (tokio::net::TcpStream, String) {
    let addr: std::net::SocketAddr = w.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4 * 1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let body = json!({ "query": query }).to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "the answer's head"
        );
        head.push(byte[0]);
    }
    (stream, String::from_utf8_lossy(&head).into_owned())
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length")
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_holds_its_slot_until_it_reads_and_is_cut_off_after_the_timeout() {
    let timeout = http::ServerLimits::default().header_read_timeout;
    let w = World::builder()
        .api(http::ApiSettings {
            max_requests_per_caller: 1,
            ..http::ApiSettings::default()
        })
        .start()
        .await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    // NB: larger than what the loopback connection's socket buffers take by themselves.
    set_logs(&w, &id, &largest_log());
    let query = format!("{{ codeServerLogs(id: \"{id}\", lines: 10000) }}");
    let (mut stalled, head) = slow_reader(&w, &alice, &query).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length = content_length(&head);
    assert!(length > 3_000_000, "{length}");
    // The first answer is unread: alice's one slot is still taken.
    let (status, body) = w.post(Some(&alice), &json!({"query": "{ health }"})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        error_of(&body),
        ("too many concurrent requests", "TOO_MANY_REQUESTS")
    );
    // Another caller is not held back.
    let bob = w.token("bob");
    let (status, _) = w.post(Some(&bob), &json!({"query": "{ health }"})).await;
    assert_eq!(status, 200);
    // After the write timeout (paused clock) the connection is cut and the slot is free.
    tokio::time::sleep(timeout + Duration::from_secs(1)).await;
    let (status, body) = w.post(Some(&alice), &json!({"query": "{ health }"})).await;
    assert_eq!(status, 200, "{body}");
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest).await;
    assert!(rest.len() < length, "{} of {length} bytes", rest.len());
}

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(start_paused = true)]
async fn slow_readers_of_the_largest_answers_hold_bounded_memory() {
    let max = http::ApiSettings::default().max_requests_per_caller;
    let w = World::start().await;
    let alice = w.token("alice");
    let id = provisioned(&w, &alice).await;
    set_logs(&w, &id, &largest_log());
    let query = format!("{{ codeServerLogs(id: \"{id}\", lines: 10000) }}");
    let before = rss_kib();
    let mut held = Vec::new();
    for _ in 0..max {
        let (stream, head) = slow_reader(&w, &alice, &query).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length = content_length(&head);
        assert!(length <= http::MAX_RESPONSE_BYTES, "{length}");
        held.push((stream, length));
    }
    let after = rss_kib();
    let answers: usize = held.iter().map(|(_, length)| length).sum();
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "{max} slow readers of one caller: {answers} answer bytes held, RSS {before} KiB -> {after} KiB ({} KiB more)",
            after.saturating_sub(before)
        );
    }
    // A fifth connection of the same caller is refused: at most `max` answers are held.
    let (status, body) = w.post(Some(&alice), &json!({"query": query})).await;
    assert_eq!(status, 429, "{}", error_of(&body).0);
    assert!(answers <= max * http::MAX_RESPONSE_BYTES);
}
