use std::{io::Write, process::ExitCode};

use clap::{Parser, error::ErrorKind};
use codeserver_service::{
    cli,
    config::{self, Cli, Command},
    serve, telemetry,
};

// NB: rendering and serving allocate many small objects; mimalloc makes a full render
// about a quarter cheaper than the system allocator (see benches/render.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        None => telemetry::run_to_exit(Some(&cli.serve.log_level), serve::serve(&cli.serve)),
        Some(Command::Serve(args)) => {
            telemetry::run_to_exit(Some(&args.log_level), serve::serve(&args))
        }
        Some(Command::Plan(args)) => telemetry::run_to_exit(None, async move {
            let mut out = std::io::stdout();
            cli::plan_command(&args, &mut out).await
        }),
        Some(Command::Healthcheck(args)) => {
            telemetry::run_to_exit(None, async move { cli::healthcheck_command(&args).await })
        }
        Some(Command::Render(args)) => match args.kubeconfig.clone() {
            None => offline(|out| cli::render_command(&args, out)),
            Some(kubeconfig) => telemetry::run_to_exit(None, async move {
                let mut out = std::io::stdout();
                cli::render_live_command(&args, &kubeconfig, &mut out).await
            }),
        },
        Some(Command::ValidateTemplates(args)) => offline(|out| cli::validate_command(&args, out)),
    }
}

/// Runs an offline command writing to stdout; errors go to stderr with exit status 1.
fn offline(command: impl FnOnce(&mut dyn Write) -> Result<(), cli::CliError>) -> ExitCode {
    let stdout = &mut std::io::stdout().lock();
    let result = command(stdout);
    let _ = stdout.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
