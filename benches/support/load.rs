//! Load on the service for the benches: `requests` requests from `clients` concurrent
//! clients, their latencies and bad answers ([`load`], [`load_gets`], [`Report`]), either in
//! this process or in a child process of its own ([`load_in_child`],
//! [`load_gets_in_child`]); sizes from the environment ([`env_or`]).
//!
//! Two kinds of run: GraphQL POSTs with the clients' bearer tokens ([`Spec`]), and GETs
//! each naming its own `Host` and carrying one header of its own, a cookie or a token,
//! answered with an expected status ([`Gets`] of [`Ask`]s: the gateway's ext_authz checks).
//!
//! Each client is one HTTP/1.1 connection driven by hyper's connection API directly (no
//! pool, no redirects, each request's headers built from values prepared before the clock
//! starts), connected before the clock starts: what is measured is the server's answer,
//! with as little of the clients' own work as a load generator can have.
//!
//! Include it with `#[path = "support/load.rs"] mod load;`.

// NB: each bench compiles this module and uses only part of it.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Set in a load child: the path of its [`Spec`] or [`Gets`].
pub const LOAD_SPEC: &str = "BENCH_LOAD_SPEC";

/// The number in the environment variable `name`, else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one load run measured.
#[derive(Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    /// The latencies of the good answers, sorted.
    pub latencies: Vec<Duration>,
    /// Requests that failed or answered with an error (or not as expected).
    pub errors: usize,
    /// The first of those, as text.
    pub first_error: Option<String>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// A run that sent nothing: every request counts as failed with `error`.
    fn failed(name: &str, requests: usize, error: String) -> Self {
        eprintln!("{name}: {error}");
        Self {
            name: name.to_owned(),
            latencies: Vec::new(),
            errors: requests.max(1),
            first_error: Some(error),
            elapsed: Duration::ZERO,
        }
    }

    /// The latency at `p` (0 to 1) of the good answers; zero when there were none.
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    /// `p50 X ms / p99 Y ms` of the good answers.
    pub fn p50_p99(&self) -> String {
        format!(
            "p50 {:.2} ms / p99 {:.2} ms",
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99))
        )
    }

    /// Every request sent.
    pub fn requests(&self) -> usize {
        self.latencies.len() + self.errors
    }

    /// Requests per second over the whole run.
    pub fn per_second(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64()
    }

    /// One line: requests, clients, requests/s, p50, p99, errors.
    pub fn print(&self, clients: usize) {
        println!(
            "{:<14} {:>6} requests  {:>3} clients  {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            self.name,
            self.requests(),
            clients,
            self.per_second(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            self.errors,
        );
    }
}

/// The value at `p` (0 to 1) of `sorted` (nearest rank); zero when it is empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What makes an answer good. For a GraphQL answer: HTTP 2xx, a JSON body without
/// `errors`, and a check on the value at a JSON pointer. For any answer: its status (and
/// a header it must carry).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Expect {
    /// A GraphQL answer whose value at `at` is `value`.
    Equals { at: String, value: Value },
    /// A GraphQL answer whose value at `at` is an array of `len` elements.
    Length { at: String, len: usize },
    /// An answer with status `status` that carries the header `header` when one is named
    /// (the body is read, not looked at).
    Status { status: u16, header: Option<String> },
}

impl Expect {
    /// Why the answer (`status`, `headers`, `body`) is not as expected, if it is not.
    fn check(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
        if let Expect::Status {
            status: want,
            header,
        } = self
        {
            if status.as_u16() != *want {
                let body = String::from_utf8_lossy(body);
                return Err(format!("{status}, not {want}: {body}"));
            }
            if let Some(name) = header
                && !headers.contains_key(name.as_str())
            {
                return Err(format!("{status} without the header {name}"));
            }
            return Ok(());
        }
        let answer: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if status.is_success() && answer["errors"].is_null() && self.holds(&answer) {
            Ok(())
        } else {
            Err(format!("{status} {answer}"))
        }
    }

