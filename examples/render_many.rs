//! Renders many instances; for profiling (`valgrind --tool=callgrind`).
use codeserver_service::{config::InstanceSettings, render::{self, Templates}, values::{Owner, Repo}};
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t = Templates::builtin()?;
    let s = InstanceSettings { namespace: "codeserver-instances".into(), pvc_storage_class: "standard".into(), pvc_size: "10Gi".into(), image: "i".into(), cpu: "500m".into(), memory: "1Gi".into(), cpu_limit: "2".into(), memory_limit: "4Gi".into(), base_domain: "d.local".into(), templates_dir: None, values_files: vec![] };
    let repos = [Repo::new("o", "n", "http://g/o/n.git")?];
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let mut total = 0;
    for i in 0..n { let v = render::build_values(&t, &s, &Owner::new(format!("u{i}")), &repos, &[])?; total += t.render(&v)?.len(); }
    println!("{total}");
    Ok(())
}
