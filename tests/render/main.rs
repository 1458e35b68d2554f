//! The render pipeline through its public surface: the `render` and `validate-templates`
//! commands (in-process and as a binary), golden manifests, hostile input and every
//! render check.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use clap::Parser;
use codeserver_service::{
    cli,
    config::{Cli, Command as Sub},
    naming,
};

const BIN: &str = env!("CARGO_BIN_EXE_codeserver-service");

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a subcommand in-process; returns (ok, stdout, error text).
fn run(args: &[&str]) -> (bool, String, String) {
    let cli =
        Cli::try_parse_from(std::iter::once("codeserver-service").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let result = match cli.command {
        Some(Sub::Render(a)) => cli::render_command(&a, &mut out),
        Some(Sub::ValidateTemplates(a)) => cli::validate_command(&a, &mut out),
        other => panic!("unexpected command {other:?}"),
    };
    let err = result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    (result.is_ok(), String::from_utf8(out).unwrap(), err)
}

/// A copy of the built-in templates in a temporary directory, with `edit` applied.
fn templates_with(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(repo_root().join("templates")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    edit(dir.path());
    dir
}

fn replace_in(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// `validate-templates` on the template set in `dir`: (success, stdout, stderr).
fn validate(dir: &tempfile::TempDir) -> (bool, String, String) {
    run(&[
        "validate-templates",
        "--templates",
        dir.path().to_str().unwrap(),
    ])
}

/// `validate-templates` on the built-in set with `edit` applied must fail; its output.
fn refused(edit: impl FnOnce(&Path)) -> String {
    let (ok, out, _) = validate(&templates_with(edit));
    assert!(!ok, "the edited set was accepted:\n{out}");
    out
}

/// `validate-templates` on the built-in set with `edit` applied must succeed.
fn accepted(edit: impl FnOnce(&Path)) {
    let (ok, out, err) = validate(&templates_with(edit));
    assert!(ok, "{err}\n{out}");
}

fn remove(dir: &Path, file: &str) {
    fs::remove_file(dir.join(file)).unwrap();
}

/// The arguments of `render` for user `u` and repository `o/<repo>`.
fn render_args(repo: &str) -> Vec<&str> {
    vec![
        "render",
        "--user",
        "u",
        "--repo-owner",
        "o",
        "--repo-name",
        repo,
    ]
}

/// `render` for user `u` and repository `o/<repo>`, with `extra` arguments.
fn render_repo(repo: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = render_args(repo);
    args.extend_from_slice(extra);
    run(&args)
}

/// The objects a successful `render --output json` printed.
fn objects_of((ok, out, err): (bool, String, String)) -> Vec<serde_json::Value> {
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn render_with(dir: &Path, user: &str) -> (bool, String, String) {
    let user_arg = format!("--user={user}");
    run(&[
        "render",
        "--templates",
        dir.to_str().unwrap(),
        &user_arg,
        "--repo-owner",
        "devteam",
        "--repo-name",
        "api",
    ])
}

mod access;
mod checks;
mod commands;
mod golden;
mod hostile;
mod isolation;
mod values;
