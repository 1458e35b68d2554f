//! Values: everything a template may use, as plain serializable data. Computing them needs
//! no cluster: configuration, the user, the repositories, and `extra` (the admin's
//! `values.yaml`, extra values files and `--set` overrides merged in, as Helm does).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    config::InstanceSettings,
    naming::{self, NamingError},
    quantity,
};

/// Who an instance belongs to, as the caller's identity gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user id (`preferred_username`), any characters.
    pub user_id: String,
    /// The user's email, when known.
    pub email: Option<String>,
    /// The token's `sub`, when there is one: the durable owner key.
    pub sub: Option<String>,
    /// The safe name of the owner's existing instance, which is kept when the username
    /// changes (the instance is found by `sub`).
    pub known_name: Option<String>,
    /// The caller's bearer token, for asking Gitea as them in the forwarding mode
    /// (`Debug` redacts it).
    pub gitea_token: Option<crate::config::Secret>,
}

impl Owner {
    /// An owner known only by user id.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            email: None,
            sub: None,
            known_name: None,
            gitea_token: None,
        }
    }
}

/// A repository of the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repo {
    /// Gitea owner (user or organisation).
    pub owner: String,
    /// Repository name.
    pub name: String,
    /// URL to clone from.
    pub clone_url: String,
    /// Gitea's SSH URL, which the instance's deploy key reads; clones prefer it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_url: Option<String>,
}

impl Repo {
    /// A repository, with owner and name checked against Gitea's rules.
    pub fn new(owner: &str, name: &str, clone_url: &str) -> Result<Self, NamingError> {
        naming::validate_repo_part("owner", owner)?;
        naming::validate_repo_part("name", name)?;
        naming::validate_clone_url(clone_url)?;
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
            clone_url: clone_url.to_owned(),
            ssh_url: None,
        })
    }

    /// The repository with Gitea's SSH URL (`ssh://...` or `user@host:path`), checked.
    pub fn with_ssh_url(mut self, url: &str) -> Result<Self, NamingError> {
        naming::validate_ssh_url(url)?;
        self.ssh_url = Some(url.to_owned());
        Ok(self)
    }

    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The name of the repository's deploy key in the instance's credentials Secret:
    /// `id-` and a hash of `owner/name` (unique per repository, a valid Secret key).
    pub fn key_slot(&self) -> String {
        let digest = naming::hex_digest(self.full_name().to_ascii_lowercase().as_bytes());
        format!("id-{}", &digest[..20])
    }
}

/// Something wrong with the inputs of `Values`.
#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    /// The user id or a repository name is unusable.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// A values file could not be read.
    #[error("cannot read values file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A values file is not a YAML mapping.
    #[error("values file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A `--set` override is malformed.
    #[error("invalid --set {0:?}: expected key.path=value with a non-empty key")]
    Set(String),
    /// A typed value overridden in values.yaml is malformed.
    #[error("invalid value for {key} in values: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No repository was given.
    #[error("an instance needs at least one repository")]
    NoRepos,
}

/// The user, as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct UserValues {
    /// The original id, any characters (emit it only through the YAML-safe formatter).
    pub id: String,
    /// The DNS-safe name.
    pub name: String,
    /// Email, or empty.
    pub email: String,
    /// The durable owner key (label-safe).
    pub owner: String,
}

/// Names of the instance's objects.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceValues {
    /// Instance id, also the pod and Service name.
    pub id: String,
    /// Pod name.
    pub pod: String,
    /// Service name.
    pub service: String,
    /// Workspace PVC name.
    pub pvc: String,
    /// Host name.
    pub host: String,
    /// Browser URL.
    pub url: String,
    /// The instance's own Secret of read-only deploy keys (written by the service, never
    /// rendered): mounted only where git runs.
    pub credentials: String,
}

