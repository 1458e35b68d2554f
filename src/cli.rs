//! The developer commands: `render`, `plan` and `validate-templates`. They write to any writer so
//! tests drive them in-process; `main` only maps their result to an exit status.

use std::io::Write;

use std::{sync::Arc, time::Duration};

use crate::{
    config::{HealthcheckArgs, OutputFormat, PlanArgs, RenderArgs, TargetArgs, ValidateArgs},
    reconcile::{self, Kinds, Reconciler, Timeouts},
    reload::ActiveTemplates,
    render::{self, RenderError, RenderedObject, Templates},
    values::{Owner, Repo, ValuesError},
};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Loading or rendering templates failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The repository arguments are unusable.
    #[error(transparent)]
    Values(#[from] ValuesError),
    /// The template set has problems (validate-templates).
    #[error("{0} problem(s) found in the templates")]
    Invalid(usize),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// Serializing the output failed.
    #[error("cannot serialize output: {0}")]
    Serialize(String),
    /// Reaching the cluster failed.
    #[error(transparent)]
    Cluster(#[from] crate::serve::ServeError),
    /// Planning against the cluster failed.
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    /// The server did not answer /health.
    #[error("unhealthy: {0}")]
    Unhealthy(String),
}

/// The owner and repository a `render` or `plan` is for.
pub fn target(args: &TargetArgs) -> Result<(Owner, Repo), CliError> {
    let owner = Owner {
        user_id: args.user.clone(),
        email: args.email.clone(),
        sub: args.sub.clone(),
        known_name: None,
        gitea_token: None,
    };
    let clone_url = args.clone_url.clone().unwrap_or_else(|| {
        format!(
            "{}/{}/{}.git",
            args.gitea_url, args.repo_owner, args.repo_name
        )
    });
    let repo =
        Repo::new(&args.repo_owner, &args.repo_name, &clone_url).map_err(ValuesError::from)?;
    Ok((owner, repo))
}

/// Renders the manifests for one user and repository, as a new instance would have
/// them (the PVC stamped with its instance record, as provisioning stamps it).
pub fn render_objects(args: &TargetArgs) -> Result<Vec<RenderedObject>, CliError> {
    let templates = Templates::load(args.instance.templates_dir.as_deref())?
        .with_values_files(&args.instance.values_files)?;
    let (owner, repo) = target(args)?;
    let values = render::build_profile_values(
        &templates,
        &args.instance.settings(),
        &owner,
        &[repo],
        args.profile.as_deref(),
        &args.set,
    )?;
    let mut rendered = templates.render(&values)?;
    let objects = rendered.iter_mut().map(|r| &mut r.object).collect();
    reconcile::stamp_record(objects, &values, &Default::default(), &Kinds::new(None));
    Ok(rendered)
}

/// A reconciler over the cluster of `kubeconfig` for the dry-run commands, with the
/// templates and values of `args`.
async fn dry_run_reconciler(
    args: &TargetArgs,
    kubeconfig: Option<&std::path::Path>,
) -> Result<Reconciler, CliError> {
    let mut templates = Templates::load(args.instance.templates_dir.as_deref())?
        .with_values_files(&args.instance.values_files)?;
    templates.set_values(&args.set)?;
    let client = crate::serve::kube_client(kubeconfig).await?;
    let kinds = Kinds::discover(&client).await?;
    let active = Arc::new(ActiveTemplates::new(templates));
    Ok(Reconciler::new(
        client,
        kinds,
        active,
        args.instance.settings(),
        Timeouts::default(),
    ))
}

/// The owner a dry-run command is for: with `--sub`, the one given; without, the owner
/// recorded on the user's instance (as the GraphQL dry runs look it up), so that a plan
/// shows no false ownership change. `--email` overrides the recorded email.
async fn dry_run_owner(reconciler: &Reconciler, args: &TargetArgs) -> Result<Owner, CliError> {
    let (given, _) = target(args)?;
    if given.sub.is_some() {
        return Ok(given);
    }
    let mut owner = reconciler.named_owner(&args.user).await?;
    if given.email.is_some() {
        owner.email = given.email;
    }
    Ok(owner)
}

/// `render` without a cluster: prints the manifests as multi-document YAML or one JSON
/// list.
pub fn render_command(args: &RenderArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let objects = render_objects(&args.target)?;
    write_objects(&objects, args.output, out)
}

/// `render --kubeconfig`: the user's recorded instance (owner, repositories, kinds) with
/// the repository added, as `renderCodeServer` renders it. Makes no writes.
pub async fn render_live_command(
    args: &RenderArgs,
    kubeconfig: &std::path::Path,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let reconciler = dry_run_reconciler(&args.target, Some(kubeconfig)).await?;
    let owner = dry_run_owner(&reconciler, &args.target).await?;
    let (_, repo) = target(&args.target)?;
    let objects = reconciler
        .render_with_profile(&owner, repo, args.target.profile.as_deref())
        .await?;
    let mut text = Vec::new();
    write_objects(&objects, args.output, &mut text)?;
    out.write_all(&text)?;
    Ok(())
}

fn write_objects(
    objects: &[RenderedObject],
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match output {
        OutputFormat::Yaml => out.write_all(to_yaml(objects)?.as_bytes())?,
        OutputFormat::Json => {
            let list: Vec<_> = objects.iter().map(|r| &r.object).collect();
            let text = serde_json::to_string_pretty(&list)
                .map_err(|e| CliError::Serialize(e.to_string()))?;
            writeln!(out, "{text}")?;
        }
    }
    Ok(())
}

/// Multi-document YAML, each document headed by the template it came from (as `helm template`).
pub fn to_yaml(objects: &[RenderedObject]) -> Result<String, CliError> {
    let mut text = String::new();
    for r in objects {
        let doc =
            serde_yaml_ng::to_string(&r.object).map_err(|e| CliError::Serialize(e.to_string()))?;
        text.push_str("---\n# Source: ");
        text.push_str(&r.template);
        text.push('\n');
        text.push_str(&doc);
    }
    Ok(text)
}

/// `validate-templates`: renders for the sample users on every workspace profile (or the
/// one of `--profile`) and lists every problem, after its warnings (which refuse nothing).
pub fn validate_command(args: &ValidateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let templates = Templates::load(args.instance.templates_dir.as_deref())?
        .with_values_files(&args.instance.values_files)?;
    let settings = args.instance.settings();
    for warning in render::warnings(&templates, &settings) {
        writeln!(out, "warning: {warning}")?;
    }
    let (problems, profiles) = match &args.profile {
        Some(name) => (
            render::validate_profile(&templates, &settings, name).map_err(ValuesError::from)?,
            vec![name.clone()],
        ),
        None => (
            render::validate(&templates, &settings),
            templates
                .profiles()
                .all()
                .iter()
                .map(|p| p.name.clone())
                .collect(),
        ),
    };
    if problems.is_empty() {
        writeln!(
            out,
            "ok: {} templates, revision {}, rendered for {} sample users on {} {} ({})",
            templates.object_templates().len(),
            templates.revision(),
            render::SAMPLE_USERS.len(),
            profiles.len(),
            if profiles.len() == 1 {
                "profile"
            } else {
                "profiles"
            },
            profiles.join(", ")
        )?;
        return Ok(());
    }
    for p in &problems {
        writeln!(out, "{p}")?;
    }
    Err(CliError::Invalid(problems.len()))
}

/// `plan`: what provisioning the user and repository would change in the cluster from
/// KUBECONFIG, one line per object with the JSON patch under updates. Changes nothing.
pub async fn plan_command(args: &PlanArgs, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let reconciler = dry_run_reconciler(&args.target, args.kubeconfig.as_deref()).await?;
    let owner = dry_run_owner(&reconciler, &args.target).await?;
    let (_, repo) = target(&args.target)?;
    let plan = reconciler
        .plan_with_profile(&owner, repo, args.target.profile.as_deref())
        .await?;
    write!(out, "{plan}")?;
    Ok(())
}

/// `healthcheck`: exits 0 when `GET http://127.0.0.1:PORT/health` answers 200 within 3 s,
/// for container health checks in an image with no shell or curl.
pub async fn healthcheck_command(args: &HealthcheckArgs) -> Result<(), CliError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", args.port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(head)) if head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200") => {
            Ok(())
        }
        Ok(Ok(head)) => Err(CliError::Unhealthy(
            String::from_utf8_lossy(&head).trim().to_owned(),
        )),
        Ok(Err(e)) => Err(CliError::Unhealthy(format!("127.0.0.1:{}: {e}", args.port))),
        Err(_) => Err(CliError::Unhealthy("no answer within 3s".to_owned())),
    }
}
