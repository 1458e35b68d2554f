//! Workspace profiles: the named sizes an admin offers in values.yaml (`profiles`,
//! `defaultProfile`). A profile's image, resources, storage and scheduling override the
//! global values for the instances that use it; what it leaves out falls back to them.
//! Read and checked when a template set loads, so a bad profile refuses the whole set.
//!
//! A set without `profiles` has one implicit profile, [`IMPLICIT_PROFILE`], that changes
//! nothing and is never recorded on an instance: such a set renders exactly as before.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{InstanceSettings, ResourceValues, Resources, ValuesError, overrides::Overrides};
use crate::{naming, quantity};

/// The name of the one profile of a set that declares none.
pub const IMPLICIT_PROFILE: &str = "default";
/// The most profiles one set may declare (the `profiles` query lists them all).
pub const MAX_PROFILES: usize = 50;
/// The longest `displayName`.
const MAX_DISPLAY_NAME_LEN: usize = 100;
/// The longest `description`.
const MAX_DESCRIPTION_LEN: usize = 1000;

/// CPU and memory quantities a profile sets; absent ones fall back to the global values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileQuantities {
    /// CPU.
    pub cpu: Option<String>,
    /// Memory.
    pub memory: Option<String>,
}

/// One profile as values.yaml declares it, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// A DNS label, unique in the set; what callers choose and instances record.
    pub name: String,
    /// For people; the name when values.yaml gives none.
    pub display_name: String,
    /// For people; empty when values.yaml gives none.
    pub description: String,
    /// The code-server image.
    pub image: Option<String>,
    /// Requests of the code-server container.
    pub requests: ProfileQuantities,
    /// Limits of the code-server container.
    pub limits: ProfileQuantities,
    /// Size of a new workspace volume (`storage.size`).
    pub storage_size: Option<String>,
    /// How far `resizeStorage` may grow the volume (`storage.maxSize`).
    pub storage_max_size: Option<String>,
    /// The pod's `nodeSelector`, replacing `pod.nodeSelector`.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// The pod's `tolerations`, replacing `pod.tolerations`.
    pub tolerations: Option<Vec<Value>>,
    /// Realm roles of which a caller needs one; empty: everyone.
    pub allowed_roles: Vec<String>,
}

/// Who chooses a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProfileAccess {
    /// Any profile: admins, and the service acting on its own (self-healing, dry runs).
    #[default]
    Any,
    /// A caller holding these realm roles.
    Roles(Vec<String>),
}

/// Why a profile cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// No profile of that name (among those the caller may see).
    #[error("unknown profile {name:?}; known: {}", known.join(", "))]
    Unknown {
        /// The name asked for (at most 63 characters of it).
        name: String,
        /// The profiles the caller may use.
        known: Vec<String>,
    },
    /// The profile needs a role the caller does not hold.
    #[error(
        "profile {0:?} is reserved for other roles; choose another profile, or ask an admin for access"
    )]
    NotAllowed(String),
}

impl Profile {
    /// True when `access` may use the profile.
    pub fn allows(&self, access: &ProfileAccess) -> bool {
        match access {
            ProfileAccess::Any => true,
            ProfileAccess::Roles(roles) => {
                self.allowed_roles.is_empty()
                    || self.allowed_roles.iter().any(|r| roles.contains(r))
            }
        }
    }

    /// True when the profile overrides none of the global values.
    pub fn is_plain(&self) -> bool {
        self.image.is_none()
            && self.requests == ProfileQuantities::default()
            && self.limits == ProfileQuantities::default()
            && self.storage_size.is_none()
            && self.storage_max_size.is_none()
            && self.node_selector.is_none()
            && self.tolerations.is_none()
    }

    /// `base` (a set's values) with the profile's overrides in place: `image`,
    /// `resources.*`, `storage.size`, `storage.maxSize`, and `pod.nodeSelector` and
    /// `pod.tolerations`, which the profile's replace whole.
    pub fn apply(&self, base: &Value) -> Value {
        let mut values = base.clone();
        let text = |s: &String| Value::String(s.clone());
        let mut set = |path: &[&str], value: Option<Value>| {
            if let Some(value) = value {
                set_path(&mut values, path, value);
            }
        };
        set(&["image"], self.image.as_ref().map(text));
        set(
            &["resources", "requests", "cpu"],
            self.requests.cpu.as_ref().map(text),
        );
        set(
            &["resources", "requests", "memory"],
            self.requests.memory.as_ref().map(text),
        );
        set(
            &["resources", "limits", "cpu"],
            self.limits.cpu.as_ref().map(text),
        );
        set(
            &["resources", "limits", "memory"],
            self.limits.memory.as_ref().map(text),
        );
        set(&["storage", "size"], self.storage_size.as_ref().map(text));
        set(
            &["storage", "maxSize"],
            self.storage_max_size.as_ref().map(text),
        );
        set(
            &["pod", "nodeSelector"],
            self.node_selector
                .as_ref()
                .map(|s| Value::Object(s.iter().map(|(k, v)| (k.clone(), text(v))).collect())),
        );
        set(
            &["pod", "tolerations"],
            self.tolerations.clone().map(Value::Array),
        );
        values
    }