    /// Whether the GraphQL `answer` holds.
    fn holds(&self, answer: &Value) -> bool {
        match self {
            Expect::Equals { at, value } => answer.pointer(at) == Some(value),
            Expect::Length { at, len } => answer
                .pointer(at)
                .and_then(Value::as_array)
                .is_some_and(|a| a.len() == *len),
            Expect::Status { .. } => true,
        }
    }
}

/// One load run: `requests` POSTs of `query` to `url` from `clients` concurrent clients;
/// request `i` uses `tokens[i % n]`; an answer is good when `expect` holds for it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    pub url: String,
    pub query: String,
    pub clients: usize,
    pub requests: usize,
    pub expect: Expect,
}

/// One load run of GETs: `requests` GETs of `url` from `clients` concurrent clients;
/// request `i` is sent as `asks[i % n]` says (see [`Ask`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct Gets {
    pub name: String,
    /// Where the clients connect, and the path and query of every request.
    pub url: String,
    pub clients: usize,
    pub requests: usize,
}

/// One GET of a [`Gets`] run: the `Host` it names (not the `url`'s), the one header of its
/// own it carries (a cookie or a bearer token), and what makes its answer good.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ask {
    pub host: String,
    /// The header's name.
    pub header: String,
    /// The header's value.
    pub value: String,
    pub expect: Expect,
}

/// The clients' bearer tokens, each as the `Authorization` value it is sent as.
pub struct Tokens(Arc<[HeaderValue]>);

impl Tokens {
    /// The header values of `tokens`.
    pub fn new(tokens: &[String]) -> Result<Self, String> {
        let values = tokens
            .iter()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() {
            return Err("no tokens".to_owned());
        }
        Ok(Self(values.into()))
    }

    /// The tokens written one per line in `path`.
    fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let tokens: Vec<String> = text.lines().map(str::to_owned).collect();
        Self::new(&tokens)
    }
}

/// The tokens a load child reads: written once to a file, for as many runs as use them.
pub struct TokenFile {
    path: PathBuf,
    // NB: the directory lives as long as the file is named.
    _dir: tempfile::TempDir,
}

impl TokenFile {
    /// `tokens`, one per line, in a new temporary file.
    pub fn write(tokens: &[String]) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tokens");
        std::fs::write(&path, tokens.join("\n"))?;
        Ok(Self { path, _dir: dir })
    }
}

/// The [`Ask`]s a load child reads: written once to a file, as JSON.
pub struct AskFile {
    path: PathBuf,
    // NB: the directory lives as long as the file is named.
    _dir: tempfile::TempDir,
}

impl AskFile {
    /// `asks` in a new temporary file.
    pub fn write(asks: &[Ask]) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("asks.json");
        std::fs::write(&path, serde_json::to_vec(asks)?)?;
        Ok(Self { path, _dir: dir })
    }

    /// The asks written in `path`.
    fn read(path: &Path) -> Result<Vec<Ask>, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// One request's own parts, prepared before the clock starts.
struct Prepared {
    /// The `Host` header.
    host: HeaderValue,
    /// The one other header of its own (`Authorization` or `Cookie`).
    name: HeaderName,
    value: HeaderValue,
    expect: Arc<Expect>,
}

/// Where the clients send their requests, and what: request `i` is `requests[i % n]`.
struct Work {
    /// `host:port`, to connect to.
    address: String,
    /// The path and query, as each request's URI.
    uri: Uri,
    method: Method,
    /// The JSON body, if any.
    body: Option<Bytes>,
    requests: Vec<Prepared>,
}

impl Work {
    /// The address to connect to, the path and query, and the `Host` of `url`.
    fn at(url: &str) -> Result<(String, Uri, HeaderValue), String> {
        let uri: Uri = url.parse().map_err(|e| format!("the URL {url:?}: {e}"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("the URL {url:?} names no host"))?;
        let address = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("the URL's path: {e}"))?;
        Ok((address, path, host))
    }

