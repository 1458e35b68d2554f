//! validate-templates: render a template set for sample users, hostile ids included, on
//! every workspace profile, and report every problem, and what deserves a change without
//! refusing the set (a template that still renders the retired per-instance access
//! policy). Admins run it in their own CI before rolling a change out.

use super::{
    JobValues, Problem, RenderError, Templates, VALUES_FILE, build_profile_values, build_values,
};
use crate::{
    naming,
    values::InstanceSettings,
    values::{Owner, ProfileAccess, ProfileError, ProfileSizing, Repo},
};

/// The sample user ids: ordinary ones first, then ones that try to break out of YAML,
/// templates, shells and name rules.
pub const SAMPLE_USERS: &[&str] = &[
    "john-doe",
    "John.Doe@corp.example",
    "o'brien\"; rm -rf / #",
    "a: b\nc: d",
    "{{ 7 * 7 }} {% if true %}x{% endif %}",
    "&anchor *alias !tag |block >fold",
    "- item\n---\nkind: Secret",
    "日本語ユーザー",
    "line\u{2028}separator\u{85}next",
    "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongusername-with-more-than-two-hundred-characters-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// The warning for a template that still renders the retired per-instance access policy.
pub const RETIRED_POLICY_WARNING: &str = "the per-instance AuthorizationPolicy is no longer needed: the service is the workspace gatekeeper (see docs/admin-guide.md, How workspaces are protected); it is left out of what is applied, so remove it from the template";

/// Renders `templates` for every sample user (instance objects and the sync Job) on every
/// workspace profile and returns every problem; empty means the set is good to roll out.
/// A problem of a profile other than the default says which. What is worth knowing but
/// refuses nothing is in [`warnings`].
pub fn validate(templates: &Templates, settings: &InstanceSettings) -> Vec<Problem> {
    let profiles = templates.profiles();
    let default = profiles.default_profile().name.as_str();
    let mut problems = check_profile(templates, settings, default, false);
    for profile in profiles.all().iter().filter(|p| p.name != default) {
        for p in check_profile(templates, settings, &profile.name, true) {
            push_new(&mut problems, p);
        }
    }
    problems
}

/// [`validate`] on the profile `name` alone; an unknown profile is an error naming the
/// set's profiles.
pub fn validate_profile(
    templates: &Templates,
    settings: &InstanceSettings,
    name: &str,
) -> Result<Vec<Problem>, ProfileError> {
    templates.profiles().choose(name, &ProfileAccess::Any)?;
    Ok(check_profile(templates, settings, name, true))
}

/// The problems of profile `name` (tagged with it when `tag`): what it sizes, and every
/// sample user rendered on it.
fn check_profile(
    templates: &Templates,
    settings: &InstanceSettings,
    name: &str,
    tag: bool,
) -> Vec<Problem> {
    let profiles = templates.profiles();
    let index = profiles.position(name).unwrap_or_default();
    let mut problems: Vec<Problem> =
        match ProfileSizing::of(settings, templates.profile_values(index)) {
            Ok(sizing) => sizing
                .problems()
                .into_iter()
                .map(|m| {
                    problem(
                        VALUES_FILE,
                        format!("profile {name:?}: {m} (the API server refuses such a pod)"),
                    )
                })
                .collect(),
            Err(e) => vec![problem(VALUES_FILE, format!("profile {name:?}: {e}"))],
        };
    for (i, user) in SAMPLE_USERS.iter().enumerate() {
        let owner = Owner {
            user_id: (*user).to_owned(),
            email: Some(format!("user{i}@example.com")),
            sub: (i % 2 == 0).then(|| format!("00000000-0000-4000-8000-{i:012}")),
            known_name: None,
            gitea_token: None,
        };
        let found = check_user(templates, settings, &owner, name);
        for mut p in found {
            if tag {
                p.message = format!("{} (profile {name:?})", p.message);
            }
            p.message = format!("{} (user id {:?})", p.message, user);
            push_new(&mut problems, p);
        }
    }
    problems
}

/// Adds `p` unless a problem of the same file, line and cause is there (for another user
/// or profile).
fn push_new(problems: &mut Vec<Problem>, p: Problem) {
    if !problems
        .iter()
        .any(|q| q.file == p.file && q.line == p.line && same_cause(q, &p))
    {
        problems.push(p);
    }
}

/// What a set does that refuses nothing but deserves a change: each template that still
/// renders the retired per-instance access policy (for a sample owner with a `sub`),
/// which the render leaves out. validate-templates prints these, and the service logs
/// them once for each template revision it loads.
pub fn warnings(templates: &Templates, settings: &InstanceSettings) -> Vec<Problem> {
    let owner = Owner {
        user_id: SAMPLE_USERS[0].to_owned(),
        email: None,
        sub: Some("00000000-0000-4000-8000-00000000a11c".to_owned()),
        known_name: None,
        gitea_token: None,
    };
    let Ok(repos) = sample_repos() else {
        return Vec::new();
    };
    let Ok(values) = build_values(templates, settings, &owner, &repos, &[]) else {
        return Vec::new();
    };
    templates
        .retired_policy_templates(&values)
        .into_iter()
        .map(|file| problem(&file, RETIRED_POLICY_WARNING.to_owned()))
        .collect()
}

fn same_cause(a: &Problem, b: &Problem) -> bool {
    let strip = |m: &str| {
        let head = m.rsplit_once(" (user id ").map_or(m, |(head, _)| head);
        head.rsplit_once(" (profile ")
            .map_or(head, |(head, _)| head)
            .to_owned()
    };
    strip(&a.message) == strip(&b.message)
}

fn check_user(
    templates: &Templates,
    settings: &InstanceSettings,
    owner: &Owner,
    profile: &str,
) -> Vec<Problem> {
    let repos = match sample_repos() {
        Ok(r) => r,
        Err(e) => return vec![problem("sample repositories", e.to_string())],
    };
    let values = match build_profile_values(templates, settings, owner, &repos, Some(profile), &[])
    {
        Ok(v) => v,
        Err(e) => return into_problems(e),
    };
    let mut problems = templates.compare_paths(&values);
    match templates.render(&values) {
        Ok(objects) => {
            for r in &objects {
                let got = r
                    .object
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(naming::ANNOTATION_USER_ID));
                if got.map(String::as_str) != Some(owner.user_id.as_str()) {
                    problems.push(Problem {
                        file: r.template.clone(),
                        line: None,
                        object: Some(super::object_label(&r.object)),
                        message: format!(
                            "annotation {} must hold the user id exactly; found {:?}",
                            naming::ANNOTATION_USER_ID,
                            got
                        ),
                    });
                }
            }
            for r in &objects {
                problems.extend(disk_problems(&r.template, &r.object));
            }
            let kinds: Vec<&str> = objects
                .iter()
                .filter_map(|r| r.object.types.as_ref().map(|t| t.kind.as_str()))
                .collect();
            for required in ["PersistentVolumeClaim", "Pod"] {
                if !kinds.contains(&required) {
                    problems.push(problem(
                        "templates",
                        format!("no {required} is rendered; every instance needs one"),
                    ));
                }
            }
        }
        Err(e) => problems.extend(into_problems(e)),
    }
    let job = JobValues {
        name: naming::sync_job_name(&values.user.name),
        node: Some("node-1".to_owned()),
    };
    match templates.render_sync_job(&values, &job) {
        Ok(object) => problems.extend(disk_problems(super::SYNC_JOB_TEMPLATE, &object)),
        Err(e) => problems.extend(into_problems(e)),
    }
    problems
}

