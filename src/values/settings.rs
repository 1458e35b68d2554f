//! The settings that shape every instance.

use std::path::PathBuf;

/// Settings that shape every instance: the inputs of `Values` that come from configuration
/// (see `config::InstanceArgs` for their flags and environment variables).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSettings {
    /// Namespace of the instances.
    pub namespace: String,
    /// Storage class of workspace PVCs.
    pub pvc_storage_class: String,
    /// Size of each workspace PVC.
    pub pvc_size: String,
    /// Image of the code-server container.
    pub image: String,
    /// CPU request of the code-server container.
    pub cpu: String,
    /// Memory request of the code-server container.
    pub memory: String,
    /// CPU limit of the code-server container.
    pub cpu_limit: String,
    /// Memory limit of the code-server container.
    pub memory_limit: String,
    /// Domain under which instances are reachable as code-<name>.<BASE_DOMAIN>.
    pub base_domain: String,
    /// Template directory (usually a mounted ConfigMap); the built-in set when unset.
    pub templates_dir: Option<PathBuf>,
    /// Required token issuer (`iss`), checked when set; templates see it as
    /// `access.issuer`.
    pub jwt_issuer: Option<String>,
    /// Extra values files merged over the templates' values.yaml, in order.
    pub values_files: Vec<PathBuf>,
}

impl Default for InstanceSettings {
    /// The specification's defaults (the same as the flags' defaults; a test checks it).
    fn default() -> Self {
        Self {
            namespace: "codeserver-instances".to_owned(),
            pvc_storage_class: "standard".to_owned(),
            pvc_size: "10Gi".to_owned(),
            image: "codercom/code-server:latest".to_owned(),
            cpu: "500m".to_owned(),
            memory: "1Gi".to_owned(),
            cpu_limit: "2".to_owned(),
            memory_limit: "4Gi".to_owned(),
            base_domain: "devplatform.local".to_owned(),
            jwt_issuer: None,
            templates_dir: None,
            values_files: Vec::new(),
        }
    }
}
