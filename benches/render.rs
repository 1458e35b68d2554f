//! Renders a full instance (every template, parsed to checked objects) and reports
//! instances per second. `cargo bench --bench render`.

use std::hint::black_box;

use codeserver_service::{
    config::InstanceSettings,
    render::{self, Templates},
    values::{Owner, Repo},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn settings() -> InstanceSettings {
    InstanceSettings {
        namespace: "codeserver-instances".into(),
        pvc_storage_class: "standard".into(),
        pvc_size: "10Gi".into(),
        image: "codercom/code-server:latest".into(),
        cpu: "500m".into(),
        memory: "1Gi".into(),
        cpu_limit: "2".into(),
        memory_limit: "4Gi".into(),
        base_domain: "devplatform.local".into(),
        templates_dir: None,
        values_files: vec![],
    }
}

fn bench_render(c: &mut Criterion) {
    let templates = Templates::builtin().expect("built-in templates load");
    let settings = settings();
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
