//! Load benchmark of the GraphQL API: 1,000 instances in the simulated cluster, 50
//! concurrent clients, throughput and p50/p99 latency of `myCodeServers` and `health`.
//! The cluster runs in a child process (see `support/cluster.rs`), so the CPU the figures
//! cost is the service's. Fails (exit code 1) on any error answer.
//!
//! `cargo bench --bench api_load` (INSTANCES, CLIENTS and REQUESTS override the sizes).

use std::time::Instant;

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/load.rs"]
mod load;
#[path = "../tests/support/world.rs"]
mod world;

use codeserver_service::{
    reconcile::Timeouts,
    values::{Owner, Repo},
};
use codeserver_sim::issuer::TokenSpec;
use futures::{StreamExt, stream};
use load::{Expect, Spec, Tokens, env_or, load};
use world::World;

fn main() {
    let instances = env_or("INSTANCES", 1_000);
    let clients = env_or("CLIENTS", 50);
    let requests = env_or("REQUESTS", 5_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let failed = runtime.block_on(async move {
        let cluster = match cluster::Cluster::start().await {
            Ok(cluster) => cluster,
            Err(error) => {
                eprintln!("the simulated cluster did not start: {error}");
                return true;
            }
        };
        let config = match cluster.config().await {
            Ok(config) => config,
            Err(error) => {
                eprintln!("{error}");
                return true;
            }
        };
        let w = World::builder()
            .cluster(config)
            .reconciler(|r| r.timeouts(Timeouts::default()))
            .start()
            .await;
        let reconciler = &w.reconciler;
        let seeding = Instant::now();
        let users: Vec<String> = (0..instances).map(|i| format!("user-{i:04}")).collect();
        let seeded: Vec<bool> = stream::iter(users.iter())
            .map(|user| {
                let reconciler = reconciler.clone();
                async move {
                    let repo = Repo::new(
                        "devteam",
                        "backend-api",
                        "http://gitea:3000/devteam/backend-api.git",
                    )
                    .expect("repo");
                    // NB: the same `sub` the issuer puts in this user's tokens: instances
                    // belong to the token's subject.
                    let owner = Owner {
                        sub: Some(TokenSpec::new(user).sub),
                        ..Owner::new(user.clone())
                    };
                    reconciler.provision(&owner, repo).await.is_ok()
                }
            })
            .buffer_unordered(50)
            .collect()
            .await;
        let seed_errors = seeded.iter().filter(|ok| !**ok).count();
        println!(
            "seeded {instances} instances in {:.1} s ({seed_errors} errors)",
            seeding.elapsed().as_secs_f64()
        );

        let url = format!("{}/graphql", w.base);
        let tokens: Vec<String> = users.iter().map(|u| w.token(u)).collect();
        let tokens = match Tokens::new(&tokens) {
            Ok(tokens) => tokens,
            Err(error) => {
                eprintln!("the tokens: {error}");
                return true;
            }
        };
        let spec = |name: &str, query: &str, expect: Expect| Spec {
            name: name.to_owned(),
            url: url.clone(),
            query: query.to_owned(),
            clients,
            requests,
            expect,
        };
        let mine = load(
            &spec(
                "myCodeServers",
                "{ myCodeServers { id status url } }",
                Expect::Length {
                    at: "/data/myCodeServers".to_owned(),
                    len: 1,
                },
            ),
            &tokens,
        )
        .await;
        let health = load(
            &spec(
                "health",
                "{ health }",
                Expect::Equals {
                    at: "/data/health".to_owned(),
                    value: true.into(),
                },
            ),
            &tokens,
        )
        .await;
        println!("{instances} instances in the simulated cluster; {clients} concurrent clients");
        mine.print(clients);
        health.print(clients);
        seed_errors + mine.errors + health.errors > 0
    });
    if failed {
        std::process::exit(1);
    }
}
