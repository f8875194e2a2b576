//! `vigil`: the command-line entry point.
//!
//! Subcommands live in their own modules; this file parses the command line and maps
//! outcomes to exit codes (see [`exit`]).

mod check;
mod cli;
mod exit;
mod http;
mod run;
mod score;
mod signals;
mod simulate;
mod stream;

use std::process::ExitCode;

use clap::Parser;

/// Logs go to stderr: warnings, and vigil's own progress (partitions assigned and
/// revoked, commits that failed) at info; `VIGIL_LOG` takes an env-filter
/// directive instead (`VIGIL_LOG=debug`). Nothing logged at info or above carries
/// a payload or a patient identifier.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,vigil_kafka=info,vigil_engine=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logs();
    let outcome = match cli.command {
        cli::Command::Score(args) => score::run(&args),
        cli::Command::Check(args) => check::run(&args),
        cli::Command::Run(args) => run::run(&args),
        cli::Command::Simulate(args) => simulate::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