/// Who may reach the instance, as the per-instance access policy names it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessValues {
    /// JWT_ISSUER, or empty when it is not configured.
    pub issuer: String,
    /// The owner's token `sub` as given (any characters), or empty when unknown.
    pub sub: String,
    /// The owner's Istio request principal `<issuer>/<sub>`; empty when the issuer or
    /// the `sub` is unknown (a policy then names no principal and lets nobody in).
    pub principal: String,
    /// The host forms a request for the instance may carry: the host, and the host
    /// with any port (`<host>:*`, Istio's prefix match).
    pub hosts: Vec<String>,
    /// Namespace of the ingress gateway, where the access policy lives.
    pub gateway_namespace: String,
}

impl AccessValues {
    fn build(
        settings: &InstanceSettings,
        sub: Option<&str>,
        host: &str,
    ) -> Result<Self, ValuesError> {
        let issuer = settings.jwt_issuer.clone().unwrap_or_default();
        let sub = sub.unwrap_or_default().to_owned();
        let principal = if issuer.is_empty() || sub.is_empty() {
            String::new()
        } else {
            naming::request_principal(&issuer, &sub)?
        };
        Ok(Self {
            issuer,
            sub,
            principal,
            hosts: vec![host.to_owned(), format!("{host}:*")],
            gateway_namespace: settings.gateway_namespace.clone(),
        })
    }
}

/// A repository, as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct RepoValues {
    /// Gitea owner.
    pub owner: String,
    /// Repository name.
    pub name: String,
    /// Clone URL.
    pub clone_url: String,
    /// Directory under the workspace (the name; `owner-name` when two repos share a name).
    pub path: String,
    /// The URL git fetches: Gitea's SSH URL when known, else the clone URL.
    pub fetch_url: String,
    /// The file of the repository's deploy key in the credentials Secret.
    pub key: String,
}

/// CPU and memory.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceValues {
    /// CPU quantity.
    pub cpu: String,
    /// Memory quantity.
    pub memory: String,
}

/// Requests and limits of the code-server container.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    /// Requests.
    pub requests: ResourceValues,
    /// Limits.
    pub limits: ResourceValues,
}

/// The workspace volume.
#[derive(Debug, Clone, Serialize)]
pub struct StorageValues {
    /// Requested size.
    pub size: String,
    /// Storage class; empty means the cluster default.
    pub class: String,
}

/// Everything a template may use.
#[derive(Debug, Clone, Serialize)]
pub struct Values {
    /// The owner.
    pub user: UserValues,
    /// Object names, host and URL.
    pub instance: InstanceValues,
    /// Namespace of every object (the access policy's is `access.gateway_namespace`).
    pub namespace: String,
    /// Who may reach the instance: issuer, owner `sub`, principal, hosts.
    pub access: AccessValues,
    /// Repositories, in the order they were added.
    pub repos: Vec<RepoValues>,
    /// The repository list as JSON, for the PVC's instance record annotation.
    pub repos_json: String,
    /// One `path key url` line per repository: the clone script's REPOS environment
    /// variable.
    pub clone_list: String,
    /// code-server image.
    pub image: String,
    /// Requests and limits.
    pub resources: Resources,
    /// Workspace volume.
    pub storage: StorageValues,
    /// The standard labels every object carries.
    pub labels: BTreeMap<String, String>,
    /// The labels that select the instance's pod.
    pub selector_labels: BTreeMap<String, String>,
    /// The standard annotations every object carries.
    pub annotations: BTreeMap<String, String>,
    /// Most repositories one instance may hold (`limits.repositoriesPerInstance`).
    #[serde(skip)]
    pub repository_limit: usize,
    /// The admin's values (values.yaml, values files, --set), free-form. Shared: every
    /// instance rendered without `--set` uses the template set's own copy.
    #[serde(skip)]
    pub extra: Arc<Value>,
}

