//! The render pipeline through its public surface: the `render` and `validate-templates`
//! commands (in-process and as a binary), golden manifests, hostile input and every
//! render check.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use codeserver_service::naming;
use support::templates::{replace_in, run_command, templates_with};

#[path = "../support/mod.rs"]
mod support;

const BIN: &str = env!("CARGO_BIN_EXE_codeserver-service");

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a subcommand in-process; returns (ok, stdout, error text).
fn run(args: &[&str]) -> (bool, String, String) {
    let (result, out) = run_command(args);
    let err = result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    (result.is_ok(), out, err)
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
