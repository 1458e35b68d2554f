//! The flags of the settings that shape every instance, turned into [`InstanceSettings`].

use std::path::PathBuf;

use clap::Args;

use crate::values::InstanceSettings;

use super::parse::{dns_label, dns_subdomain, image, issuer, positive_quantity, storage_class};

/// The flags of the settings that shape every instance.
#[derive(Args, Debug, Clone)]
pub struct InstanceArgs {
    /// Namespace of the instances.
    #[arg(long = "namespace", env = "CODESERVER_NAMESPACE", value_name = "CODESERVER_NAMESPACE",
          default_value = "codeserver-instances", value_parser = dns_label)]
    pub namespace: String,
    /// Storage class of workspace PVCs.
    #[arg(long = "pvc-storage-class", env = "PVC_STORAGE_CLASS", value_name = "PVC_STORAGE_CLASS",
          default_value = "standard", value_parser = storage_class)]
    pub pvc_storage_class: String,
    /// Size of each workspace PVC.
    #[arg(long = "pvc-size", env = "PVC_SIZE", value_name = "PVC_SIZE", default_value = "10Gi",
          value_parser = positive_quantity)]
    pub pvc_size: String,
    /// Image of the code-server container.
    #[arg(long = "image", env = "CODESERVER_IMAGE", value_name = "CODESERVER_IMAGE",
          default_value = "codercom/code-server:latest", value_parser = image)]
    pub image: String,
    /// CPU request of the code-server container.
    #[arg(long = "cpu", env = "CODESERVER_CPU", value_name = "CODESERVER_CPU", default_value = "500m",
          value_parser = positive_quantity)]
    pub cpu: String,
    /// Memory request of the code-server container.
    #[arg(long = "memory", env = "CODESERVER_MEMORY", value_name = "CODESERVER_MEMORY",
          default_value = "1Gi", value_parser = positive_quantity)]
    pub memory: String,
    /// CPU limit of the code-server container.
    #[arg(long = "cpu-limit", env = "CODESERVER_CPU_LIMIT", value_name = "CODESERVER_CPU_LIMIT",
          default_value = "2", value_parser = positive_quantity)]
    pub cpu_limit: String,
    /// Memory limit of the code-server container.
    #[arg(long = "memory-limit", env = "CODESERVER_MEMORY_LIMIT",
          value_name = "CODESERVER_MEMORY_LIMIT", default_value = "4Gi",
          value_parser = positive_quantity)]
    pub memory_limit: String,
    /// Domain under which instances are reachable as code-<name>.<BASE_DOMAIN>.
    #[arg(long = "base-domain", env = "BASE_DOMAIN", value_name = "BASE_DOMAIN",
          default_value = "devplatform.local", value_parser = dns_subdomain)]
    pub base_domain: String,
    /// Template directory (usually a mounted ConfigMap); the built-in set when unset.
    #[arg(
        long = "templates",
        env = "TEMPLATES_DIR",
        value_name = "TEMPLATES_DIR"
    )]
    pub templates_dir: Option<PathBuf>,
    /// Required token issuer (`iss`), checked when set; also where the browser login
    /// discovers the OIDC endpoints (`<JWT_ISSUER>/.well-known/openid-configuration`).
    #[arg(long = "jwt-issuer", env = "JWT_ISSUER", value_name = "JWT_ISSUER",
          value_parser = issuer)]
    pub jwt_issuer: Option<String>,
    /// Extra values files merged over the templates' values.yaml, in order.
    #[arg(
        long = "values",
        env = "VALUES_FILE",
        value_name = "VALUES_FILE",
        value_delimiter = ','
    )]
    pub values_files: Vec<PathBuf>,
}

impl InstanceArgs {
    /// The settings these flags give.
    pub fn settings(&self) -> InstanceSettings {
        InstanceSettings {
            namespace: self.namespace.clone(),
            pvc_storage_class: self.pvc_storage_class.clone(),
            pvc_size: self.pvc_size.clone(),
            image: self.image.clone(),
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            cpu_limit: self.cpu_limit.clone(),
            memory_limit: self.memory_limit.clone(),
            base_domain: self.base_domain.clone(),
            templates_dir: self.templates_dir.clone(),
            jwt_issuer: self.jwt_issuer.clone(),
            values_files: self.values_files.clone(),
        }
    }
}