impl Values {
    /// Computes the values for `owner`'s instance with `repos` (at least one).
    pub fn build(
        settings: &InstanceSettings,
        owner: &Owner,
        repos: &[Repo],
        extra: Arc<Value>,
    ) -> Result<Self, ValuesError> {
        if repos.is_empty() {
            return Err(ValuesError::NoRepos);
        }
        let derived = naming::safe_name(&owner.user_id)?;
        let name = match &owner.known_name {
            Some(known)
                if naming::is_dns_label(known) && known.len() <= naming::MAX_SAFE_NAME_LEN =>
            {
                known.clone()
            }
            _ => derived,
        };
        for repo in repos {
            naming::validate_repo_part("owner", &repo.owner)?;
            naming::validate_repo_part("name", &repo.name)?;
            naming::validate_clone_url(&repo.clone_url)?;
            if let Some(ssh) = &repo.ssh_url {
                naming::validate_ssh_url(ssh)?;
            }
        }
        let id = naming::instance_id(&name);
        let overrides = Overrides::from_extra(&extra)?;
        let host = naming::host(&name, &settings.base_domain);
        let owner_key = naming::owner_key(owner.sub.as_deref(), &name);
        let access = AccessValues::build(settings, owner.sub.as_deref(), &host)?;

        let selector_labels = BTreeMap::from([
            (
                naming::LABEL_NAME.to_owned(),
                naming::APP_NAME_VALUE.to_owned(),
            ),
            (naming::LABEL_INSTANCE.to_owned(), id.clone()),
        ]);
        let mut labels = selector_labels.clone();
        labels.insert(
            naming::LABEL_MANAGED_BY.to_owned(),
            naming::MANAGED_BY_VALUE.to_owned(),
        );
        labels.insert(naming::LABEL_USER.to_owned(), name.clone());
        labels.insert(naming::LABEL_OWNER.to_owned(), owner_key.clone());
        let mut annotations =
            BTreeMap::from([(naming::ANNOTATION_USER_ID.to_owned(), owner.user_id.clone())]);
        if let Some(email) = owner.email.as_ref().filter(|e| !e.is_empty()) {
            annotations.insert(naming::ANNOTATION_EMAIL.to_owned(), email.clone());
        }
        // NB: only a hashed key loses the `sub`; an unhashed one is the `sub` itself.
        if let Some(sub) = owner
            .sub
            .as_ref()
            .filter(|s| **s != owner_key && !s.is_empty())
        {
            annotations.insert(naming::ANNOTATION_SUB.to_owned(), sub.clone());
        }

        let repos_json = serde_json::to_string(repos).map_err(|e| ValuesError::Invalid {
            key: "repos".to_owned(),
            message: e.to_string(),
        })?;
        let repos = repo_values(repos);
        let clone_list = clone_list(&repos);
        Ok(Self {
            user: UserValues {
                id: owner.user_id.clone(),
                name: name.clone(),
                email: owner.email.clone().unwrap_or_default(),
                owner: owner_key,
            },
            instance: InstanceValues {
                pod: id.clone(),
                service: id.clone(),
                pvc: naming::pvc_name(&name),
                credentials: naming::credentials_name(&name),
                url: format!("https://{host}"),
                host,
                id,
            },
            namespace: settings.namespace.clone(),
            access,
            repos,
            repos_json,
            clone_list,
            image: overrides.image.unwrap_or_else(|| settings.image.clone()),
            resources: Resources {
                requests: ResourceValues {
                    cpu: overrides.cpu.unwrap_or_else(|| settings.cpu.clone()),
                    memory: overrides.memory.unwrap_or_else(|| settings.memory.clone()),
                },
                limits: ResourceValues {
                    cpu: overrides
                        .cpu_limit
                        .unwrap_or_else(|| settings.cpu_limit.clone()),
                    memory: overrides
                        .memory_limit
                        .unwrap_or_else(|| settings.memory_limit.clone()),
                },
            },
            storage: StorageValues {
                size: overrides.size.unwrap_or_else(|| settings.pvc_size.clone()),
                class: overrides
                    .class
                    .unwrap_or_else(|| settings.pvc_storage_class.clone()),
            },
            labels,
            selector_labels,
            annotations,
            repository_limit: overrides.repository_limit,
            extra,
        })
    }
}

