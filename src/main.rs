use std::{io::Write, process::ExitCode};

use clap::{Parser, error::ErrorKind};
use codeserver_service::{
    cli,
    config::{self, Cli, Command, DemoArgs, ServeArgs},
    demo, serve, telemetry,
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
    let command = match cli.command {
        None => return run_server(&cli.serve),
        Some(Command::Serve(args)) => return run_server(&args),
        Some(Command::Demo(args)) => return run_demo(&args),
        command => command,
    };
    let stdout = &mut std::io::stdout().lock();
    let result = match command {
        Some(Command::Render(args)) => cli::render_command(&args, stdout),
        Some(Command::ValidateTemplates(args)) => cli::validate_command(&args, stdout),
        _ => {
            eprintln!("error: this command is not available in this build");
            return ExitCode::from(2);
        }
    };
    let _ = stdout.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `serve`: JSON logs at LOG_LEVEL, then the server until SIGTERM.
fn run_server(args: &ServeArgs) -> ExitCode {
    run_async(&args.log_level, serve::serve(args))
}

/// `demo`: everything on 127.0.0.1 until Ctrl-C.
fn run_demo(args: &DemoArgs) -> ExitCode {
    // NB: the simulated servers log every connection a client drops (kube closes watches
    // early on purpose); that is noise in a demo.
    run_async("info,warp::server=off", demo::demo(args))
}

/// Runs `task` on a multi-threaded runtime with JSON logs at `log_level`.
fn run_async<E: std::error::Error>(
    log_level: &str,
    task: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    if let Err(e) = telemetry::init(log_level) {
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
            tracing::error!(%error, "stopped");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