    /// `spec`'s POSTs, with `tokens`.
    fn posts(spec: &Spec, tokens: &Tokens) -> Result<Self, String> {
        let (address, uri, host) = Self::at(&spec.url)?;
        let expect = Arc::new(spec.expect.clone());
        let requests = tokens
            .0
            .iter()
            .map(|token| Prepared {
                host: host.clone(),
                name: header::AUTHORIZATION,
                value: token.clone(),
                expect: expect.clone(),
            })
            .collect();
        Ok(Self {
            address,
            uri,
            method: Method::POST,
            body: Some(Bytes::from(json!({ "query": spec.query }).to_string())),
            requests,
        })
    }

    /// `spec`'s GETs, as `asks` say.
    fn gets(spec: &Gets, asks: &[Ask]) -> Result<Self, String> {
        let (address, uri, _) = Self::at(&spec.url)?;
        if asks.is_empty() {
            return Err("no asks".to_owned());
        }
        let requests = asks
            .iter()
            .map(|ask| {
                Ok(Prepared {
                    host: HeaderValue::from_str(&ask.host).map_err(|e| e.to_string())?,
                    name: HeaderName::from_bytes(ask.header.as_bytes())
                        .map_err(|e| e.to_string())?,
                    value: HeaderValue::from_str(&ask.value).map_err(|e| e.to_string())?,
                    expect: Arc::new(ask.expect.clone()),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            address,
            uri,
            method: Method::GET,
            body: None,
            requests,
        })
    }

    /// A connection to the target, its driver spawned on the current runtime.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.address))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {}: {e}", self.address))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Request `i` on `sender`; its latency when the answer is good.
    async fn send(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        i: usize,
    ) -> Result<Duration, String> {
        let prepared = &self.requests[i % self.requests.len()];
        let sent = Instant::now();
        sender.ready().await.map_err(|e| e.to_string())?;
        let request = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .header(header::HOST, prepared.host.clone())
            .header(prepared.name.clone(), prepared.value.clone());
        let request = match &self.body {
            Some(body) => request
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .body(Full::new(body.clone())),
            None => request.body(Full::new(Bytes::new())),
        }
        .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (answer, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let latency = sent.elapsed();
        prepared
            .expect
            .check(answer.status, &answer.headers, &body)
            .map(|()| latency)
    }
}

/// Sends `spec`'s requests from this process, each client in its own task; the first bad
/// answer is printed on stderr.
pub async fn load(spec: &Spec, tokens: &Tokens) -> Report {
    match Work::posts(spec, tokens) {
        Ok(work) => drive(&spec.name, spec.clients, spec.requests, work).await,
        Err(error) => Report::failed(&spec.name, spec.requests, error),
    }
}

/// Sends `spec`'s GETs, as `asks` say, from this process, each client in its own task;
/// the first bad answer is printed on stderr.
pub async fn load_gets(spec: &Gets, asks: &[Ask]) -> Report {
    match Work::gets(spec, asks) {
        Ok(work) => drive(&spec.name, spec.clients, spec.requests, work).await,
        Err(error) => Report::failed(&spec.name, spec.requests, error),
    }
}

/// Sends `requests` of `work` from `clients` clients, each in its own task.
async fn drive(name: &str, clients: usize, requests: usize, work: Work) -> Report {
    let work = Arc::new(work);
    let mut senders = Vec::with_capacity(clients.max(1));
    for _ in 0..clients.max(1) {
        match work.connect().await {
            Ok(sender) => senders.push(sender),
            Err(error) => return Report::failed(name, requests, error),
        }
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut sender in senders {
        let (work, next) = (work.clone(), next.clone());
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return outcomes;
                }
                let outcome = work.send(&mut sender, i).await;
                let broken = outcome.is_err() && sender.is_closed();
                outcomes.push(outcome);
                if broken {
                    match work.connect().await {
                        Ok(fresh) => sender = fresh,
                        Err(error) => {
                            // NB: the request that broke the connection is counted; this
                            // client sends no more.
                            eprintln!("a client could not reconnect: {error}");
                            return outcomes;
                        }
                    }
                }
            }
        });
    }
    let mut outcomes: Vec<Result<Duration, String>> = Vec::with_capacity(requests);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(some) => outcomes.extend(some),
            Err(error) => outcomes.push(Err(format!("a client task failed: {error}"))),
        }
    }
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(requests);
    let (mut errors, mut first_error) = (0, None);
    for outcome in outcomes {
        match outcome {
            Ok(latency) => latencies.push(latency),
            Err(error) => {
                if first_error.is_none() {
                    eprintln!("{name}: first error: {error:.300}");
                    first_error = Some(error);
                }
                errors += 1;
            }
        }
    }
    latencies.sort();
    Report {
        name: name.to_owned(),
        latencies,
        errors,
        first_error,
        elapsed,
    }
}

