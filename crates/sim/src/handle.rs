//! The test handle: start a simulated cluster, get a client, seed and read objects, count
//! requests, inject faults and steer pod and job behaviour.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::faults::{Fault, RecordedRequest};
use super::lifecycle::{self, JobBehaviour, PodBehaviour};
use super::ops;
use super::resources::{self, ids};
use super::{Shared, SimError, SimOptions, lock};

fn client_config(addr: SocketAddr) -> Result<kube::Config, SimError> {
    let url = format!("http://{addr}");
    let mut config = kube::Config::new(url.parse().map_err(|_| SimError::Url(url.clone()))?);
    config.default_namespace = "default".into();
    config.read_timeout = Some(Duration::from_secs(300));
    Ok(config)
}

/// A running simulated cluster. Dropping it stops the server.
pub struct Sim {
    sh: Arc<Shared>,
    addr: SocketAddr,
    client: kube::Client,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sim {
    /// Start with default options on 127.0.0.1 and a free port.
    pub async fn start() -> Result<Sim, SimError> {
        Self::start_on(0, SimOptions::default()).await
    }

    /// Start with options on 127.0.0.1 and a free port.
    pub async fn start_with(opts: SimOptions) -> Result<Sim, SimError> {
        Self::start_on(0, opts).await
    }

    /// Start on a given port (0 picks a free one).
    pub(crate) async fn start_on(port: u16, opts: SimOptions) -> Result<Sim, SimError> {
        let namespaces = opts.namespaces.clone();
        // NB: reading the CRD schemas takes a moment; do it before serving, not in the first
        // write of a custom resource, which a test may be timing.
        crate::crd::load();
        let sh = Shared::new(opts);
        for ns in namespaces {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            ops::seed(&sh, obj).map_err(SimError::Seed)?;
        }
        // NB: the one node the kubelet stand-in schedules every pod on (`sim-node`), Ready.
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "sim-node", "labels": {
                "kubernetes.io/hostname": "sim-node",
                "kubernetes.io/os": "linux",
            }},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
        });
        ops::seed(&sh, node).map_err(SimError::Seed)?;
        // NB: the cluster's default StorageClass, the one the DefaultStorageClass admission
        // names on a claim without a class (`standard`); volumes of it may grow.
        let class = json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {
                "storageclass.kubernetes.io/is-default-class": "true",
            }},
            "provisioner": "sim.devplatform.io/provisioner",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": true,
        });
        ops::seed(&sh, class).map_err(SimError::Seed)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| SimError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { port, source })?;
        *lock(&sh.addr) = Some(addr);
        let filter = super::http::filter(sh.clone());
        let server = tokio::spawn(warp::serve(filter).incoming(listener).run());
        let client = kube::Client::try_from(client_config(addr)?).map_err(SimError::Client)?;
        Ok(Sim {
            sh,
            addr,
            client,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kube config the client is built from, to build clients with other settings
    /// (e.g. `default_retry = false` to see 429 answers that kube would otherwise retry).
    pub fn config(&self) -> kube::Config {
        // NB: the same config already parsed once in start_on; it cannot fail here.
        client_config(self.addr)
            .unwrap_or_else(|_| kube::Config::new(http::Uri::from_static("http://127.0.0.1")))
    }

    /// A kube client for this cluster (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig pointing at this cluster (context `sim`).
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        let v = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sim", "cluster": {"server": self.url()}}],
            "users": [{"name": "sim", "user": {}}],
            "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim", "namespace": "default"}}],
            "current-context": "sim",
            "preferences": {},
        });
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Store an object as if a client had created it (its `status`, if any, is kept).
    pub fn seed(&self, obj: Value) -> Result<Value, SimError> {
        ops::seed(&self.sh, obj).map_err(SimError::Seed)
    }

    /// Read an object by resource plural (`pods`, `virtualservices`), namespace ("" for
    /// cluster-scoped) and name, in its storage version.
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let (res, _) = resources::find_plural(plural)?;
        ops::get(&self.sh, res, namespace, name).ok()
    }

    /// Read an object by group, version and plural (the version it is served in).
    pub fn object_in(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let (res, d) = resources::find(group, version, plural)?;
        let mut v = ops::get(&self.sh, res, namespace, name).ok()?;
        v["apiVersion"] = json!(d.api_version(version));
        Some(v)
    }

    /// Every stored object of a resource plural, in all namespaces.
    pub fn list_objects(&self, plural: &str) -> Vec<Value> {
        let Some((res, _)) = resources::find_plural(plural) else {
            return Vec::new();
        };
        let store = lock(&self.sh.store);
        store.iter(res, None).map(|(_, s)| s.value()).collect()
    }

    /// Number of stored objects of all kinds.
    pub fn object_count(&self) -> usize {
        lock(&self.sh.store).len()
    }

    /// Bytes of serialized objects held by the store (what the objects themselves take).
    pub fn stored_bytes(&self) -> usize {
        let store = lock(&self.sh.store);
        (0..resources::RESOURCES.len() as u8)
            .flat_map(|r| {
                store
                    .iter(r, None)
                    .map(|(_, s)| s.bytes.len())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.sh.store).rv()
    }

    /// Every resource request so far (discovery requests are not recorded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.sh.requests).clone()
    }

    /// How many requests had this verb and resource plural (`pods/log` for a subresource).
    pub fn count(&self, verb: &str, resource: &str) -> usize {
        lock(&self.sh.requests)
            .iter()
            .filter(|r| r.verb == verb)
            .filter(|r| match &r.subresource {
                Some(s) => resource == format!("{}/{}", r.resource, s),
                None => resource == r.resource,
            })
            .count()
    }

    /// Writes (create, update, patch, delete, deletecollection) that were not dry runs.
    pub fn writes(&self) -> Vec<RecordedRequest> {
        lock(&self.sh.requests)
            .iter()
            .filter(|r| r.is_write() && !r.dry_run)
            .cloned()
            .collect()
    }

    /// Forget recorded requests.
    pub fn reset_requests(&self) {
        lock(&self.sh.requests).clear();
    }

    /// Inject a fault into matching requests.
    pub fn inject(&self, fault: Fault) {
        lock(&self.sh.faults).push(fault);
    }

    /// Remove every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.sh.faults).clear();
    }

    /// Make the pod with this name (now or when created) behave this way.
    pub fn set_pod_behaviour(&self, pod_name: &str, behaviour: PodBehaviour) {
        lock(&self.sh.pod_behaviours).insert(pod_name.to_string(), behaviour);
        let existing: Vec<String> = {
            let store = lock(&self.sh.store);
            store
                .iter(ids::PODS, None)
                .filter(|(k, _)| k.2 == pod_name)
                .map(|(k, _)| k.1.clone())
                .collect()
        };
        for ns in existing {
            lifecycle::restart_pod(&self.sh, &ns, pod_name);
        }
    }

    /// Evict the pod `namespace`/`name` as the kubelet does (node pressure, or its
    /// ephemeral-storage limit): it stays, `Failed` with reason `Evicted` and `message`,
    /// until deleted. False when there is no such pod.
    pub fn evict_pod(&self, namespace: &str, name: &str, message: &str) -> bool {
        lifecycle::evict_pod(&self.sh, namespace, name, message)
    }

    /// Make the Job with this name succeed or fail.
    pub fn set_job_behaviour(&self, job_name: &str, behaviour: JobBehaviour) {
        lock(&self.sh.job_behaviours).insert(job_name.to_string(), behaviour);
    }

    /// Replace the log lines of a pod's container.
    pub fn set_logs(&self, namespace: &str, pod: &str, container: &str, lines: &[&str]) {
        lock(&self.sh.logs).insert(
            (
                namespace.to_string(),
                pod.to_string(),
                container.to_string(),
            ),
            lines.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// Wait until the object satisfies `pred` (see [`Sim::wait_until`]), or time out.
    pub async fn wait_for(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        timeout: Duration,
        pred: impl Fn(Option<&Value>) -> bool,
    ) -> bool {
        self.wait_until(timeout, |sim| {
            pred(sim.object(plural, namespace, name).as_ref())
        })
        .await
    }

    /// Waits until `cond` holds, checking again on every change to the store (no
    /// polling), for at most `timeout`; whether it held.
    pub async fn wait_until(&self, timeout: Duration, cond: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // NB: subscribe before checking, so that a change between the check and the
            // wait is not missed.
            let mut changes = lock(&self.sh.store).subscribe();
            if cond(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                // A change, or changes missed while lagging: check again.
                Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => {
                    return cond(self);
                }
            }
        }
    }

    /// Starts simulated code-server `/healthz` endpoints for this cluster's instances
    /// (see [`super::heartbeat`]).
    pub async fn code_servers(&self) -> Result<super::heartbeat::CodeServers, SimError> {
        super::heartbeat::CodeServers::start(self.sh.clone()).await
    }
}
