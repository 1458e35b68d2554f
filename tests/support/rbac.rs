//! What `k8s/03-rbac.yaml` grants the service, in the form the API server authorises
//! requests: (API group, resource[/subresource], verb).
//!
//! A test that records the requests the service sends can compare them with
//! [`role_grants`]. NB: the API server authorises a server-side apply that creates an
//! object as `patch` AND `create`, so such a request needs both triples.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

use super::{Document, known_fields::strict, manifests};

/// One granted permission: API group (`""` for core), resource (`pods/log` for a
/// subresource) and verb.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub group: String,
    pub resource: String,
    pub verb: String,
}

impl Grant {
    pub fn new(group: &str, resource: &str, verb: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
            verb: verb.to_owned(),
        }
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)
    }
}

/// The documents of `03-rbac.yaml`.
pub fn rbac_documents() -> Vec<Document> {
    manifests()
        .into_iter()
        .filter(|d| d.file == "03-rbac.yaml")
        .collect()
}

/// The service's Role, typed.
pub fn role() -> Role {
    let documents = rbac_documents();
    let role = super::find(&documents, "Role", "codeserver-service");
    strict::<Role>(&role.value).unwrap_or_else(|err| panic!("{}: {err}", role.describe()))
}

/// Every Role of `03-rbac.yaml`, typed: the one in the instances namespace.
pub fn roles() -> Vec<Role> {
    vec![role()]
}

/// The binding of the Role to the service account, typed.
pub fn role_binding() -> RoleBinding {
    let documents = rbac_documents();
    let binding = super::find(&documents, "RoleBinding", "codeserver-service");
    strict::<RoleBinding>(&binding.value)
        .unwrap_or_else(|err| panic!("{}: {err}", binding.describe()))
}

/// The service's one ClusterRole (`get` on StorageClasses, for resizeStorage), typed.
pub fn cluster_role() -> ClusterRole {
    let documents = rbac_documents();
    let role = super::find(&documents, "ClusterRole", CLUSTER_ROLE);
    strict::<ClusterRole>(&role.value).unwrap_or_else(|err| panic!("{}: {err}", role.describe()))
}

/// The binding of the ClusterRole to the service account, typed.
pub fn cluster_role_binding() -> ClusterRoleBinding {
    let documents = rbac_documents();
    let binding = super::find(&documents, "ClusterRoleBinding", CLUSTER_ROLE);
    strict::<ClusterRoleBinding>(&binding.value)
        .unwrap_or_else(|err| panic!("{}: {err}", binding.describe()))
}

/// The name of the ClusterRole and its binding.
pub const CLUSTER_ROLE: &str = "codeserver-service-storageclasses";

/// Every (group, resource, verb) the ClusterRole grants.
pub fn cluster_role_grants() -> BTreeSet<Grant> {
    grants_of(&as_role(&cluster_role()))
}

/// `cluster` as a Role without a namespace (the rules are the same type).
fn as_role(cluster: &ClusterRole) -> Role {
    Role {
        metadata: cluster.metadata.clone(),
        rules: cluster.rules.clone(),
    }
}

/// Every (group, resource, verb) the Role grants, expanded from its rules.
pub fn role_grants() -> BTreeSet<Grant> {
    grants_of(&role())
}

/// Every (group, resource, verb) `role` grants.
pub fn grants_of(role: &Role) -> BTreeSet<Grant> {
    let mut grants = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    grants.insert(Grant::new(group, resource, verb));
                }
            }
        }
    }
    grants
}

/// One request the service sent, in the API server's authorisation terms (the
/// simulated cluster records these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group, `""` for core.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`log`, `status`), if any.
    pub subresource: Option<String>,
    /// Namespace of the request; `None` for a cluster-scoped one.
    pub namespace: Option<String>,
    /// A PATCH with a field manager: a server-side apply, which may create the object.
    pub apply: bool,
}

impl Request {
    /// The grants this request needs.
    ///
    /// NB: the API server authorises a server-side apply of an object that does not
    /// exist as `create` as well as `patch`; a recording cannot tell which applies
    /// created, so every apply needs both.
    pub fn needs(&self) -> Vec<Grant> {
        let resource = match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        };
        let mut grants = vec![Grant::new(&self.group, &resource, &self.verb)];
        if self.apply {
            grants.push(Grant::new(&self.group, &resource, "create"));
        }
        grants
    }
}

/// How a set of recorded requests compares with what the Role grants.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Requests the Role does not allow (so a real cluster would answer 403).
    pub denied: Vec<String>,
    /// Grants no request used (so the Role is wider than the service needs).
    pub unused: Vec<Grant>,
}

/// Compares `requests` with `role`: every request must be allowed (namespaced in the
/// Role's namespace, with every grant it needs), and every grant must be used.
pub fn compare(role: &Role, requests: &[Request]) -> Comparison {
    compare_roles(std::slice::from_ref(role), requests)
}

/// Compares `requests` with `roles` (namespaced requests) and `cluster` (cluster-scoped
/// requests, such as a StorageClass read): every request must be allowed, and every grant
/// of every Role and of the ClusterRole must be used.
///
/// NB: a bound ClusterRole would allow its verbs in every namespace too; only the
/// cluster-scoped requests count here, so that the Roles alone must cover the namespaced
/// ones.
pub fn compare_with_cluster(
    roles: &[Role],
    cluster: &ClusterRole,
    requests: &[Request],
) -> Comparison {
    let (scoped, namespaced): (Vec<Request>, Vec<Request>) = requests
        .iter()
        .cloned()
        .partition(|r| r.namespace.is_none());
    let mut comparison = compare_roles(roles, &namespaced);
    let granted = grants_of(&as_role(cluster));
    let mut used = BTreeSet::new();
    for request in &scoped {
        for grant in request.needs() {
            if granted.contains(&grant) {
                used.insert(grant);
            } else {
                comparison
                    .denied
                    .push(format!("{grant} (cluster-scoped) is not granted"));
            }
        }
    }
    comparison.denied.sort();
    comparison.denied.dedup();
    comparison
        .unused
        .extend(granted.into_iter().filter(|g| !used.contains(g)));
    comparison
}

/// Compares `requests` with `roles` (one per namespace, as RBAC binds them): every
/// request must be allowed by the Role of its namespace, and every grant of every Role
/// must be used.
pub fn compare_roles(roles: &[Role], requests: &[Request]) -> Comparison {
    let mut used: BTreeSet<(Option<String>, Grant)> = BTreeSet::new();
    let mut denied = Vec::new();
    for request in requests {
        let Some(role) = roles
            .iter()
            .find(|r| r.metadata.namespace.is_some() && r.metadata.namespace == request.namespace)
        else {
            let covered: Vec<Option<&str>> = roles
                .iter()
                .map(|r| r.metadata.namespace.as_deref())
                .collect();
            denied.push(format!(
                "{} {}/{} in namespace {:?}: the Roles cover only {:?}",
                request.verb, request.group, request.resource, request.namespace, covered
            ));
            continue;
        };
        let granted = grants_of(role);
        for grant in request.needs() {
            if granted.contains(&grant) {
                used.insert((request.namespace.clone(), grant));
            } else {
                denied.push(format!(
                    "{grant} is not granted in {:?}",
                    request.namespace.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    denied.sort();
    denied.dedup();
    let mut unused = Vec::new();
    for role in roles {
        let namespace = role.metadata.namespace.clone();
        for grant in grants_of(role) {
            if !used.contains(&(namespace.clone(), grant.clone())) {
                unused.push(grant);
            }
        }
    }
    Comparison { denied, unused }
}
