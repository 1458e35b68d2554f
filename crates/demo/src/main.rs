//! `codeserver-demo`: codeserver-service on 127.0.0.1 with no cluster.
//!
//! - `codeserver-demo demo` starts the simulated cluster, a simulated Gitea with a few
//!   users and repositories, a token issuer and the real server (`make demo`);
//! - `codeserver-demo sim` serves only the simulated Kubernetes API and writes a kubeconfig
//!   for it (`make sim`), to point `kubectl` or `codeserver-service serve` at.
//!
//! The service's own binary and image contain none of this.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, error::ErrorKind};
use codeserver_service::{config, telemetry};

mod demo;

// NB: the same allocator as the service's binary, so the demo measures what runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// codeserver-service on 127.0.0.1, with a simulated cluster, Gitea and token issuer.
#[derive(Parser, Debug)]
#[command(name = "codeserver-demo", version = codeserver_service::VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run everything on 127.0.0.1 (simulated cluster, Gitea, token issuer, the server).
    Demo(Box<demo::DemoArgs>),
    /// Serve a simulated Kubernetes API on 127.0.0.1 and write a kubeconfig for it.
    Sim(SimArgs),
}

/// Arguments of `sim`.
#[derive(Args, Debug, Clone)]
struct SimArgs {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long = "port", default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig for the simulated cluster.
    #[arg(long = "kubeconfig-out")]
    kubeconfig_out: Option<PathBuf>,
    /// Pods and jobs move at test speed (milliseconds) instead of realistic seconds.
    #[arg(long = "fast")]
    fast: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            eprintln!("{}", config::one_line_error(&e));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Demo(args) => {
            // NB: the demo's logs go to a file so that its banner (tokens) stays on screen;
            // the simulated servers log every connection a client drops (kube closes
            // watches early on purpose), which is noise in a demo (see demo::LOG_LEVEL).
            if let Err(e) = telemetry::init_to_file(demo::LOG_LEVEL, &demo::log_file(&args)) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            telemetry::run_to_exit(None, demo::demo(&args))
        }
        Command::Sim(args) => telemetry::run_to_exit(
            Some(demo::LOG_LEVEL),
            codeserver_sim::serve_command(args.port, args.kubeconfig_out, args.fast),
        ),
    }
}
