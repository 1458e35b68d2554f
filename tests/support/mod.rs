//! Shared by the integration tests that read the deployment manifests in `k8s/`.
//!
//! - [`manifests`]: every YAML document of every file, with where it came from;
//! - [`known_fields`]: Kubernetes kinds against their `k8s-openapi` types, with no
//!   unknown fields;
//! - [`istio`]: the Istio kinds against the fields their CRDs define;
//! - [`rbac`]: what `03-rbac.yaml` grants, as (group, resource, verb) triples;
//! - [`validate_templates_settings`]: the instance settings `validate-templates` builds;
//! - [`templates`]: copies of `templates/` to change, renders as JSON, the commands
//!   in-process.
//!
//! Tests and benches that drive the service include the rest of this folder by path:
//! `world.rs` (the one fixture: the simulated cluster, Gitea and issuer, the reconciler and
//! the served routes; it brings `serving.rs`) and `eventually.rs` (waiting for a condition
//! with a deadline).

// NB: each test binary compiles this module and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod fixtures;
pub mod istio;
pub mod known_fields;
pub mod pod_security;
pub mod rbac;
pub mod templates;

use std::path::{Path, PathBuf};

use clap::Parser;
use codeserver_service::config::{Cli, Command, InstanceSettings};
use serde::Deserialize;
use serde_json::Value;

/// The instance settings `validate-templates` builds from its defaults, the test issuer
/// (`https://keycloak.test/realms/devplatform`) and `extra` arguments.
pub fn validate_templates_settings(extra: &[&str]) -> InstanceSettings {
    let arguments = [
        "codeserver-service",
        "validate-templates",
        "--jwt-issuer",
        "https://keycloak.test/realms/devplatform",
    ];
    let Ok(Cli {
        command: Some(Command::ValidateTemplates(args)),
        ..
    }) = Cli::try_parse_from(arguments.iter().chain(extra))
    else {
        panic!("validate-templates parses with {extra:?}");
    };
    args.instance.settings()
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    /// File name inside `k8s/`, e.g. `03-rbac.yaml`.
    pub file: String,
    /// 0-based position among the file's non-empty documents.
    pub index: usize,
    pub value: Value,
}

impl Document {
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }

    /// `03-rbac.yaml#1 Role/codeserver-service`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}#{} {}/{}",
            self.file,
            self.index,
            self.kind(),
            self.name()
        )
    }
}

/// The repository's `k8s/` directory.
pub fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

/// The `*.yaml` files of `k8s/`, sorted by name (the order `kubectl apply -f` uses).
pub fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .expect("k8s/ is readable")
        .map(|entry| entry.expect("k8s/ entry is readable").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

/// Parses a multi-document YAML text; empty documents (only comments) are skipped.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, String> {
    let mut documents = Vec::new();
    for (position, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de)
            .map_err(|err| format!("{file}: YAML document {position} does not parse: {err}"))?;
        if value.is_null() {
            continue;
        }
        documents.push(Document {
            file: file.to_owned(),
            index: documents.len(),
            value,
        });
    }
    Ok(documents)
}

/// Every non-empty document of every file in `k8s/`; panics naming the file that does
/// not parse.
pub fn manifests() -> Vec<Document> {
    manifest_files()
        .iter()
        .flat_map(|path| {
            let file = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(path).expect("manifest is readable");
            parse_documents(&file, &text).unwrap_or_else(|err| panic!("{err}"))
        })
        .collect()
}

/// The single document of `kind` named `name`; panics if there is not exactly one.
pub fn find<'a>(documents: &'a [Document], kind: &str, name: &str) -> &'a Document {
    let found: Vec<&Document> = documents
        .iter()
        .filter(|d| d.kind() == kind && d.name() == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}/{name} in k8s/, found {}",
        found.len()
    );
    found[0]
}
