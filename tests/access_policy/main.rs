//! How workspaces are protected, through what an admin applies and what the service
//! renders:
//! - `gateway`: the ONE static CUSTOM policy of `k8s/10-workspace-access.yaml` sends every
//!   form of a workspace host (any case, any port) to the service's check, and never the
//!   API host, under Istio's documented host matching;
//! - `mesh`: the extension provider of `k8s/mesh/` is the one the service's check expects;
//! - `crd_schema`: the policy is valid against Istio's own CRD schema;
//! - `network`: what a workspace may reach (its NetworkPolicies), hostile ids included;
//! - `retired`: a template set that still renders the old per-instance AuthorizationPolicy
//!   keeps provisioning, and the policy is never applied.

use std::path::{Path, PathBuf};

use codeserver_service::{
    cli,
    config::InstanceSettings,
    render::{self, Templates},
    values::Owner,
};
use serde_json::{Value, json};
use support::{
    Document, find,
    templates::{render_json, run_command, sample_repo as repo},
};

#[path = "../support/mod.rs"]
mod support;

const ISSUER: &str = "https://keycloak.test/realms/devplatform";
const ALICE_SUB: &str = "0c8f3a2e-1d4b-4f6a-9b7c-5e2d1a0f9c31";
const BOB_SUB: &str = "7a1e9d40-3c2b-4e8f-a6d5-0b9c8e7f6a52";

/// The provider the policy names and the mesh config defines.
const PROVIDER: &str = "codeserver-workspaces";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

fn settings() -> InstanceSettings {
    InstanceSettings {
        jwt_issuer: Some(ISSUER.to_owned()),
        ..InstanceSettings::default()
    }
}

fn owner(user: &str, sub: Option<&str>) -> Owner {
    Owner {
        sub: sub.map(str::to_owned),
        ..Owner::new(user)
    }
}

/// Every object the built-in templates render for `owner`, as JSON.
fn render_for(owner: &Owner) -> Result<Vec<Value>, String> {
    let templates = Templates::builtin().expect("the built-in templates load");
    render_json(&templates, &settings(), owner)
}

/// The strings of a JSON list (none when it is not one).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The workspaces' CUSTOM policy of `k8s/10-workspace-access.yaml`.
fn workspace_policy(documents: &[Document]) -> Value {
    let policy = find(documents, "AuthorizationPolicy", PROVIDER);
    assert_eq!(policy.file, "10-workspace-access.yaml");
    policy.value.clone()
}

mod crd_schema;
mod gateway;
mod mesh;
mod network;
mod retired;
