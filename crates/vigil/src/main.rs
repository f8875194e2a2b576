//! `vigil`: the command-line entry point.
//!
//! Subcommands live in their own modules; this file parses the command line and maps
//! outcomes to exit codes (see [`exit`]).

mod check;
mod cli;
mod config;
mod demo;
mod evaluate;
mod exit;
mod http;
mod memory;
mod run;
mod score;
mod signals;
mod simulate;
mod stream;

use std::process::ExitCode;

use clap::Parser;

/// Logs go to stderr: warnings, and vigil's own progress (partitions assigned and
/// revoked, commits that failed) at info; `VIGIL_LOG` (or `[log] filter`) takes
/// env-filter directives instead (`VIGIL_LOG=debug`), and `VIGIL_LOG_FORMAT=json`
/// (or `[log] format`) writes JSON lines. Nothing logged at info or above carries
/// a payload or a patient identifier.
fn init_logs(log: &config::LogSection) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.filter));
    let json = match std::env::var("VIGIL_LOG_FORMAT") {
        Ok(format) => format.eq_ignore_ascii_case("json"),
        Err(_) => log.format == config::LogFormat::Json,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn main() -> ExitCode {
    let threshold = memory::fix_mmap_threshold();
    let cli = cli::Cli::parse();
    let config = match config::Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("vigil: {e}");
            return ExitCode::from(exit::INVALID_PIPELINE);
        }
    };
    init_logs(&config.log);
    tracing::debug!(?threshold, "glibc's mmap threshold");
    let outcome = match cli.command {
        cli::Command::Score(args) => score::run(&args),
        cli::Command::Check(args) => check::run(&args),
        cli::Command::Run(args) => run::run(&args, &config),
        cli::Command::Simulate(args) => simulate::run(&args, &config),
        cli::Command::Demo(args) => demo::run(&args, &config),
        cli::Command::Evaluate(args) => evaluate::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
