//! Scale benchmark: the service with 10,000 instances in the simulated cluster, which runs
//! in a child process (see `support/cluster.rs`), so the memory and CPU measured here are
//! the service's. Prints each figure beside its target from issue 14; fails (exit code 1)
//! on any error answer or failed call, never on a figure.
//!
//! 1. Seeds the instances through a reconciler in another child process (this bench run
//!    again with `SCALE_SEED_KUBECONFIG` set), so seeding leaves nothing in this process.
//! 2. Starts the service (client, discovery, reconciler, `serve::assemble`'s routes on
//!    127.0.0.1) and times start to the first `/ready` 200; reads every instance once
//!    (`instanceStats`) and reports resident memory.
//! 3. `myCodeServers` once per user (each token's signature checked on its first use),
//!    then `myCodeServers` and `health` under `CLIENTS` concurrent clients, sent from
//!    another child process (this bench run again, see `support/load.rs`); `instanceStats`
//!    one request at a time; no-op re-provisions of existing instances through the
//!    reconciler (service time and Kubernetes API calls, counted in
//!    `codeserver_kube_requests_total`); a storm of fresh provisions, 64 at a time.
//! 4. The workspace gatekeeper's ext_authz checks (`routes.ext_authz` on a listener of its
//!    own, as the ingress gateway asks it: `GET /ext-authz/` with the workspace host as
//!    `Host`), under `CLIENTS` clients from a load child: each owner with their workspace
//!    session cookie on their own host (200), each user's bearer token on their own host
//!    (200; each token checked once before the clock), and a mix of these with users'
//!    tokens (403) and cookies (401) on other users' hosts; with the Kubernetes API calls
//!    made meanwhile (none are expected: the checks are answered from the caches).
//!
//! `cargo bench --bench scale`; INSTANCES (10000), CLIENTS (50), REQUESTS (100000), STORM
//! (1000) and STORM_CONCURRENCY (64) override the sizes.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/load.rs"]
mod load;
#[path = "../tests/support/world.rs"]
mod world;

