//! Provisions 1,000 instances against the simulated cluster and prints instances per
//! second, Kubernetes API requests per instance and the service's peak memory.
//!
//! Two runs: one against `codeserver-demo sim --fast` in a child process (see
//! `support/cluster.rs`), so that this process's peak resident memory is the reconciler's
//! alone, then one against an in-process simulated cluster, which counts every request.
//! `cargo bench --bench reconcile` (BENCH_INSTANCES and BENCH_CONCURRENCY override 1000 and 32).

#[path = "support/cluster.rs"]
mod cluster;

use std::{
    error::Error,
    sync::Arc,
    time::{Duration, Instant},
};

use codeserver_service::{
    config::InstanceSettings,
    reconcile::{Kinds, Reconciler, Timeouts},
    render::{ActiveTemplates, Templates},
    values::{Owner, Repo},
};
use codeserver_sim::Sim;
use futures::{StreamExt, stream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn reconciler(client: kube::Client) -> Result<Arc<Reconciler>, Box<dyn Error>> {
    let kinds = Kinds::discover(&client).await?;
    let templates = Arc::new(ActiveTemplates::new(Templates::builtin()?));
    let timeouts = Timeouts {
        ready: Duration::from_secs(60),
        ..Timeouts::default()
    };
    Ok(Arc::new(Reconciler::new(
        client,
        kinds,
        templates,
        InstanceSettings {
            jwt_issuer: Some("https://keycloak.test/realms/devplatform".to_owned()),
            ..InstanceSettings::default()
        },
        timeouts,
    )))
}

/// Provisions `n` users' instances, `concurrency` at a time; returns the elapsed time.
async fn provision_all(
    rec: &Arc<Reconciler>,
    n: usize,
    concurrency: usize,
) -> Result<Duration, Box<dyn Error>> {
    let repo = Repo::new(
        "devteam",
        "backend-api",
        "http://gitea:3000/devteam/backend-api.git",
    )?;
    let started = Instant::now();
    let results: Vec<_> = stream::iter(0..n)
        .map(|i| {
            let (rec, repo) = (rec.clone(), repo.clone());
            async move { rec.provision(&Owner::new(format!("user.{i}")), repo).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(format!(
            "{failed} provisions failed; first: {:?}",
            results.iter().find_map(|r| r.as_ref().err())
        )
        .into());
    }
    Ok(elapsed)
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    codeserver_service::install_crypto();
    let n = env_number("BENCH_INSTANCES", 1000);
    let concurrency = env_number("BENCH_CONCURRENCY", 32);

    // Run 1, first so that nothing else has touched this process's memory: the cluster in a
    // child process, so this process's peak memory is the service's.
    let cluster = cluster::Cluster::start().await?;
    let baseline = peak_rss_mib();
    let rec = reconciler(kube::Client::try_from(cluster.config().await?)?).await?;
    let elapsed = provision_all(&rec, n, concurrency).await?;
    println!("reconcile/provision (cluster in a child process): {n} instances");
    println!(
        "  {:.0} instances/s ({:.2} s)",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    match (baseline, peak_rss_mib()) {
        (Some(before), Some(peak)) => println!(
            "  service peak resident memory {peak:.1} MiB (before the run {before:.1} MiB)"
        ),
        _ => println!("  peak memory: unavailable on this platform"),
    }
    cluster.stop().await?;

    // Run 2: in-process simulated cluster, counting requests.
    let sim = Sim::start().await?;
    let mut config = sim.config();
    config.default_retry = false;
    let rec = reconciler(kube::Client::try_from(config)?).await?;
    sim.reset_requests();
    let elapsed = provision_all(&rec, n, concurrency).await?;
    let requests = sim.requests();
    let writes = requests.iter().filter(|r| r.is_write()).count();
    println!("reconcile/provision (in-process cluster): {n} instances, concurrency {concurrency}");
    println!(
        "  {:.0} instances/s ({:.2} s)",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  {:.1} API requests per instance ({:.1} writes, {:.1} reads and watches)",
        requests.len() as f64 / n as f64,
        writes as f64 / n as f64,
        (requests.len() - writes) as f64 / n as f64
    );
    sim.reset_requests();
    let again = provision_all(&rec, n, concurrency).await?;
    println!(
        "  re-provisioning all unchanged: {:.0} instances/s, {} writes",
        n as f64 / again.as_secs_f64(),
        sim.writes().len()
    );

    Ok(())
}
