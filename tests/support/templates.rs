//! Template sets to change in a test and the service's commands run in-process.
//!
//! - [`templates_dir`], [`copy_files`], [`templates_with`], [`replace_in`],
//!   [`edited_templates`]: copies of the repository's `templates/` that a test changes, as
//!   an admin changes a mounted set;
//! - [`sample_repo`], [`render_json`]: what a set renders for one owner, as JSON;
//! - [`run_command`]: a subcommand (`render`, `validate-templates`) in-process.

use std::path::{Path, PathBuf};

use clap::Parser;
use codeserver_service::{
    cli::{self, CliError},
    config::{Cli, Command, InstanceSettings},
    render::{self, Templates},
    values::{Owner, Repo},
};
use serde_json::Value;
use tempfile::TempDir;

/// The repository's `templates/` directory (the built-in set).
pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

/// Copies every file of the directory `from` into the directory `to`.
pub fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("readable") {
        let path = entry.expect("an entry").path();
        std::fs::copy(&path, to.join(path.file_name().expect("a name"))).expect("copied");
    }
}

/// A copy of `templates/` in a temporary directory, with `edit` applied to it.
pub fn templates_with(edit: impl FnOnce(&Path)) -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_files(&templates_dir(), dir.path());
    edit(dir.path());
    dir
}

/// The set of `templates/` with `edit` applied to a copy, loaded as the service loads a
/// template directory.
pub fn edited_templates(edit: impl FnOnce(&Path)) -> Templates {
    let dir = templates_with(edit);
    Templates::load_dir(dir.path()).expect("the edited set loads")
}

/// Replaces the first `from` in `dir/file` with `to`; panics if the file has no `from`.
pub fn replace_in(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("readable");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(path, text.replacen(from, to, 1)).expect("writable");
}

/// `devteam/api` on the simulated Gitea.
pub fn sample_repo() -> Repo {
    Repo::new("devteam", "api", "http://gitea:3000/devteam/api.git").expect("a repository")
}

/// Every object `templates` render for `owner` and [`sample_repo`] with `settings`, as
/// JSON; why the values or the render failed otherwise.
pub fn render_json(
    templates: &Templates,
    settings: &InstanceSettings,
    owner: &Owner,
) -> Result<Vec<Value>, String> {
    let values = render::build_values(templates, settings, owner, &[sample_repo()], &[])
        .map_err(|e| e.to_string())?;
    let objects = templates.render(&values).map_err(|e| e.to_string())?;
    Ok(objects
        .iter()
        .map(|r| serde_json::to_value(&r.object).expect("an object serializes"))
        .collect())
}

/// Runs the subcommand `args` (`render ...`, `validate-templates ...`) in-process: its
/// result and what it printed.
pub fn run_command(args: &[&str]) -> (Result<(), CliError>, String) {
    let cli =
        Cli::try_parse_from(std::iter::once("codeserver-service").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
    let mut out = Vec::new();
    let result = match cli.command {
        Some(Command::Render(a)) => cli::render_command(&a, &mut out),
        Some(Command::ValidateTemplates(a)) => cli::validate_command(&a, &mut out),
        other => panic!("not a command that runs in-process: {other:?}"),
    };
    (result, String::from_utf8(out).expect("UTF-8 output"))
}