/// What a load child is given: its run and the file it reads the requests' own parts from.
#[derive(Serialize, Deserialize)]
enum Written {
    Posts { spec: Spec, tokens: PathBuf },
    Gets { spec: Gets, asks: PathBuf },
}

/// Sends `spec`'s requests from a child process (this bench run again with [`LOAD_SPEC`]
/// set, on a single-threaded runtime), so that the clients' work is not done by the
/// measured process's threads; the child's report.
pub async fn load_in_child(spec: &Spec, tokens: &TokenFile) -> Report {
    let written = Written::Posts {
        spec: spec.clone(),
        tokens: tokens.path.clone(),
    };
    match child(&written).await {
        Ok(report) => report,
        Err(error) => Report::failed(&spec.name, spec.requests, error),
    }
}

/// Sends `spec`'s GETs, as `asks` say, from a child process (see [`load_in_child`]); the
/// child's report.
pub async fn load_gets_in_child(spec: &Gets, asks: &AskFile) -> Report {
    let written = Written::Gets {
        spec: spec.clone(),
        asks: asks.path.clone(),
    };
    match child(&written).await {
        Ok(report) => report,
        Err(error) => Report::failed(&spec.name, spec.requests, error),
    }
}

async fn child(written: &Written) -> Result<Report, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("spec.json");
    let text = serde_json::to_string(written).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // NB: `output()` would capture stderr too (tokio's pipes both), hiding the child's
    // first bad answer; only stdout, the report, is read.
    let output = tokio::process::Command::new(exe)
        .env(LOAD_SPEC, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| format!("running the load child: {e}"))?
        .wait_with_output()
        .await
        .map_err(|e| format!("running the load child: {e}"))?;
    if !output.status.success() {
        return Err(format!("the load child failed: {}", output.status));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("the load child's report: {e}"))
}

/// The load child's whole work, when this process is one (its [`LOAD_SPEC`] is set): runs
/// the spec and prints the report as JSON on stdout. `None` when this is not a load child.
pub fn run_child() -> Option<std::process::ExitCode> {
    let path = std::env::var_os(LOAD_SPEC)?;
    let outcome = (|| -> Result<Report, String> {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let written: Written = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(match written {
            Written::Posts { spec, tokens } => {
                let tokens = Tokens::read(&tokens)?;
                runtime.block_on(load(&spec, &tokens))
            }
            Written::Gets { spec, asks } => {
                let asks = AskFile::read(&asks)?;
                runtime.block_on(load_gets(&spec, &asks))
            }
        })
    })();
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            eprintln!("load child: {error}");
            return Some(std::process::ExitCode::FAILURE);
        }
    };
    match serde_json::to_string(&report) {
        Ok(json) => {
            println!("{json}");
            Some(std::process::ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("load child: the report: {error}");
            Some(std::process::ExitCode::FAILURE)
        }
    }
}
