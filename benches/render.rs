//! Renders a full instance (every template, parsed to checked objects) and reports
//! instances per second. `cargo bench --bench render`.

// NB: the same allocator as the service binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use codeserver_service::{
    config::InstanceSettings,
    render::{self, Templates},
    values::{Owner, Repo},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench_render(c: &mut Criterion) {
    let templates = Templates::builtin().expect("built-in templates load");
    let settings = InstanceSettings {
        jwt_issuer: Some("https://keycloak.test/realms/devplatform".to_owned()),
        ..InstanceSettings::default()
    };
    let repos = [Repo::new(
        "devteam",
        "backend-api",
        "http://gitea:3000/devteam/backend-api.git",
    )
    .expect("valid repo")];
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("instance (values + all templates + parse + checks)", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let owner = Owner::new(format!("user.{i}"));
            let values =
                render::build_values(&templates, &settings, &owner, &repos, &[]).expect("values");
            black_box(templates.render(&values).expect("render"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
