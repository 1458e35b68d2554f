use std::{io::Write, process::ExitCode};

use clap::{Parser, error::ErrorKind};
use codeserver_service::{
    cli,
    config::{self, Cli, Command},
};

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
    let stdout = &mut std::io::stdout().lock();
    let result = match cli.command {
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
