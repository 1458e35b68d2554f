//! The mesh config extension provider of `k8s/mesh/`: what the gateway sends the check and
//! what it does with the answer must be exactly what the service's check is written for.

use clap::CommandFactory;
use codeserver_service::{config::Cli, gate::EXT_AUTHZ_PREFIX};
use k8s_openapi::api::core::v1::Service;
use support::fixtures::{SERVICE_NAMESPACE, config, typed};

use super::*;

/// The provider entry of `k8s/mesh/istiod-values.yaml`.
fn provider() -> Value {
    let path = root().join("k8s/mesh/istiod-values.yaml");
    let text = std::fs::read_to_string(&path).expect("k8s/mesh/istiod-values.yaml");
    let values: Value = serde_yaml_ng::from_str(&text).expect("the mesh values parse");
    let providers = values["meshConfig"]["extensionProviders"]
        .as_array()
        .expect("meshConfig.extensionProviders");
    let [provider] = providers.as_slice() else {
        panic!("one provider, the workspaces': {providers:?}");
    };
    assert_eq!(provider["name"], PROVIDER);
    provider.clone()
}

/// The default of `serve`'s flag read from `env`.
fn serve_default(env: &str) -> Option<String> {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve command");
    serve
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == env))
        .unwrap_or_else(|| panic!("{env} is not a setting of serve"))
        .get_default_values()
        .first()
        .map(|v| v.to_string_lossy().into_owned())
}

#[test]
fn the_provider_is_the_one_the_check_is_written_for() {
    let provider = provider();
    assert_eq!(
        provider["envoyExtAuthzHttp"],
        json!({
            "service": "codeserver-service.dev-platform.svc.cluster.local",
            "port": 8083,
            "pathPrefix": "/ext-authz",
            "timeout": "2s",
            "failOpen": false,
            "statusOnError": "503",
            "includeRequestHeadersInCheck": ["cookie", "authorization", "accept"],
            "headersToUpstreamOnAllow": ["cookie"],
            "headersToDownstreamOnAllow": ["set-cookie"],
            "headersToDownstreamOnDeny": ["set-cookie", "location", "content-type", "cache-control", "www-authenticate"],
        })
    );
    // The check listener serves exactly this prefix.
    assert_eq!(
        provider["envoyExtAuthzHttp"]["pathPrefix"],
        EXT_AUTHZ_PREFIX
    );
}

#[test]
fn the_provider_reaches_the_check_listener_of_the_deployed_service() {
    let documents = support::manifests();
    let http = &provider()["envoyExtAuthzHttp"];
    let config = config();
    // EXT_AUTHZ_PORT: the service's default, the deployed value, the Service's port and
    // the container's.
    let port = config["EXT_AUTHZ_PORT"].clone();
    assert_eq!(serve_default("EXT_AUTHZ_PORT"), Some(port.clone()));
    assert_eq!(http["port"].to_string(), port);
    let service: Service = typed(find(&documents, "Service", "codeserver-service"));
    assert_eq!(
        http["service"],
        format!(
            "{}.{SERVICE_NAMESPACE}.svc.cluster.local",
            service.metadata.name.as_deref().unwrap_or_default()
        )
    );
    let ext_authz = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("ext-authz"))
        .expect("the Service's ext-authz port");
    assert_eq!(ext_authz.port.to_string(), port);
    let deployment = support::fixtures::deployment();
    let pod = support::fixtures::pod_spec(&deployment);
    let container = support::fixtures::main_container(&pod);
    let container_port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("ext-authz"))
        .expect("the container's ext-authz port");
    assert_eq!(container_port.container_port.to_string(), port);
}

#[test]
fn the_mesh_snippet_is_left_out_of_kubectl_apply() {
    // `kubectl apply -f k8s/` reads the directory's own files only: the snippet belongs to
    // the Istio installation, and is no Kubernetes object anyway.
    let files = support::manifest_files();
    assert!(
        files
            .iter()
            .all(|f| f.parent() == Some(&*support::k8s_dir()))
    );
    let text =
        std::fs::read_to_string(root().join("k8s/mesh/istiod-values.yaml")).expect("the snippet");
    let value: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert!(value.get("apiVersion").is_none() && value.get("kind").is_none());
    assert!(
        root().join("k8s/mesh/README.md").is_file(),
        "k8s/mesh/ says what it is for"
    );
}
