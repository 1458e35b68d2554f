//! The command line: the commands and the arguments of the offline ones (`render`,
//! `validate-templates`, `plan`, `healthcheck`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{InstanceArgs, ServeArgs, parse::http_url};

/// codeserver-service: personal, persistent code-server workspaces on Kubernetes.
#[derive(Parser, Debug)]
#[command(
    name = "codeserver-service",
    version = crate::VERSION,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings, for the default `serve` command.
    #[command(flatten)]
    pub serve: Box<ServeArgs>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the GraphQL API (the default command).
    Serve(Box<ServeArgs>),
    /// Print the manifests the service would create for a user, like `helm template`.
    Render(RenderArgs),
    /// Render the templates for sample users (hostile ids included) and report every problem.
    ValidateTemplates(ValidateArgs),
    /// Compare what would be rendered for a user with the cluster; changes nothing.
    Plan(PlanArgs),
    /// Exit 0 when the server on PORT answers /health (for container health checks).
    Healthcheck(HealthcheckArgs),
}

/// The user and repository a render or plan is for.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// User id (preferred_username), any characters.
    #[arg(long = "user")]
    pub user: String,
    /// The user's email.
    #[arg(long = "email")]
    pub email: Option<String>,
    /// The token's `sub`, the durable owner key.
    #[arg(long = "sub")]
    pub sub: Option<String>,
    /// Repository owner (Gitea user or organisation).
    #[arg(long = "repo-owner")]
    pub repo_owner: String,
    /// Repository name.
    #[arg(long = "repo-name")]
    pub repo_name: String,
    /// Clone URL; <GITEA_URL>/<owner>/<name>.git when unset.
    #[arg(long = "clone-url")]
    pub clone_url: Option<String>,
    /// Gitea base URL used for the default clone URL.
    #[arg(long = "gitea-url", env = "GITEA_URL", value_name = "GITEA_URL",
          default_value = "http://gitea:3000", value_parser = http_url)]
    pub gitea_url: String,
    /// Value overrides, `key.path=value`, applied last (as Helm's --set).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Workspace profile of values.yaml's `profiles`; the default one when unset (with
    /// --kubeconfig or for `plan`: the one the user's instance records).
    #[arg(long = "profile", value_name = "NAME")]
    pub profile: Option<String>,
    /// Instance settings.
    #[command(flatten)]
    pub instance: InstanceArgs,
}

/// Output format of `render`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Multi-document YAML.
    Yaml,
    /// One JSON list.
    Json,
}

/// Arguments of `render`.
#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    /// Who and what to render for.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format.
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Kubeconfig of a cluster to read the user's instance record from (its owner and
    /// repositories, as provisioning would); offline when unset.
    #[arg(long = "kubeconfig", value_name = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Arguments of `validate-templates`.
#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Instance settings (the template directory among them).
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Render on this workspace profile only; every profile when unset.
    #[arg(long = "profile", value_name = "NAME")]
    pub profile: Option<String>,
}

/// Arguments of `plan`.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Who and what to plan for.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Kubeconfig file; in-cluster configuration when unset.
    #[arg(long = "kubeconfig", env = "KUBECONFIG", value_name = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Arguments of `healthcheck`.
#[derive(Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// Port of the server to check.
    #[arg(
        long = "port",
        env = "PORT",
        value_name = "PORT",
        default_value_t = 8082
    )]
    pub port: u16,
}