use std::{
    collections::BTreeMap,
    error::Error,
    path::Path,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use codeserver_service::{
    config::Secret,
    gate::{EXT_AUTHZ_PREFIX, GateSettings, Principal, Seal, WORKSPACE_COOKIE, WorkspaceSession},
    http as service_http,
    metrics::Metrics,
    naming,
    reconcile::{Kinds, Reconciler, Timeouts},
    serve,
    values::{Owner, Repo},
};
use codeserver_sim::{
    gitea::SimGitea,
    issuer::{Issuer, TokenSpec},
};
use futures::{StreamExt, stream};
use load::{
    Ask, AskFile, Expect, Gets, Report, Spec, TokenFile, env_or, load_gets_in_child, load_in_child,
    ms,
};

// NB: the service binary's allocator, so the memory figures are what the service uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set in the seeding child: the simulated cluster's kubeconfig.
const SEED_KUBECONFIG: &str = "SCALE_SEED_KUBECONFIG";
/// Set in the seeding child: the issuer named in the instances' access policies.
const SEED_ISSUER: &str = "SCALE_SEED_ISSUER";
/// Set in the seeding child: how many instances to create.
const SEED_COUNT: &str = "SCALE_SEED_COUNT";
/// Provisions in flight while seeding.
const SEED_CONCURRENCY: usize = 128;
/// Sequential `instanceStats` requests.
const STATS_REQUESTS: usize = 20;
/// Sequential reads of one user's instances through the reconciler.
const LISTS: usize = 1_000;
/// Sequential no-op re-provisions.
const NOOPS: usize = 200;
/// How long the service may take to answer `/ready` with 200.
const READY_LIMIT: Duration = Duration::from_secs(120);
/// The gatekeeper's session key (SESSION_KEYS), which seals the workspace cookies.
const SESSION_KEY: &str = "the-scale-bench-session-key-of-32-bytes-or-more";
/// The header an allowing check answer carries (Envoy removes the headers it lists).
const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

type BoxError = Box<dyn Error + Send + Sync>;

/// The repository every instance has.
fn repo() -> Result<Repo, BoxError> {
    Ok(Repo::new(
        "devteam",
        "backend-api",
        "http://gitea:3000/devteam/backend-api.git",
    )?)
}

/// The seeded user `i`.
fn user(i: usize) -> String {
    format!("user-{i:05}")
}

/// `user`'s owner, with the `sub` the issuer puts in `user`'s tokens (instances belong
/// to the token's subject).
fn owner(user: &str) -> Owner {
    Owner {
        sub: Some(TokenSpec::new(user).sub),
        ..Owner::new(user.to_owned())
    }
}

/// A reconciler on `client`'s cluster, with discovered kinds, access policies for
/// `issuer` and the service's default timeouts.
async fn reconciler(client: kube::Client, issuer: &str) -> Result<Arc<Reconciler>, BoxError> {
    let kinds = Kinds::discover(&client).await?;
    Ok(world::ReconcilerBuilder::on(client)
        .kinds(kinds)
        .jwt_issuer(issuer)
        .timeouts(Timeouts::default())
        .build())
}

/// Provisions `users`' instances through `reconciler`, `concurrency` at a time (waiting
/// for readiness when `wait`); the elapsed time, or the first failure.
async fn provision_all(
    reconciler: &Arc<Reconciler>,
    users: &[String],
    concurrency: usize,
    wait: bool,
) -> Result<Duration, BoxError> {
    let repo = repo()?;
    let started = Instant::now();
    let outcomes: Vec<_> = stream::iter(users)
        .map(|user| {
            let (reconciler, repo) = (reconciler.clone(), repo.clone());
            async move { reconciler.provision_with(&owner(user), repo, wait).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    match outcomes.into_iter().find_map(Result::err) {
        Some(first) => Err(format!("{failed} provisions failed; the first: {first}").into()),
        None => Ok(elapsed),
    }
}

/// The seeding child: `SEED_COUNT` instances on the cluster of `kubeconfig`.
async fn seed(kubeconfig: &Path) -> Result<(), BoxError> {
    let issuer = std::env::var(SEED_ISSUER)?;
    let count: usize = std::env::var(SEED_COUNT)?.parse()?;
    let client = kube::Client::try_from(serve::kube_config(Some(kubeconfig)).await?)?;
    let reconciler = reconciler(client, &issuer).await?;
    let users: Vec<String> = (0..count).map(user).collect();
    provision_all(&reconciler, &users, SEED_CONCURRENCY, false).await?;
    Ok(())
}

/// Runs this bench again as the seeding child; the time it took.
async fn seed_in_child(
    cluster: &cluster::Cluster,
    issuer: &Issuer,
    count: usize,
) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let status = tokio::process::Command::new(std::env::current_exe()?)
        .env(SEED_KUBECONFIG, cluster.kubeconfig())
        .env(SEED_ISSUER, issuer.issuer_url())
        .env(SEED_COUNT, count.to_string())
        .status()
        .await?;
    if !status.success() {
        return Err(format!("seeding failed: {status}").into());
    }
    Ok(started.elapsed())
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory_mib() -> Result<(f64, f64), BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<f64, BoxError> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/self/status"))?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| format!("no value in {line:?}"))?
            .parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// `codeserver_kube_requests_total` by verb, read from the service's `/metrics`.
async fn kube_calls(http: &reqwest::Client, base: &str) -> Result<BTreeMap<String, f64>, BoxError> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("codeserver_kube_requests_total{") else {
            continue;
        };
        let (labels, value) = labels
            .rsplit_once("} ")
            .ok_or_else(|| format!("unreadable metric line {line:?}"))?;
        let verb = labels
            .split(',')
            .find_map(|label| label.strip_prefix("verb=\""))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or("?");
        *calls.entry(verb.to_owned()).or_insert(0.0) += value.trim().parse::<f64>()?;
    }
    Ok(calls)
}

/// The calls in `after` that were not in `before`, by verb, and their total.
fn calls_between(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> (f64, String) {
    let mut total = 0.0;
    let mut by_verb = Vec::new();
    for (verb, count) in after {
        let made = count - before.get(verb).copied().unwrap_or(0.0);
        if made > 0.0 {
            total += made;
            by_verb.push(format!("{verb} {made}"));
        }
    }
    (total, by_verb.join(", "))
}

/// The figures, printed as a table at the end.
#[derive(Default)]
struct Figures(Vec<[String; 3]>);

impl Figures {
    fn add(&mut self, what: impl Into<String>, result: impl Into<String>, target: &str) {
        let row = [what.into(), result.into(), target.to_owned()];
        println!("  {}: {} (target {})", row[0], row[1], row[2]);
        self.0.push(row);
    }

    fn print(&self) {
        println!();
        println!("{:<60} {:<36} target", "figure", "result");
        for [what, result, target] in &self.0 {
            println!("{what:<60} {result:<36} {target}");
        }
    }
}

/// The errors of `report`, as a failure when there were any.
fn no_errors(report: &Report) -> Result<(), BoxError> {
    match report.errors {
        0 => Ok(()),
        n => Err(format!(
            "{}: {n} error answers; the first: {:.300}",
            report.name,
            report.first_error.as_deref().unwrap_or("?")
        )
        .into()),
    }
}

/// Runs `spec` from a load child with `tokens` and prints its line; its report, or a
/// failure when any answer was bad.
async fn measure(spec: &Spec, tokens: &TokenFile) -> Result<Report, BoxError> {
    let report = load_in_child(spec, tokens).await;
    report.print(spec.clients);
    no_errors(&report)?;
    Ok(report)
}

/// Runs `spec`'s GETs from a load child as `asks` say and prints its line; its report, or
/// a failure when any answer was bad.
async fn measure_gets(spec: &Gets, asks: &[Ask]) -> Result<Report, BoxError> {
    let file = AskFile::write(asks)?;
    let report = load_gets_in_child(spec, &file).await;
    report.print(spec.clients);
    no_errors(&report)?;
    Ok(report)
}

/// `user`'s workspace host, `code-<safe name>.<base_domain>`.
fn workspace_host(user: &str, base_domain: &str) -> Result<String, BoxError> {
    Ok(format!("code-{}.{base_domain}", naming::safe_name(user)?))
}

/// Who `user` is to the gatekeeper: their token's `sub` and their user id.
fn principal(user: &str) -> Principal {
    Principal {
        sub: TokenSpec::new(user).sub,
        uid: user.to_owned(),
        adm: false,
    }
}

/// The check of a workspace host as the gatekeeper answers it to its owner.
fn allowed() -> Expect {
    Expect::Status {
        status: 200,
        header: Some(HEADERS_TO_REMOVE.to_owned()),
    }
}

/// `report`'s p50 / p99 and throughput, as two figures against the checks' targets.
fn check_figures(figures: &mut Figures, what: &str, clients: usize, report: &Report) {
    figures.add(
        format!("ext_authz check ({what}) p50 / p99 ({clients} clients)"),
        report.p50_p99(),
        "p99 <= 1 ms",
    );
    figures.add(
        format!("ext_authz check ({what}) throughput ({clients} clients)"),
        format!("{:.0} checks/s", report.per_second()),
        ">= 20,000 checks/s",
    );
}

async fn run() -> Result<(), BoxError> {
    let instances = env_or("INSTANCES", 10_000);
    let clients = env_or("CLIENTS", 50);
    let requests = env_or("REQUESTS", 100_000);
    let storm = env_or("STORM", 1_000);
    let storm_concurrency = env_or("STORM_CONCURRENCY", 64);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "scale: {instances} instances, {clients} clients, {requests} requests, storm {storm} \
         ({storm_concurrency} at a time), {cores} cores; the simulated cluster in a child process"
    );
    let mut figures = Figures::default();

    codeserver_service::install_crypto();
    let cluster = cluster::Cluster::start().await?;
    let issuer = Arc::new(Issuer::start().await?);
    let gitea = SimGitea::start(issuer.clone()).await?;
    let seeded = seed_in_child(&cluster, &issuer, instances).await?;
    println!(
        "seeded {instances} instances in {:.1} s (in a child process)",
        seeded.as_secs_f64()
    );

    // The service: from nothing to the first `/ready` 200.
    let (harness, _) = memory_mib()?;
    let started = Instant::now();
    let metrics = Metrics::new()?;
    let client = serve::counted_client(cluster.config().await?, &metrics)?;
    let reconciler = reconciler(client, &issuer.issuer_url()).await?;
    let base_domain = reconciler.settings().base_domain.clone();
    let mut parts =
        world::serving::simulated_parts(reconciler.clone(), &issuer, &gitea.url(), metrics);
    parts.gate = GateSettings {
        session_keys: vec![Secret::new(SESSION_KEY)],
        base_domain: base_domain.clone(),
        ..GateSettings::default()
    };
    let routes = serve::assemble(parts)?;
    let (check, server) = (routes.ext_authz.clone(), routes.server);
    let (base, _stop) = world::serving::serve_routes(routes).await;
    // The check listener (EXT_AUTHZ_PORT), reached only by the ingress gateway.
    let check_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let check_url = format!("http://{}{EXT_AUTHZ_PREFIX}/", check_listener.local_addr()?);
    let (_stop_checks, checks_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service_http::serve_with(
        check_listener,
        check,
        async {
            let _ = checks_stopped.await;
        },
        Duration::from_secs(1),
        server,
    ));
    let http = reqwest::Client::new();
    loop {
        let ready = http.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
            break;
        }
        if started.elapsed() > READY_LIMIT {
            return Err(format!("not ready {READY_LIMIT:?} after start").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    figures.add(
        "start to ready (/ready 200)",
        format!("{:.2} s", started.elapsed().as_secs_f64()),
        "<= 10 s",
    );

    let url = format!("{base}/graphql");
    let users: Vec<String> = (0..instances).map(user).collect();
    let admin =
        TokenFile::write(&[issuer.mint(&TokenSpec::new("scale-admin").roles(&["admin"]))?])?;
    let one_each = Expect::Length {
        at: "/data/myCodeServers".to_owned(),
        len: 1,
    };
    let all_counted = Expect::Equals {
        at: "/data/instanceStats/totalInstances".to_owned(),
        value: instances.into(),
    };
    let spec = |name: &str, query: &str, clients: usize, requests: usize, expect: &Expect| Spec {
        name: name.to_owned(),
        url: url.clone(),
        query: query.to_owned(),
        clients,
        requests,
        expect: expect.clone(),
    };
    const MINE: &str = "{ myCodeServers { id status url } }";
    const STATS: &str =
        "{ instanceStats { totalInstances runningInstances stoppedInstances totalStorageUsed } }";

    // Every instance read once (instanceStats reads them all), then the memory.
    let warm = spec("instanceStats", STATS, 1, 1, &all_counted);
    no_errors(&load_in_child(&warm, &admin).await)?;
    let (rss, hwm) = memory_mib()?;
    figures.add(
        "resident memory after ready and a first instanceStats",
        format!("{rss:.1} MiB (peak {hwm:.1} MiB; {harness:.1} MiB before the service started)"),
        "<= 150 MiB",
    );

    // NB: the clients' tokens are the clients' memory, minted after the service's is read.
    let minted = users
        .iter()
        .map(|u| issuer.mint(&TokenSpec::new(u)))
        .collect::<Result<Vec<_>, _>>()?;
    let tokens = TokenFile::write(&minted)?;
    // Each token's first request: its signature is checked, then remembered until it
    // expires, as clients send the same token for many requests.
    let first = measure(
        &spec("myCodeServers/1st", MINE, clients, instances, &one_each),
        &tokens,
    )
    .await?;
    figures.add(
        format!("myCodeServers, each token's first request ({clients} clients)"),
        format!("{:.0} req/s, {}", first.per_second(), first.p50_p99()),
        "(figure only)",
    );

    let mine = measure(
        &spec("myCodeServers", MINE, clients, requests, &one_each),
        &tokens,
    )
    .await?;
    figures.add(
        format!("myCodeServers p50 / p99 ({clients} clients)"),
        mine.p50_p99(),
        "p99 <= 5 ms",
    );
    figures.add(
        format!("myCodeServers throughput ({clients} clients)"),
        format!("{:.0} req/s", mine.per_second()),
        ">= 5,000 req/s",
    );

    // What one myCodeServers costs the reconciler, without HTTP and GraphQL.
    let mut times = Vec::with_capacity(LISTS);
    for i in 0..LISTS.min(instances) {
        let user = user(i * instances / LISTS.min(instances));
        let sent = Instant::now();
        let listed = reconciler.list(&owner(&user)).await?;
        times.push(sent.elapsed());
        if listed.len() != 1 {
            return Err(format!("{user} has {} instances, not 1", listed.len()).into());
        }
    }
    times.sort();
    if let (Some(p50), Some(max)) = (times.get(times.len() / 2), times.last()) {
        figures.add(
            format!(
                "myCodeServers in the reconciler, p50 / max ({} in a row)",
                times.len()
            ),
            format!(
                "{:.1} µs / {:.1} µs",
                p50.as_secs_f64() * 1e6,
                max.as_secs_f64() * 1e6
            ),
            "(figure only)",
        );
    }
    figures.add(
        "renders of instances to answer the reads so far",
        reconciler.renders().to_string(),
        "(figure only)",
    );

    let stats = measure(
        &spec("instanceStats", STATS, 1, STATS_REQUESTS, &all_counted),
        &admin,
    )
    .await?;
    figures.add(
        "instanceStats p50 / max (one at a time)",
        format!(
            "{:.2} ms / {:.2} ms",
            ms(stats.percentile(0.50)),
            ms(stats.percentile(1.0))
        ),
        "<= 20 ms",
    );

    let health = measure(
        &spec(
            "health",
            "{ health }",
            clients,
            requests,
            &Expect::Equals {
                at: "/data/health".to_owned(),
                value: true.into(),
            },
        ),
        &tokens,
    )
    .await?;
    figures.add(
        format!("health throughput ({clients} clients)"),
        format!("{:.0} req/s", health.per_second()),
        ">= 20,000 req/s",
    );

    // The gatekeeper's checks, as the ingress gateway sends them: every user's workspace
    // host, with their session cookie, then with their bearer token, then a mix with other
    // users' hosts.
    let hosts = users
        .iter()
        .map(|u| workspace_host(u, &base_domain))
        .collect::<Result<Vec<_>, _>>()?;
    let gets = |name: &str, requests: usize| Gets {
        name: name.to_owned(),
        url: check_url.clone(),
        clients,
        requests,
    };
    let before = kube_calls(&http, &base).await?;
    let cookies = {
        let seal = Seal::new(&[Secret::new(SESSION_KEY)])?.ok_or("no session key")?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let exp = now.as_secs() + 24 * 3600;
        users
            .iter()
            .zip(&hosts)
            .map(|(user, host)| {
                let session = WorkspaceSession::new(principal(user), host.clone(), exp);
                Ok(format!("{WORKSPACE_COOKIE}={}", seal.seal(&session)?))
            })
            .collect::<Result<Vec<_>, BoxError>>()?
    };
    let by_cookie: Vec<Ask> = hosts
        .iter()
        .zip(&cookies)
        .map(|(host, cookie)| Ask {
            host: host.clone(),
            header: "cookie".to_owned(),
            value: cookie.clone(),
            expect: allowed(),
        })
        .collect();
    let cookie = measure_gets(&gets("check/cookie", requests), &by_cookie).await?;
    check_figures(&mut figures, "cookie", clients, &cookie);

    let by_token: Vec<Ask> = hosts
        .iter()
        .zip(&minted)
        .map(|(host, token)| Ask {
            host: host.clone(),
            header: "authorization".to_owned(),
            value: format!("Bearer {token}"),
            expect: allowed(),
        })
        .collect();
    // NB: each token's first check; the API's requests above already verified them (the
    // check and the API share the verified tokens), so this only makes sure of it.
    let first = measure_gets(&gets("check/bearer/1st", instances), &by_token).await?;
    figures.add(
        format!("ext_authz check (bearer), each token's first check ({clients} clients)"),
        format!("{:.0} checks/s, {}", first.per_second(), first.p50_p99()),
        "(figure only)",
    );
    let bearer = measure_gets(&gets("check/bearer", requests), &by_token).await?;
    check_figures(&mut figures, "bearer", clients, &bearer);

    if instances >= 2 {
        // Of every four checks: an owner's cookie and an owner's token on their own host
        // (200), a user's token on the next user's host (403: not theirs) and a user's
        // cookie on the next user's host (401: the cookie is bound to its own host, so it
        // names nobody there).
        let mix: Vec<Ask> = (0..instances)
            .map(|i| {
                let other = hosts[(i + 1) % instances].clone();
                match i % 4 {
                    0 => by_cookie[i].clone(),
                    1 => by_token[i].clone(),
                    2 => Ask {
                        host: other,
                        expect: Expect::Status {
                            status: 403,
                            header: None,
                        },
                        ..by_token[i].clone()
                    },
                    _ => Ask {
                        host: other,
                        expect: Expect::Status {
                            status: 401,
                            header: Some("www-authenticate".to_owned()),
                        },
                        ..by_cookie[i].clone()
                    },
                }
            })
            .collect();
        let mixed = measure_gets(&gets("check/mix", requests), &mix).await?;
        figures.add(
            format!(
                "ext_authz check, mix (1/2 allowed, 1/4 403, 1/4 401), p50 / p99 ({clients} clients)"
            ),
            format!("{}, {:.0} checks/s", mixed.p50_p99(), mixed.per_second()),
            "(figure only)",
        );
    }
    let (calls, by_verb) = calls_between(&before, &kube_calls(&http, &base).await?);
    figures.add(
        "ext_authz checks, Kubernetes API calls during the checks",
        if calls > 0.0 {
            format!("{calls} ({by_verb})")
        } else {
            "0".to_owned()
        },
        "0",
    );

    // No-op re-provisions: existing instances, same repository, one at a time.
    let repo = repo()?;
    let mut times = Vec::with_capacity(NOOPS);
    let before = kube_calls(&http, &base).await?;
    for i in 0..NOOPS.min(instances) {
        let user = user(i * instances / NOOPS.min(instances));
        let sent = Instant::now();
        let provisioned = reconciler.provision(&owner(&user), repo.clone()).await?;
        times.push(sent.elapsed());
        if provisioned.is_new {
            return Err(format!("re-provisioning {user} created a new instance").into());
        }
    }
    let (calls, by_verb) = calls_between(&before, &kube_calls(&http, &base).await?);
    let first = times.first().copied().unwrap_or_default();
    times.sort();
    let noops = times.len().max(1);
    let at = |p: f64| load::percentile(&times, p);
    figures.add(
        format!("no-op re-provision, service time p50 / p99 / max ({noops} in a row)"),
        format!(
            "{:.2} ms / {:.2} ms / {:.2} ms (the first {:.2} ms)",
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0)),
            ms(first)
        ),
        "<= 2 ms",
    );
    figures.add(
        "no-op re-provision, Kubernetes API calls each",
        if calls > 0.0 {
            format!("{:.1} ({by_verb} in all)", calls / noops as f64)
        } else {
            "0".to_owned()
        },
        "0",
    );

    // The storm: fresh instances, `storm_concurrency` at a time, each waited for.
    let fresh: Vec<String> = (0..storm).map(|i| format!("storm-{i:05}")).collect();
    let before = kube_calls(&http, &base).await?;
    let took = provision_all(&reconciler, &fresh, storm_concurrency, true).await?;
    let (calls, by_verb) = calls_between(&before, &kube_calls(&http, &base).await?);
    figures.add(
        format!("storm of {storm} fresh provisions, {storm_concurrency} at a time"),
        format!(
            "{:.0} instances/s ({:.1} s)",
            storm as f64 / took.as_secs_f64(),
            took.as_secs_f64()
        ),
        "(figure only)",
    );
    figures.add(
        "storm, Kubernetes API calls per instance",
        format!("{:.1} ({by_verb} in all)", calls / storm.max(1) as f64),
        "(figure only)",
    );

    let (rss, hwm) = memory_mib()?;
    figures.add(
        "resident memory at the end",
        format!("{rss:.1} MiB (peak {hwm:.1} MiB)"),
        "<= 150 MiB",
    );
    figures.print();
    cluster.stop().await?;
    Ok(())
}

fn main() -> ExitCode {
    if let Some(code) = load::run_child() {
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("scale: the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match std::env::var_os(SEED_KUBECONFIG) {
        Some(kubeconfig) => runtime.block_on(seed(Path::new(&kubeconfig))),
        None => runtime.block_on(run()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scale: {error}");
            ExitCode::FAILURE
        }
    }
}
