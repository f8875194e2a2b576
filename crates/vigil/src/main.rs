//! `vigil`: the command-line entry point.
//!
//! Subcommands live in their own modules; this file parses the command line and maps
//! outcomes to exit codes (see [`exit`]).

mod check;
mod cli;
mod exit;
mod run;
mod score;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match cli.command {
        cli::Command::Score(args) => score::run(&args),
        cli::Command::Check(args) => check::run(&args),
        cli::Command::Run(args) => run::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