    /// The implicit profile of a set that declares none.
    fn implicit() -> Self {
        Self {
            name: IMPLICIT_PROFILE.to_owned(),
            display_name: "Default".to_owned(),
            description: String::new(),
            image: None,
            requests: ProfileQuantities::default(),
            limits: ProfileQuantities::default(),
            storage_size: None,
            storage_max_size: None,
            node_selector: None,
            tolerations: None,
            allowed_roles: Vec::new(),
        }
    }
}

/// Sets the value at `path`, making (or replacing with) mappings on the way.
fn set_path(values: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = values;
    for key in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else {
            return;
        };
        cur = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(map) = cur {
        map.insert((*last).to_owned(), value);
    }
}

/// The profiles of a template set: the declared ones in order, or the implicit one.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiles {
    list: Vec<Profile>,
    default: usize,
    declared: bool,
}

impl Default for Profiles {
    /// The implicit profile alone.
    fn default() -> Self {
        Self {
            list: vec![Profile::implicit()],
            default: 0,
            declared: false,
        }
    }
}

impl Profiles {
    /// Reads and checks `profiles` and `defaultProfile` of a set's values; every problem
    /// found, each naming its key.
    pub fn from_values(values: &Value) -> Result<Self, Vec<ValuesError>> {
        let default_name = match values.get("defaultProfile") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(vec![invalid(
                    "defaultProfile",
                    format!("expected a profile name, found {other}"),
                )]);
            }
        };
        let declared = match values.get("profiles") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                return Err(vec![invalid(
                    "profiles",
                    format!("expected a list of profiles, found {other}"),
                )]);
            }
        };
        let Some(items) = declared else {
            return match default_name.as_deref() {
                None | Some(IMPLICIT_PROFILE) => Ok(Self::default()),
                Some(name) => Err(vec![invalid(
                    "defaultProfile",
                    format!("{name:?} names no profile: values declare no profiles"),
                )]),
            };
        };
        let mut problems = Vec::new();
        if items.is_empty() {
            problems.push(invalid(
                "profiles",
                "at least one profile is needed (remove the key for the implicit default)",
            ));
        }
        if items.len() > MAX_PROFILES {
            problems.push(invalid(
                "profiles",
                format!("at most {MAX_PROFILES} profiles, found {}", items.len()),
            ));
        }
        let mut list = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("profiles[{i}]");
            match parse_profile(item, &key) {
                Ok(profile) => {
                    if !seen.insert(profile.name.clone()) {
                        problems.push(invalid(
                            &format!("{key}.name"),
                            format!("{:?} is declared twice; names must be unique", profile.name),
                        ));
                    }
                    list.push(profile);
                }
                Err(found) => problems.extend(found),
            }
        }
        let default = match default_name.as_deref() {
            None => 0,
            Some(name) => match list.iter().position(|p| p.name == name) {
                Some(i) => i,
                None => {
                    problems.push(invalid(
                        "defaultProfile",
                        format!("{name:?} is not one of the profiles"),
                    ));
                    0
                }
            },
        };
        // NB: the default serves every caller that chooses nothing and every instance
        // from before profiles; a role on it would lock those out.
        if let Some(profile) = list.get(default).filter(|p| !p.allowed_roles.is_empty()) {
            problems.push(invalid(
                "defaultProfile",
                format!(
                    "the default profile {:?} must be open to everyone (no allowedRoles)",
                    profile.name
                ),
            ));
        }
        if problems.is_empty() {
            Ok(Self {
                list,
                default,
                declared: true,
            })
        } else {
            Err(problems)
        }
    }

    /// True when values.yaml declares profiles (instances then record theirs).
    pub fn declared(&self) -> bool {
        self.declared
    }

    /// Every profile, in the order values.yaml declares them.
    pub fn all(&self) -> &[Profile] {
        &self.list
    }

    /// The position of `name` among [`Self::all`].
    pub fn position(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|p| p.name == name)
    }

    /// The profile named `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.list.iter().find(|p| p.name == name)
    }

    /// The default profile (`defaultProfile`, else the first).
    pub fn default_profile(&self) -> &Profile {
        &self.list[self.default.min(self.list.len() - 1)]
    }

    /// The profile an instance uses when it records `recorded`: that one while the set
    /// still has it, else the default.
    pub fn effective(&self, recorded: Option<&str>) -> &Profile {
        recorded
            .and_then(|name| self.get(name))
            .unwrap_or_else(|| self.default_profile())
    }

    /// The profile `name` for `access`: `Unknown` (listing the profiles `access` may use)
    /// when the set has none of that name, `NotAllowed` when it needs another role.
    pub fn choose(&self, name: &str, access: &ProfileAccess) -> Result<&Profile, ProfileError> {
        match self.get(name) {
            Some(profile) if profile.allows(access) => Ok(profile),
            Some(_) => Err(ProfileError::NotAllowed(name.to_owned())),
            None => Err(ProfileError::Unknown {
                name: name.chars().take(naming::MAX_NAME_LEN).collect(),
                known: self
                    .list
                    .iter()
                    .filter(|p| p.allows(access))
                    .map(|p| p.name.clone())
                    .collect(),
            }),
        }
    }
}

