//! Computing the values of one instance from configuration, owner, repositories and the
//! admin's values.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use serde_json::Value;

use super::InstanceSettings;
use super::{
    AccessValues, InstanceValues, Owner, Repo, RepoValues, ResourceValues, Resources,
    StorageValues, UserValues, Values, ValuesError, merge::apply_sets, overrides::Overrides,
};
use crate::naming;

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
        let access = AccessValues::build(settings, owner.sub.as_deref(), &host);

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
                git_identity: naming::git_identity_name(&name),
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
                max_size: overrides.max_size,
            },
            // NB: the render layer sets the chosen profile (see `render::build_values`).
            profile: super::ProfileValues::default(),
            labels,
            selector_labels,
            annotations,
            repository_limit: overrides.repository_limit,
            git_identity: overrides.git_identity,
            extra,
        })
    }
}

/// Builds the full values for `owner`'s instance: `base` (a template set's values:
/// values.yaml and the values files, merged when the set was loaded), then `--set`
/// overrides, over the configured settings. Reads no files.
///
/// NB: without `--set` the instance shares `base` itself, so the renderer can reuse the
/// set's converted copy instead of converting the values once per render.
pub fn build_values(
    base: &Arc<Value>,
    settings: &InstanceSettings,
    owner: &Owner,
    repos: &[Repo],
    sets: &[String],
) -> Result<Values, ValuesError> {
    let extra = if sets.is_empty() {
        Arc::clone(base)
    } else {
        let mut extra = (**base).clone();
        apply_sets(&mut extra, sets)?;
        Arc::new(extra)
    };
    Values::build(settings, owner, repos, extra)
}

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

    /// The values of user `u` with one repository over `extra`.
    fn build(extra: Value) -> Result<Values, ValuesError> {
        Values::build(
            &settings(),
            &Owner::new("u"),
            &[repo("o", "n")],
            Arc::new(extra),
        )
    }

    #[test]
    fn values_yaml_overrides_configuration_and_is_validated() {
        let extra = json!({"image": "img:2", "resources": {"limits": {"memory": "8Gi"}}, "storage": {"size": "20Gi"}});
        let v = build(extra).unwrap();
        assert_eq!(
            (v.image.as_str(), v.resources.limits.memory.as_str()),
            ("img:2", "8Gi")
        );
        assert_eq!(
            (v.storage.size.as_str(), v.resources.requests.cpu.as_str()),
            ("20Gi", "500m")
        );
        let bad = json!({"storage": {"size": "lots"}});
        let err = build(bad).unwrap_err();
        assert!(err.to_string().contains("storage.size"), "{err}");
    }

    #[test]
    fn the_repository_limit_defaults_to_twenty_and_is_checked() {
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
}
