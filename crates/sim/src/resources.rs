//! The resource types the simulated cluster serves, with the names discovery reports.

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group, `""` for core.
    pub group: &'static str,
    /// Served versions; the first is the storage and preferred version.
    pub versions: &'static [&'static str],
    /// Plural (the REST path segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Subresources served (`status`, `log`).
    pub subresources: &'static [&'static str],
}

impl ResourceDef {
    /// `group/version` or `version` for core.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The storage version.
    pub fn storage_version(&self) -> &'static str {
        self.versions[0]
    }

    /// `Kind` or `Kind.group`, the form used in 422 messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `plural` or `plural.group`, the form used in 404/409 messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether writes to the spec bump `metadata.generation`.
    // NB: pods only carry a generation from Kubernetes 1.33 on; this server is 1.32.
    pub fn has_generation(&self) -> bool {
        // NB: every custom resource counts generations (the API server does it for CRDs).
        matches!(
            self.plural,
            "jobs"
                | "daemonsets"
                | "networkpolicies"
                | "virtualservices"
                | "authorizationpolicies"
                | "requestauthentications"
        )
    }
}

const NONE: &[&str] = &[];

/// Every served resource; the index in this table is the resource id used by the store.
pub const RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        subresources: &["status"],
    },
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        subresources: &["status", "log"],
    },
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        subresources: &["status"],
    },
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short_names: &["pvc"],
        subresources: &["status"],
    },
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: NONE,
        subresources: NONE,
    },
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        subresources: NONE,
    },
    ResourceDef {
        group: "networking.k8s.io",
        versions: &["v1"],
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        subresources: NONE,
    },
    ResourceDef {
        group: "batch",
        versions: &["v1"],
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: NONE,
        subresources: &["status"],
    },
    ResourceDef {
        group: "networking.istio.io",
        versions: &["v1", "v1beta1"],
        plural: "virtualservices",
        singular: "virtualservice",
        kind: "VirtualService",
        namespaced: true,
        short_names: &["vs"],
        subresources: NONE,
    },
    // NB: Istio's security CRDs serve v1 (stored) and v1beta1 with one schema, and no
    // status subresource is used here.
    ResourceDef {
        group: "security.istio.io",
        versions: &["v1", "v1beta1"],
        plural: "authorizationpolicies",
        singular: "authorizationpolicy",
        kind: "AuthorizationPolicy",
        namespaced: true,
        short_names: &["ap"],
        subresources: NONE,
    },
    ResourceDef {
        group: "security.istio.io",
        versions: &["v1", "v1beta1"],
        plural: "requestauthentications",
        singular: "requestauthentication",
        kind: "RequestAuthentication",
        namespaced: true,
        short_names: &["ra"],
        subresources: NONE,
    },
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        subresources: NONE,
    },
    // NB: leader election of the idle culler (client-go's lease lock: get, create, update
    // with the read resourceVersion; a stale one answers 409).
    ResourceDef {
        group: "coordination.k8s.io",
        versions: &["v1"],
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: NONE,
        subresources: NONE,
    },
    // NB: the nodes the DaemonSet controller schedules on (one Ready node, `sim-node`, is
    // there from the start, as the kubelet stand-in puts every pod on it).
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        subresources: &["status"],
    },
    ResourceDef {
        group: "apps",
        versions: &["v1"],
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        subresources: &["status"],
    },
    // NB: what the PersistentVolumeClaimResize admission plugin reads (a claim grows only
    // where its class sets allowVolumeExpansion: true); one default class, `standard`, is
    // there from the start.
    ResourceDef {
        group: "storage.k8s.io",
        versions: &["v1"],
        plural: "storageclasses",
        singular: "storageclass",
        kind: "StorageClass",
        namespaced: false,
        short_names: &["sc"],
        subresources: NONE,
    },
    // NB: the LimitRanger admission plugin enforces their PersistentVolumeClaim limits.
    ResourceDef {
        group: "",
        versions: &["v1"],
        plural: "limitranges",
        singular: "limitrange",
        kind: "LimitRange",
        namespaced: true,
        short_names: &["limits"],
        subresources: NONE,
    },
];

/// Resource id (index into [`RESOURCES`]).
pub type ResId = u8;

/// Find a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<(ResId, &'static ResourceDef)> {
    RESOURCES
        .iter()
        .enumerate()
        .find(|(_, r)| r.group == group && r.plural == plural && r.versions.contains(&version))
        .map(|(i, r)| (i as ResId, r))
}

/// Find a resource by plural alone (the first group serving it).
pub fn find_plural(plural: &str) -> Option<(ResId, &'static ResourceDef)> {
    RESOURCES
        .iter()
        .enumerate()
        .find(|(_, r)| r.plural == plural)
        .map(|(i, r)| (i as ResId, r))
}

/// Find a resource by kind and apiVersion (`group/version`).
pub fn find_kind(api_version: &str, kind: &str) -> Option<(ResId, &'static ResourceDef)> {
    let (group, version) = split_api_version(api_version);
    RESOURCES
        .iter()
        .enumerate()
        .find(|(_, r)| r.group == group && r.kind == kind && r.versions.contains(&version))
        .map(|(i, r)| (i as ResId, r))
}

/// The definition for a resource id.
pub fn def(id: ResId) -> &'static ResourceDef {
    &RESOURCES[id as usize]
}

/// Split `group/version` (or `version`) into its parts.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Resource ids.
pub mod ids {
    use super::ResId;
    /// namespaces
    pub const NAMESPACES: ResId = 0;
    /// pods
    pub const PODS: ResId = 1;
    /// services
    pub const SERVICES: ResId = 2;
    /// persistentvolumeclaims
    pub const PVCS: ResId = 3;
    /// jobs
    pub const JOBS: ResId = 7;
    /// events (core/v1)
    pub const EVENTS: ResId = 11;
    /// nodes
    pub const NODES: ResId = 13;
    /// daemonsets (apps/v1)
    pub const DAEMONSETS: ResId = 14;
    /// storageclasses (storage.k8s.io/v1)
    pub const STORAGECLASSES: ResId = 15;
    /// limitranges
    pub const LIMITRANGES: ResId = 16;
}

#[cfg(test)]
mod tests {
    use super::{RESOURCES, ResId, ids};

    #[test]
    fn every_resource_id_names_its_resource() {
        let plural = |id: ResId| RESOURCES[usize::from(id)].plural;
        assert_eq!(plural(ids::NAMESPACES), "namespaces");
        assert_eq!(plural(ids::PODS), "pods");
        assert_eq!(plural(ids::SERVICES), "services");
        assert_eq!(plural(ids::PVCS), "persistentvolumeclaims");
        assert_eq!(plural(ids::JOBS), "jobs");
        assert_eq!(plural(ids::EVENTS), "events");
        assert_eq!(plural(ids::NODES), "nodes");
        assert_eq!(plural(ids::DAEMONSETS), "daemonsets");
        assert_eq!(plural(ids::STORAGECLASSES), "storageclasses");
        assert_eq!(plural(ids::LIMITRANGES), "limitranges");
    }
}
