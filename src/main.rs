use std::{io::Write, process::ExitCode};

use clap::{Parser, error::ErrorKind};
use codeserver_service::{
    cli,
    config::{self, Cli, Command},
    demo, serve, sim, telemetry,
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
        None => run_async(Some(&cli.serve.log_level), serve::serve(&cli.serve)),
        Some(Command::Serve(args)) => run_async(Some(&args.log_level), serve::serve(&args)),
        // NB: the simulated servers log every connection a client drops (kube closes
        // watches early on purpose); that is noise in a demo (see demo::LOG_LEVEL).
        Some(Command::Demo(args)) => {
            // NB: the demo's logs go to a file so that its banner (tokens) stays on screen.
            if let Err(e) = telemetry::init_to_file(demo::LOG_LEVEL, &demo::log_file(&args)) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            run_async(None, demo::demo(&args))
        }
        Some(Command::Sim(args)) => run_async(
            Some("info,warp::server=off"),
            sim::serve_command(args.port, args.kubeconfig_out, args.fast),
        ),
        Some(Command::Plan(args)) => run_async(None, async move {
            let mut out = std::io::stdout();
            cli::plan_command(&args, &mut out).await
        }),
        Some(Command::Healthcheck(args)) => {
            run_async(None, async move { cli::healthcheck_command(&args).await })
        }
        Some(Command::Render(args)) => match args.kubeconfig.clone() {
            None => offline(|out| cli::render_command(&args, out)),
            Some(kubeconfig) => run_async(None, async move {
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

/// Runs `task` on a multi-threaded runtime, with JSON logs at `log_level` when given.
fn run_async<E: std::error::Error>(
    log_level: Option<&str>,
    task: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    if let Some(level) = log_level
        && let Err(e) = telemetry::init(level)
    {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let error = codeserver_service::graphql::error_chain(&e);
            if log_level.is_some() {
                tracing::error!(%error, "stopped");
            }
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