/// What templates see of an instance's profile (`profile.name`, `profile.displayName`,
/// `profile.description`, `profile.isDefault`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileValues {
    /// The profile's name.
    pub name: String,
    /// For people.
    pub display_name: String,
    /// For people.
    pub description: String,
    /// True for the set's default profile.
    pub is_default: bool,
    /// Whether the instance records its profile: only when values.yaml declares profiles.
    #[serde(skip)]
    pub recorded: bool,
}

impl ProfileValues {
    /// The values of `profile` among `profiles`.
    pub fn of(profile: &Profile, profiles: &Profiles) -> Self {
        Self {
            name: profile.name.clone(),
            display_name: profile.display_name.clone(),
            description: profile.description.clone(),
            is_default: profile.name == profiles.default_profile().name,
            recorded: profiles.declared(),
        }
    }

    /// The name an instance records, when its set declares profiles.
    pub fn recorded_name(&self) -> Option<&str> {
        self.recorded.then_some(self.name.as_str())
    }
}

impl Default for ProfileValues {
    /// The implicit profile's.
    fn default() -> Self {
        Self::of(&Profile::implicit(), &Profiles::default())
    }
}

/// What instances of a profile get: the profile's own resources and storage size, else
/// the global values', else the configured settings' (as `Values` computes them).
#[derive(Debug, Clone)]
pub struct ProfileSizing {
    /// Requests and limits of the code-server container.
    pub resources: Resources,
    /// Size of a new workspace volume.
    pub storage: String,
}

impl ProfileSizing {
    /// The sizing `values` (a set's values with a profile applied) give over `settings`.
    pub fn of(settings: &InstanceSettings, values: &Value) -> Result<Self, ValuesError> {
        let o = Overrides::from_extra(values)?;
        Ok(Self {
            resources: Resources {
                requests: ResourceValues {
                    cpu: o.cpu.unwrap_or_else(|| settings.cpu.clone()),
                    memory: o.memory.unwrap_or_else(|| settings.memory.clone()),
                },
                limits: ResourceValues {
                    cpu: o.cpu_limit.unwrap_or_else(|| settings.cpu_limit.clone()),
                    memory: o
                        .memory_limit
                        .unwrap_or_else(|| settings.memory_limit.clone()),
                },
            },
            storage: o.size.unwrap_or_else(|| settings.pvc_size.clone()),
        })
    }

    /// Each request above its limit, as the API server refuses it (a pod's request may
    /// not exceed its limit: `ValidateResourceRequirements` in Kubernetes'
    /// `pkg/apis/core/validation/validation.go`).
    pub fn problems(&self) -> Vec<String> {
        let r = &self.resources;
        [
            ("cpu", &r.requests.cpu, &r.limits.cpu),
            ("memory", &r.requests.memory, &r.limits.memory),
        ]
        .into_iter()
        .filter_map(|(what, request, limit)| {
            let (Ok(q), Ok(l)) = (
                quantity::parse_positive(request),
                quantity::parse_positive(limit),
            ) else {
                return None;
            };
            (q > l)
                .then(|| format!("the {what} request {request} is above the {what} limit {limit}"))
        })
        .collect()
    }
}