/// Repositories per instance when values.yaml does not say (`limits.repositoriesPerInstance`).
pub const DEFAULT_REPOSITORY_LIMIT: usize = 20;
/// The largest `limits.repositoriesPerInstance` accepted.
pub const MAX_REPOSITORY_LIMIT: usize = 1000;

impl Values {
    /// Leaves `lost` (repositories the owner may no longer read) out of what git gets
    /// (`repos`, `clone_list`); the instance record (`repos_json`) keeps them.
    pub fn exclude(&mut self, lost: &[Repo]) {
        self.repos
            .retain(|r| !lost.iter().any(|l| l.owner == r.owner && l.name == r.name));
        self.clone_list = clone_list(&self.repos);
    }
}

fn clone_list(repos: &[RepoValues]) -> String {
    repos
        .iter()
        .map(|r| format!("{} {} {}", r.path, r.key, r.fetch_url))
        .collect::<Vec<_>>()
        .join("\n")
}

fn repo_values(repos: &[Repo]) -> Vec<RepoValues> {
    let mut seen = BTreeSet::new();
    let duplicated: BTreeSet<&str> = repos
        .iter()
        .filter(|r| !seen.insert(r.name.as_str()))
        .map(|r| r.name.as_str())
        .collect();
    // NB: `owner-name` can be another repository's plain name (`x/foo` and `z/x-foo`):
    // a folder already taken gets a numbered suffix, so no two repositories share one.
    let mut taken = BTreeSet::new();
    repos
        .iter()
        .map(|r| {
            let preferred = if duplicated.contains(r.name.as_str()) {
                format!("{}-{}", r.owner, r.name)
            } else {
                r.name.clone()
            };
            let path = (1..)
                .map(|n| {
                    if n == 1 {
                        preferred.clone()
                    } else {
                        format!("{preferred}-{n}")
                    }
                })
                .find(|p| !taken.contains(p))
                .unwrap_or(preferred);
            taken.insert(path.clone());
            RepoValues {
                owner: r.owner.clone(),
                name: r.name.clone(),
                clone_url: r.clone_url.clone(),
                fetch_url: r.ssh_url.clone().unwrap_or_else(|| r.clone_url.clone()),
                key: r.key_slot(),
                path,
            }
        })
        .collect()
}

/// Typed settings an admin may override in values.yaml (`image`, `resources`, `storage`).
#[derive(Default)]
struct Overrides {
    image: Option<String>,
    cpu: Option<String>,
    memory: Option<String>,
    cpu_limit: Option<String>,
    memory_limit: Option<String>,
    size: Option<String>,
    class: Option<String>,
    repository_limit: usize,
}

impl Overrides {
    fn from_extra(extra: &Value) -> Result<Self, ValuesError> {
        let quantity = |path: &[&str]| -> Result<Option<String>, ValuesError> {
            match string_at(extra, path)? {
                Some(q) => quantity::parse_positive(&q).map(|_| Some(q)).map_err(|e| {
                    ValuesError::Invalid {
                        key: path.join("."),
                        message: e.to_string(),
                    }
                }),
                None => Ok(None),
            }
        };
        Ok(Self {
            image: string_at(extra, &["image"])?,
            cpu: quantity(&["resources", "requests", "cpu"])?,
            memory: quantity(&["resources", "requests", "memory"])?,
            cpu_limit: quantity(&["resources", "limits", "cpu"])?,
            memory_limit: quantity(&["resources", "limits", "memory"])?,
            size: quantity(&["storage", "size"])?,
            class: string_at(extra, &["storage", "class"])?,
            repository_limit: repository_limit(extra)?,
        })
    }
}

