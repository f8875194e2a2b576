//! `vigil run`: run a pipeline over its file sources (Kafka tables: see
//! [`crate::stream`]).

use std::process::ExitCode;

use anyhow::Context;
use vigil_engine::EngineError;
use vigil_engine::plan::{Pipeline, name_of};
use vigil_engine::run::{Outputs, RunOptions, run_files};

use crate::cli::RunArgs;
use crate::config::Config;
use crate::exit;

/// Plans and runs the pipeline; reports rejected lines and a summary on stderr.
pub fn run(args: &RunArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let path = args.pipeline.display().to_string();
    let sql = std::fs::read_to_string(&args.pipeline).with_context(|| format!("reading {path}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the planner")?;
    let pipeline = match runtime.block_on(Pipeline::plan_named(
        &name_of(&args.pipeline),
        &sql,
        &args.tables.bindings(),
    )) {
        Ok(p) => p,
        Err(e @ EngineError::Binding(_)) => {
            eprintln!("vigil run: {e}");
            return Ok(ExitCode::from(exit::USAGE));
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            return Ok(ExitCode::from(exit::INVALID_PIPELINE));
        }
    };
    if crate::stream::is_kafka(&pipeline) {
        return crate::stream::run(args, config, &pipeline);
    }
    let options = RunOptions {
        batch_size: args.batch_size.unwrap_or(config.run.batch_size) as usize,
        paths: args.paths.iter().cloned().collect(),
        ..RunOptions::default()
    };
    let outcome = Outputs::open(&pipeline, &options).and_then(|mut outputs| {
        run_files(&pipeline, &options, &mut outputs, |table, rejected| {
            eprintln!(
                "{table} line {}: rejected ({}): {}",
                rejected.line,
                rejected.reason.reason_label(),
                rejected.reason
            );
        })
    });
    let report = match outcome {
        Ok(report) => report,
        Err(e @ EngineError::Sql { .. }) => {
            eprintln!("{path}: {e}");
            return Ok(ExitCode::from(exit::INVALID_PIPELINE));
        }
        Err(e) => return Err(e).with_context(|| format!("running {path}")),
    };
    let mut rejected = 0;
    for s in &report.sources {
        eprintln!(
            "vigil run: {}: {} rows read, {} lines rejected",
            s.table, s.rows, s.rejected
        );
        rejected += s.rejected;
    }
    for j in &report.jobs {
        eprintln!(
            "vigil run: {}: {} rows written, {} late rows, {} duplicate rows",
            j.sink, j.rows_out, j.rows_late, j.rows_duplicate
        );
    }
    Ok(ExitCode::from(if rejected > 0 {
        exit::SOME_REJECTED
    } else {
        0
    }))
}