/// The node-disk problems of one rendered object (see [`super::check::disk_problems`]).
fn disk_problems(file: &str, object: &kube::api::DynamicObject) -> Vec<Problem> {
    let Ok(value) = serde_json::to_value(object) else {
        return Vec::new();
    };
    super::check::disk_problems(&value)
        .into_iter()
        .map(|message| Problem {
            file: file.to_owned(),
            line: None,
            object: Some(super::object_label(object)),
            message,
        })
        .collect()
}

fn sample_repos() -> Result<Vec<Repo>, crate::naming::NamingError> {
    Ok(vec![
        Repo::new(
            "devteam",
            "backend-api",
            "http://gitea:3000/devteam/backend-api.git",
        )?,
        Repo::new(
            "john.doe",
            "my_repo.v2",
            "https://gitea.example.com/john.doe/my_repo.v2.git",
        )?,
        Repo::new(
            "other-team",
            "backend-api",
            "http://gitea:3000/other-team/backend-api.git",
        )?,
    ])
}

fn problem(file: &str, message: String) -> Problem {
    Problem {
        file: file.to_owned(),
        line: None,
        object: None,
        message,
    }
}

fn into_problems(e: RenderError) -> Vec<Problem> {
    match e {
        RenderError::Problems(p) => p,
        other => vec![problem("values", other.to_string())],
    }
}