/// `limits.repositoriesPerInstance`: a whole number from 1 to [`MAX_REPOSITORY_LIMIT`];
/// [`DEFAULT_REPOSITORY_LIMIT`] when absent.
fn repository_limit(extra: &Value) -> Result<usize, ValuesError> {
    const KEY: &str = "limits.repositoriesPerInstance";
    match extra.pointer("/limits/repositoriesPerInstance") {
        None | Some(Value::Null) => Ok(DEFAULT_REPOSITORY_LIMIT),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_REPOSITORY_LIMIT).contains(n))
            .ok_or_else(|| ValuesError::Invalid {
                key: KEY.to_owned(),
                message: format!(
                    "expected a whole number from 1 to {MAX_REPOSITORY_LIMIT}, found {n}"
                ),
            }),
        Some(other) => Err(ValuesError::Invalid {
            key: KEY.to_owned(),
            message: format!("expected a whole number, found {other}"),
        }),
    }
}

/// The non-empty string at `path`, if any; other non-null types are an error.
fn string_at(extra: &Value, path: &[&str]) -> Result<Option<String>, ValuesError> {
    let mut cur = extra;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return Ok(None),
        }
    }
    match cur {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(ValuesError::Invalid {
            key: path.join("."),
            message: format!("expected a string, found {other}"),
        }),
    }
}

/// Parses a YAML values document into a mapping (an empty document is an empty mapping).
pub fn parse_values(path: &str, text: &str) -> Result<Value, ValuesError> {
    let parsed: Value = serde_yaml_ng::from_str(text).map_err(|e| ValuesError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    match parsed {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(parsed),
        _ => Err(ValuesError::Parse {
            path: path.to_owned(),
            message: "the top level must be a mapping".to_owned(),
        }),
    }
}

/// Reads and parses a values file.
pub fn read_values_file(path: &std::path::Path) -> Result<Value, ValuesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ValuesError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_values(&shown, &text)
}

