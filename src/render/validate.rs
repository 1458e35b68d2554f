//! validate-templates: render a template set for sample users, hostile ids included, and
//! report every problem. Admins run it in their own CI before rolling a change out.

use super::{JobValues, Problem, RenderError, Templates, build_values};
use crate::{
    naming,
    values::InstanceSettings,
    values::{Owner, Repo},
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

/// The issuer templates are validated with when JWT_ISSUER is not configured (a template
/// set is checked the same way with or without one; the service itself refuses to start
/// without it when the set renders an access policy).
pub const PLACEHOLDER_ISSUER: &str = "https://issuer.invalid/realms/validate";

/// How a template set protects the workspaces it publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessReport {
    /// A VirtualService is rendered: the workspace is published on the gateway.
    pub publishes_route: bool,
    /// An AuthorizationPolicy in the gateway's namespace names the instance's host and
    /// the owner's request principal.
    pub has_policy: bool,
    /// `security.allowUnauthenticatedWorkspaces` is true in the set's values.
    pub allow_unauthenticated: bool,
}

impl AccessReport {
    /// True when the set publishes workspaces that nothing but the network protects.
    pub fn unprotected(&self) -> bool {
        self.publishes_route && !self.has_policy
    }
}

/// What `templates` render for a sample owner with a `sub`: whether the workspace is
/// published and whether a per-instance access policy guards it. A set that does not
/// render counts as neither (validation reports why).
pub fn access_report(templates: &Templates, settings: &InstanceSettings) -> AccessReport {
    let allow_unauthenticated = templates
        .base_values()
        .pointer("/security/allowUnauthenticatedWorkspaces")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let mut report = AccessReport {
        publishes_route: false,
        has_policy: false,
        allow_unauthenticated,
    };
    let settings = with_issuer(settings);
    let owner = Owner {
        user_id: SAMPLE_USERS[0].to_owned(),
        email: None,
        sub: Some("00000000-0000-4000-8000-00000000a11c".to_owned()),
        known_name: None,
        gitea_token: None,
    };
    let Ok(repos) = sample_repos() else {
        return report;
    };
    let Ok(values) = build_values(templates, &settings, &owner, &repos, &[]) else {
        return report;
    };
    let Ok(objects) = templates.render(&values) else {
        return report;
    };
    for r in &objects {
        let Some(types) = r.object.types.as_ref() else {
            continue;
        };
        if types.kind == "VirtualService" {
            report.publishes_route = true;
        }
        if super::in_gateway_namespace(&types.api_version, &types.kind) {
            let spec = r
                .object
                .data
                .get("spec")
                .map(ToString::to_string)
                .unwrap_or_default();
            let names = |s: &str| spec.contains(&serde_json::Value::from(s).to_string());
            if names(&values.instance.host) && names(&values.access.principal) {
                report.has_policy = true;
            }
        }
    }
    report
}

/// `settings`, with the placeholder issuer when none is configured.
fn with_issuer(settings: &InstanceSettings) -> InstanceSettings {
    let mut settings = settings.clone();
    if settings.jwt_issuer.as_deref().is_none_or(str::is_empty) {
        settings.jwt_issuer = Some(PLACEHOLDER_ISSUER.to_owned());
    }
    settings
}

/// Renders `templates` for every sample user (instance objects and the sync Job) and
/// returns every problem; empty means the set is good to roll out. A set that publishes
/// workspaces without a per-instance access policy is a problem unless
/// `security.allowUnauthenticatedWorkspaces` is true.
pub fn validate(templates: &Templates, settings: &InstanceSettings) -> Vec<Problem> {
    let settings = &with_issuer(settings);
    let mut problems: Vec<Problem> = Vec::new();
    let access = access_report(templates, settings);
    if access.unprotected() && !access.allow_unauthenticated {
        problems.push(problem(
            "templates",
            format!(
                "a VirtualService publishes every workspace, but no per-instance access policy is rendered (an AuthorizationPolicy in {:?} naming the instance's host and the owner's principal), so anyone who reaches the gateway could open any workspace; render one (templates/authorizationpolicy.yaml.j2, accessPolicy.enabled) or set security.allowUnauthenticatedWorkspaces: true",
                settings.gateway_namespace
            ),
        ));
    }
    for (i, user) in SAMPLE_USERS.iter().enumerate() {
        let owner = Owner {
            user_id: (*user).to_owned(),
            email: Some(format!("user{i}@example.com")),
            sub: (i % 2 == 0).then(|| format!("00000000-0000-4000-8000-{i:012}")),
            known_name: None,
            gitea_token: None,
        };
        let found = check_user(templates, settings, &owner);
        for mut p in found {
            p.message = format!("{} (user id {:?})", p.message, user);
            if !problems
                .iter()
                .any(|q| q.file == p.file && q.line == p.line && same_cause(q, &p))
            {
                problems.push(p);
            }
        }
    }
    problems
}

fn same_cause(a: &Problem, b: &Problem) -> bool {
    let strip = |m: &str| m.rsplit_once(" (user id ").map(|(head, _)| head.to_owned());
    strip(&a.message) == strip(&b.message)
}

fn check_user(templates: &Templates, settings: &InstanceSettings, owner: &Owner) -> Vec<Problem> {
    let repos = match sample_repos() {
        Ok(r) => r,
        Err(e) => return vec![problem("sample repositories", e.to_string())],
    };
    let values = match build_values(templates, settings, owner, &repos, &[]) {
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
    if let Err(e) = templates.render_sync_job(&values, &job) {
        problems.extend(into_problems(e));
    }
    problems
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
