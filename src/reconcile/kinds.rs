//! Kinds: how each kind the templates may render is reached in the API. Core kinds are
//! fixed `ApiResource`s; the Istio VirtualService version is resolved once at start-up
//! (v1 preferred, v1beta1 accepted); anything else an admin adds is found by discovery
//! the first time it is rendered, then cached.

use std::{collections::BTreeMap, sync::RwLock};

use kube::{
    Client,
    api::{ApiResource, GroupVersionKind},
    discovery,
};

use super::Error;

/// The Istio API group.
pub const ISTIO_GROUP: &str = "networking.istio.io";

/// Kinds the service knows without discovery: (apiVersion, kind, plural).
const FIXED: &[(&str, &str, &str)] = &[
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("v1", "Pod", "pods"),
    ("v1", "Service", "services"),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("batch/v1", "Job", "jobs"),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
];

/// Resolves kinds to API resources.
#[derive(Debug)]
pub struct Kinds {
    /// The served VirtualService version (`None`: Istio is not installed).
    istio_version: Option<String>,
    discovered: RwLock<BTreeMap<String, ApiResource>>,
}

impl Kinds {
    /// Kinds for a cluster whose Istio VirtualService is served at `istio_version`.
    pub fn new(istio_version: Option<String>) -> Self {
        Self {
            istio_version,
            discovered: RwLock::new(BTreeMap::new()),
        }
    }

    /// Asks the cluster which VirtualService version it serves.
    pub async fn discover(client: &Client) -> Result<Self, Error> {
        let groups = discovery::Discovery::new(client.clone())
            .filter(&[ISTIO_GROUP])
            .run()
            .await
            .map_err(|e| Error::kube("discover the Istio API group", e))?;
        let versions: Vec<String> = groups
            .groups()
            .filter(|g| g.name() == ISTIO_GROUP)
            .flat_map(|g| g.versions().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        let istio_version = ["v1", "v1beta1"]
            .into_iter()
            .find(|v| versions.iter().any(|have| have == v))
            .map(str::to_owned);
        if istio_version.is_none() {
            tracing::warn!(
                "the cluster serves no {ISTIO_GROUP} VirtualService (v1 or v1beta1); routing objects cannot be applied"
            );
        }
        Ok(Self::new(istio_version))
    }

    /// The served VirtualService version, if Istio is installed.
    pub fn istio_version(&self) -> Option<&str> {
        self.istio_version.as_deref()
    }

    /// The API resource of `api_version`/`kind`, resolving through discovery once for
    /// kinds the service does not know.
    pub async fn resolve(
        &self,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<ApiResource, Error> {
        if let Some(ar) = self.known(api_version, kind)? {
            return Ok(ar);
        }
        let key = format!("{api_version}/{kind}");
        if let Some(ar) = self
            .discovered
            .read()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return Ok(ar);
        }
        let (group, version) = split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, _caps) = discovery::pinned_kind(client, &gvk).await.map_err(|e| {
            Error::kube(
                &format!("find the {kind} kind ({api_version}) in the cluster"),
                e,
            )
        })?;
        if let Ok(mut m) = self.discovered.write() {
            m.insert(key, ar.clone());
        }
        Ok(ar)
    }

    /// The resource for kinds known without discovery; an error for Istio kinds when
    /// Istio is missing.
    pub fn known(&self, api_version: &str, kind: &str) -> Result<Option<ApiResource>, Error> {
        if let Some((av, k, plural)) = FIXED
            .iter()
            .find(|(av, k, _)| *av == api_version && *k == kind)
        {
            return Ok(Some(api_resource(av, k, plural)));
        }
        let (group, _) = split_api_version(api_version);
        if group == ISTIO_GROUP && kind == "VirtualService" {
            return match &self.istio_version {
                Some(v) => Ok(Some(api_resource(
                    &format!("{ISTIO_GROUP}/{v}"),
                    kind,
                    "virtualservices",
                ))),
                None => Err(Error::Degraded(format!(
                    "the cluster serves no {ISTIO_GROUP} VirtualService; install Istio or set virtualService.enabled=false"
                ))),
            };
        }
        Ok(None)
    }
}

/// Splits `group/version` (`v1` for the core group).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

fn api_resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = split_api_version(api_version);
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_services_follow_the_served_version() {
        let v1beta1 = Kinds::new(Some("v1beta1".into()));
        let ar = v1beta1
            .known("networking.istio.io/v1", "VirtualService")
            .unwrap()
            .unwrap();
        assert_eq!(ar.api_version, "networking.istio.io/v1beta1");
        let none = Kinds::new(None);
        assert!(matches!(
            none.known("networking.istio.io/v1", "VirtualService"),
            Err(Error::Degraded(_))
        ));
        assert_eq!(none.known("v1", "Pod").unwrap().unwrap().plural, "pods");
        assert!(none.known("example.com/v1", "Widget").unwrap().is_none());
    }
}