/// Deep-merges `overlay` into `base`: mappings merge key by key, anything else replaces.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Applies one `--set key.path=value` (the value parsed as a YAML scalar, as Helm does).
pub fn apply_set(extra: &mut Value, assignment: &str) -> Result<(), ValuesError> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| ValuesError::Set(assignment.to_owned()))?;
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(ValuesError::Set(assignment.to_owned()));
    }
    let value = match serde_yaml_ng::from_str::<Value>(raw) {
        Ok(v @ (Value::Bool(_) | Value::Number(_) | Value::Null)) if !raw.is_empty() => v,
        _ => Value::String(raw.to_owned()),
    };
    let mut overlay = value;
    for key in path.rsplit('.') {
        overlay = Value::Object(Map::from_iter([(key.to_owned(), overlay)]));
    }
    merge(extra, overlay);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn no_two_repositories_share_a_folder() {
        let repo = |owner: &str, name: &str| {
            Repo::new(
                owner,
                name,
                &format!("http://gitea:3000/{owner}/{name}.git"),
            )
            .unwrap()
        };
        let repos = [repo("x", "foo"), repo("y", "foo"), repo("z", "x-foo")];
        let paths: Vec<String> = repo_values(&repos).into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["x-foo", "y-foo", "x-foo-2"]);
    }

    fn settings() -> InstanceSettings {
        InstanceSettings::default()
    }

    fn repo(owner: &str, name: &str) -> Repo {
        Repo::new(
            owner,
            name,
            &format!("http://gitea:3000/{owner}/{name}.git"),
        )
        .unwrap()
    }

    #[test]
    fn names_and_labels_follow_the_naming_scheme() {
        let owner = Owner {
            user_id: "John.Doe".into(),
            email: Some("john@corp".into()),
            sub: Some("3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f".into()),
            known_name: None,
            gitea_token: None,
        };
        let v = Values::build(
            &settings(),
            &owner,
            &[repo("devteam", "api")],
            Arc::new(json!({})),
        )
        .unwrap();
        assert!(v.instance.id.starts_with("code-server-john-doe-"));
        assert_eq!(v.instance.pvc, format!("workspace-{}", v.user.name));
        assert_eq!(
            v.instance.url,
            format!("https://code-{}.devplatform.local", v.user.name)
        );
        assert_eq!(v.labels[naming::LABEL_INSTANCE], v.instance.id);
        assert_eq!(
            v.labels[naming::LABEL_OWNER],
            "3f1c2a9e-8a7b-4c1d-9e2f-0a1b2c3d4e5f"
        );
        assert_eq!(v.annotations[naming::ANNOTATION_USER_ID], "John.Doe");
        assert_eq!(v.annotations[naming::ANNOTATION_EMAIL], "john@corp");
    }

    #[test]
    fn repos_sharing_a_name_get_distinct_paths() {
        let v = Values::build(
            &settings(),
            &Owner::new("u"),
            &[repo("a", "x"), repo("b", "x"), repo("a", "y")],
            Arc::new(json!({})),
        )
        .unwrap();
        let paths: Vec<&str> = v.repos.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["a-x", "b-x", "y"]);
    }

    #[test]
    fn values_yaml_overrides_configuration_and_is_validated() {
        let extra = json!({"image": "img:2", "resources": {"limits": {"memory": "8Gi"}}, "storage": {"size": "20Gi"}});
        let v = Values::build(
            &settings(),
            &Owner::new("u"),
            &[repo("o", "n")],
            Arc::new(extra),
        )
        .unwrap();
        assert_eq!(
            (v.image.as_str(), v.resources.limits.memory.as_str()),
            ("img:2", "8Gi")
        );
        assert_eq!(
            (v.storage.size.as_str(), v.resources.requests.cpu.as_str()),
            ("20Gi", "500m")
        );
        let bad = json!({"storage": {"size": "lots"}});
        let err = Values::build(
            &settings(),
            &Owner::new("u"),
            &[repo("o", "n")],
            Arc::new(bad),
        )
        .unwrap_err();
        assert!(err.to_string().contains("storage.size"), "{err}");
    }

    #[test]
    fn the_repository_limit_defaults_to_twenty_and_is_checked() {
        let build = |extra| {
            Values::build(
                &settings(),
                &Owner::new("u"),
                &[repo("o", "n")],
                Arc::new(extra),
            )
        };
        assert_eq!(build(json!({})).unwrap().repository_limit, 20);
        let set = json!({"limits": {"repositoriesPerInstance": 3}});
        assert_eq!(build(set).unwrap().repository_limit, 3);
        for bad in [json!(0), json!(-1), json!(1.5), json!("20"), json!(1001)] {
            let err = build(json!({"limits": {"repositoriesPerInstance": bad}})).unwrap_err();
            assert!(
                err.to_string().contains("limits.repositoriesPerInstance"),
                "{err}"
            );
        }
    }

    #[test]
    fn inputs_are_checked() {
        assert!(matches!(
            Values::build(&settings(), &Owner::new("u"), &[], Arc::new(json!({}))),
            Err(ValuesError::NoRepos)
        ));
        assert!(
            Values::build(
                &settings(),
                &Owner::new(""),
                &[repo("o", "n")],
                Arc::new(json!({}))
            )
            .is_err()
        );
        assert!(Repo::new("o", "a;b", "x").is_err());
    }

    #[test]
    fn merge_and_set_behave_like_helm() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        merge(&mut base, json!({"a": {"c": [3]}, "e": true}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [3]}, "d": "x", "e": true}));
        apply_set(&mut base, "a.b=2").unwrap();
        apply_set(&mut base, "f.g=true").unwrap();
        apply_set(&mut base, "h=hello: world").unwrap();
        apply_set(&mut base, "i=").unwrap();
        assert_eq!(base["a"]["b"], json!(2));
        assert_eq!(base["f"]["g"], json!(true));
        assert_eq!(base["h"], json!("hello: world"));
        assert_eq!(base["i"], json!(""));
        for bad in ["novalue", "=v", "a..b=1"] {
            assert!(apply_set(&mut base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_files_must_be_mappings() {
        assert_eq!(parse_values("f", "").unwrap(), json!({}));
        assert!(parse_values("f", "- a\n- b").is_err());
        assert!(
            parse_values("f", "a: [")
                .unwrap_err()
                .to_string()
                .contains("f")
        );
    }
}
