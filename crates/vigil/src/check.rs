//! `vigil check`: validate a pipeline file and print its streaming plan.

use std::process::ExitCode;

use anyhow::Context;
use vigil_engine::plan::{Pipeline, name_of};

use crate::cli::CheckArgs;
use crate::exit;

/// Plans the pipeline; prints the plan, or the error with the file and line.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let path = args.pipeline.display().to_string();
    let sql = std::fs::read_to_string(&args.pipeline).with_context(|| format!("reading {path}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the planner")?;
    match runtime.block_on(Pipeline::plan_named(
        &name_of(&args.pipeline),
        &sql,
        &args.tables.bindings(),
    )) {
        Ok(pipeline) => {
            print!("{}", pipeline.describe());
            println!("{path}: ok");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ vigil_engine::EngineError::Binding(_)) => {
            eprintln!("vigil check: {e}");
            Ok(ExitCode::from(exit::USAGE))
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            Ok(ExitCode::from(exit::INVALID_PIPELINE))
        }
    }
}
