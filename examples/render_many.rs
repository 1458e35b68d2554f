//! Renders N instances (default 500) and prints how many objects: a fixed workload for
//! instruction-count profiling, e.g.
//! `valgrind --tool=callgrind target/release/examples/render_many 300`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use codeserver_service::{
    config::InstanceSettings,
    render::{self, Templates},
    values::{Owner, Repo},
};
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t = Templates::builtin()?;
    let s = InstanceSettings {
        jwt_issuer: Some("https://keycloak.test/realms/devplatform".to_owned()),
        ..InstanceSettings::default()
    };
    let repos = [Repo::new("o", "n", "http://g/o/n.git")?];
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let mut total = 0;
    for i in 0..n {
        let v = render::build_values(&t, &s, &Owner::new(format!("u{i}")), &repos, &[])?;
        total += t.render(&v)?.len();
    }
    println!("{total}");
    Ok(())
}
