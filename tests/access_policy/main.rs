//! The per-instance access policy, through the public render surface: only the owner's
//! validated token gets a request for the instance's host through the gateway; the
//! policy is valid against Istio's own CRD schema; hostile ids and subs name exactly one
//! principal or are refused; a set that publishes workspaces without a policy is refused.

use std::path::PathBuf;

use codeserver_service::{
    cli,
    config::InstanceSettings,
    render::{self, Templates},
    values::Owner,
};
use serde_json::{Value, json};
use support::templates::{render_json, run_command, sample_repo as repo};

#[path = "../support/mod.rs"]
mod support;

const ISSUER: &str = "https://keycloak.test/realms/devplatform";
const ALICE_SUB: &str = "0c8f3a2e-1d4b-4f6a-9b7c-5e2d1a0f9c31";
const BOB_SUB: &str = "7a1e9d40-3c2b-4e8f-a6d5-0b9c8e7f6a52";

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

/// The AuthorizationPolicies among `objects`.
fn policies(objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "AuthorizationPolicy")
        .cloned()
        .collect()
}

mod crd_schema;
mod gateway;
mod hostile;