/// A quantity as values.yaml writes it: text, or a bare number (`cpu: 2`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(serde_json::Number),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantitiesSpec {
    cpu: Option<Scalar>,
    memory: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourcesSpec {
    requests: Option<QuantitiesSpec>,
    limits: Option<QuantitiesSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StorageSpec {
    size: Option<Scalar>,
    max_size: Option<Scalar>,
}

/// A profile as written in values.yaml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProfileSpec {
    name: String,
    display_name: Option<String>,
    description: Option<String>,
    resources: Option<ResourcesSpec>,
    storage: Option<StorageSpec>,
    image: Option<String>,
    node_selector: Option<BTreeMap<String, String>>,
    tolerations: Option<Vec<Value>>,
    allowed_roles: Option<Vec<String>>,
}

fn invalid(key: &str, message: impl Into<String>) -> ValuesError {
    ValuesError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Reads and checks the profile `item` at `key` (`profiles[i]`).
fn parse_profile(item: &Value, key: &str) -> Result<Profile, Vec<ValuesError>> {
    let spec: ProfileSpec =
        serde_json::from_value(item.clone()).map_err(|e| vec![invalid(key, e.to_string())])?;
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| {
        problems.push(invalid(&format!("{key}.{field}"), message));
    };
    if !naming::is_dns_label(&spec.name) {
        problem(
            "name",
            format!(
                "{:?} is not a DNS label (1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit)",
                spec.name
            ),
        );
    }
    let display_name = spec.display_name.unwrap_or_else(|| spec.name.clone());
    for (field, text, most) in [
        ("displayName", &display_name, MAX_DISPLAY_NAME_LEN),
        (
            "description",
            spec.description.as_ref().unwrap_or(&String::new()),
            MAX_DESCRIPTION_LEN,
        ),
    ] {
        if text.chars().count() > most || text.chars().any(char::is_control) {
            problem(
                field,
                format!("at most {most} characters, no control characters"),
            );
        }
    }
    let mut quantity = |field: &str, q: Option<Scalar>| {
        let text = q.map(Scalar::text)?;
        match quantity::parse_positive(&text) {
            Ok(_) => Some(text),
            Err(e) => {
                problem(field, e.to_string());
                None
            }
        }
    };
    let (requests, limits) = match spec.resources {
        Some(ResourcesSpec { requests, limits }) => {
            let mut read = |side: &str, q: Option<QuantitiesSpec>| {
                let Some(q) = q else {
                    return ProfileQuantities::default();
                };
                ProfileQuantities {
                    cpu: quantity(&format!("resources.{side}.cpu"), q.cpu),
                    memory: quantity(&format!("resources.{side}.memory"), q.memory),
                }
            };
            (read("requests", requests), read("limits", limits))
        }
        None => Default::default(),
    };
    let (storage_size, storage_max_size) = match spec.storage {
        Some(StorageSpec { size, max_size }) => (
            quantity("storage.size", size),
            quantity("storage.maxSize", max_size),
        ),
        None => (None, None),
    };
    let mut more = Vec::new();
    more.extend(order_problem(
        "resources.requests.cpu",
        &requests.cpu,
        "resources.limits.cpu",
        &limits.cpu,
    ));
    more.extend(order_problem(
        "resources.requests.memory",
        &requests.memory,
        "resources.limits.memory",
        &limits.memory,
    ));
    more.extend(order_problem(
        "storage.size",
        &storage_size,
        "storage.maxSize",
        &storage_max_size,
    ));
    if let Some(image) = &spec.image
        && (image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        more.push((
            "image".to_owned(),
            format!("{image:?} is not an image reference"),
        ));
    }
    if let Some(selector) = &spec.node_selector {
        more.extend(node_selector_problems(selector));
    }
    if let Some(tolerations) = &spec.tolerations {
        more.extend(toleration_problems(tolerations));
    }
    let allowed_roles = spec.allowed_roles.unwrap_or_default();
    if allowed_roles.iter().any(|r| r.trim().is_empty()) {
        more.push((
            "allowedRoles".to_owned(),
            "a role may not be empty".to_owned(),
        ));
    }
    for (field, message) in more {
        problem(&field, message);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Profile {
        name: spec.name,
        display_name,
        description: spec.description.unwrap_or_default(),
        image: spec.image,
        requests,
        limits,
        storage_size,
        storage_max_size,
        node_selector: spec.node_selector,
        tolerations: spec.tolerations,
        allowed_roles,
    })
}

/// A problem when both quantities are set and `low` is above `high`.
fn order_problem(
    low_key: &str,
    low: &Option<String>,
    high_key: &str,
    high: &Option<String>,
) -> Option<(String, String)> {
    let (Some(l), Some(h)) = (low, high) else {
        return None;
    };
    let (Ok(lq), Ok(hq)) = (quantity::parse_positive(l), quantity::parse_positive(h)) else {
        return None;
    };
    (lq > hq).then(|| (low_key.to_owned(), format!("{l} is above {high_key} {h}")))
}

/// The problems of a `nodeSelector`: label keys and values, as the API server checks a
/// pod's (`ValidatePodSpec` runs `ValidateLabels` on it, Kubernetes'
/// `pkg/apis/core/validation/validation.go`).
fn node_selector_problems(selector: &BTreeMap<String, String>) -> Vec<(String, String)> {
    selector
        .iter()
        .filter(|(k, v)| !naming::is_qualified_key(k) || !naming::is_label_value(v))
        .map(|(k, v)| {
            (
                "nodeSelector".to_owned(),
                format!("{k:?}: {v:?} is not a label key and value"),
            )
        })
        .collect()
}

/// The problems of `tolerations`, as the API server checks a pod's (`ValidateTolerations`
/// in Kubernetes' `pkg/apis/core/validation/validation.go`): a qualified key, or none with
/// `Exists`; `Exists` with no value, `Equal` with a label value; a known effect;
/// `tolerationSeconds` only with `NoExecute`.
fn toleration_problems(tolerations: &[Value]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, item) in tolerations.iter().enumerate() {
        let key = format!("tolerations[{i}]");
        let toleration: k8s_openapi::api::core::v1::Toleration =
            match serde_json::from_value(item.clone()) {
                Ok(t) => t,
                Err(e) => {
                    problems.push((key, e.to_string()));
                    continue;
                }
            };
        let mut bad = |message: &str| problems.push((key.clone(), message.to_owned()));
        let t_key = toleration.key.as_deref().unwrap_or_default();
        let operator = toleration.operator.as_deref().unwrap_or_default();
        let value = toleration.value.as_deref().unwrap_or_default();
        let effect = toleration.effect.as_deref().unwrap_or_default();
        if !t_key.is_empty() && !naming::is_qualified_key(t_key) {
            bad("key must be a label key");
        }
        if t_key.is_empty() && operator != "Exists" {
            bad("operator must be Exists when key is empty");
        }
        match operator {
            "" | "Equal" if !naming::is_label_value(value) => bad("value must be a label value"),
            "" | "Equal" => {}
            "Exists" if !value.is_empty() => bad("value must be empty when operator is Exists"),
            "Exists" => {}
            _ => bad("operator must be Equal or Exists"),
        }
        if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            bad("effect must be NoSchedule, PreferNoSchedule or NoExecute");
        }
        if toleration.toleration_seconds.is_some() && effect != "NoExecute" {
            bad("tolerationSeconds needs effect NoExecute");
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(values: Value) -> String {
        match Profiles::from_values(&values) {
            Ok(p) => panic!("accepted: {p:?}"),
            Err(problems) => problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn no_profiles_is_one_implicit_profile_never_recorded() {
        let p = Profiles::from_values(&json!({"image": "x"})).unwrap();
        assert!(!p.declared());
        assert_eq!(p.default_profile().name, IMPLICIT_PROFILE);
        assert!(p.default_profile().is_plain());
        assert_eq!(ProfileValues::default().recorded_name(), None);
        let named = json!({"defaultProfile": "default"});
        assert_eq!(Profiles::from_values(&named).unwrap(), p);
        assert!(messages(json!({"defaultProfile": "large"})).contains("defaultProfile"));
    }

    #[test]
    fn declared_profiles_are_read_with_their_default() {
        let values = json!({
            "defaultProfile": "standard",
            "profiles": [
                {"name": "large", "resources": {"requests": {"cpu": 2}, "limits": {"memory": "8Gi"}},
                 "storage": {"size": "50Gi", "maxSize": "200Gi"}, "allowedRoles": ["big"],
                 "nodeSelector": {"pool": "large"},
                 "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "large", "effect": "NoSchedule"}]},
                {"name": "standard", "displayName": "Standard", "description": "Today's size"}
            ]
        });
        let p = Profiles::from_values(&values).unwrap();
        assert!(p.declared());
        assert_eq!(p.default_profile().name, "standard");
        let large = p.get("large").unwrap();
        assert_eq!(large.requests.cpu.as_deref(), Some("2"));
        assert_eq!(large.display_name, "large");
        assert!(!large.allows(&ProfileAccess::Roles(vec!["other".into()])));
        assert!(large.allows(&ProfileAccess::Roles(vec!["big".into()])));
        assert!(large.allows(&ProfileAccess::Any));
        let applied = large.apply(
            &json!({"pod": {"nodeSelector": {"zone": "a"}, "tolerations": []},
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}),
        );
        assert_eq!(applied["pod"]["nodeSelector"], json!({"pool": "large"}));
        assert_eq!(
            applied["resources"]["requests"],
            json!({"cpu": "2", "memory": "1Gi"})
        );
        assert_eq!(applied["resources"]["limits"], json!({"memory": "8Gi"}));
        assert_eq!(
            applied["storage"],
            json!({"size": "50Gi", "maxSize": "200Gi"})
        );
        assert_eq!(applied["pod"]["tolerations"][0]["key"], "dedicated");
        let roles = ProfileAccess::Roles(vec![]);
        assert_eq!(
            p.choose("gpu", &roles).unwrap_err().to_string(),
            "unknown profile \"gpu\"; known: standard"
        );
        assert!(matches!(
            p.choose("large", &roles),
            Err(ProfileError::NotAllowed(_))
        ));
        assert_eq!(p.effective(Some("gone")).name, "standard");
        assert_eq!(p.effective(Some("large")).name, "large");
    }

    #[test]
    fn bad_profiles_are_refused_naming_the_key() {
        let cases = [
            (json!({"profiles": []}), "profiles"),
            (json!({"profiles": {"name": "x"}}), "profiles"),
            (json!({"profiles": [{"name": "Large"}]}), "profiles[0].name"),
            (
                json!({"profiles": [{"name": "a"}, {"name": "a"}]}),
                "profiles[1].name",
            ),
            (
                json!({"profiles": [{"name": "a", "cpu": 2}]}),
                "unknown field `cpu`",
            ),
            (
                json!({"profiles": [{"name": "a", "resources": {"requests": {"cpu": "lots"}}}]}),
                "profiles[0].resources.requests.cpu",
            ),
            (
                json!({"profiles": [{"name": "a", "storage": {"size": "20Gi", "maxSize": "10Gi"}}]}),
                "profiles[0].storage.size",
            ),
            (
                json!({"profiles": [{"name": "a", "resources": {"requests": {"cpu": 4}, "limits": {"cpu": 2}}}]}),
                "profiles[0].resources.requests.cpu",
            ),
            (
                json!({"profiles": [{"name": "a", "nodeSelector": {"bad key!": "x"}}]}),
                "profiles[0].nodeSelector",
            ),
            (
                json!({"profiles": [{"name": "a", "tolerations": [{"operator": "Equal"}]}]}),
                "operator must be Exists when key is empty",
            ),
            (
                json!({"profiles": [{"name": "a", "tolerations": [{"key": "k", "effect": "Sometimes"}]}]}),
                "effect must be",
            ),
            (
                json!({"profiles": [{"name": "a"}], "defaultProfile": "b"}),
                "defaultProfile",
            ),
            (
                json!({"profiles": [{"name": "a", "allowedRoles": ["x"]}]}),
                "must be open to everyone",
            ),
            (
                json!({"profiles": [{"name": "a", "displayName": "line\nbreak"}]}),
                "profiles[0].displayName",
            ),
        ];
        for (values, expected) in cases {
            let found = messages(values.clone());
            assert!(found.contains(expected), "{values}: {found}");
        }
    }

    #[test]
    fn sizing_falls_back_to_values_then_settings() {
        let settings = InstanceSettings::default();
        let values = json!({"resources": {"limits": {"cpu": "3"}}, "storage": {"size": "20Gi"}});
        let s = ProfileSizing::of(&settings, &values).unwrap();
        assert_eq!(s.resources.limits.cpu, "3");
        assert_eq!(s.resources.requests.cpu, settings.cpu);
        assert_eq!(s.storage, "20Gi");
        assert!(s.problems().is_empty());
        let over = json!({"resources": {"requests": {"memory": "16Gi"}}});
        let s = ProfileSizing::of(&settings, &over).unwrap();
        assert_eq!(s.problems().len(), 1, "{:?}", s.problems());
    }
}
