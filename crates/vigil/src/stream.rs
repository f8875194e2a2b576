//! `vigil run` over Kafka tables: one member of the pipeline's consumer group,
//! running until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use vigil_engine::plan::Pipeline;
use vigil_kafka::{KafkaConfig, KafkaError, KafkaRun, RunMetrics};

use crate::http::Endpoints;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::exit;

/// Whether the pipeline has Kafka tables (a pipeline runs against Kafka or files,
/// not both: [`KafkaRun::new`] says so clearly).
pub fn is_kafka(pipeline: &Pipeline) -> bool {
    pipeline
        .def
        .tables
        .iter()
        .any(vigil_kafka::config::is_kafka)
}

/// Runs the pipeline as a group member until a signal asks it to stop; commits
/// what is safe and leaves the group on the way out.
pub fn run(args: &RunArgs, file: &Config, pipeline: &Pipeline) -> anyhow::Result<ExitCode> {
    let path = args.pipeline.display().to_string();
    let Some(brokers) = args.brokers.clone().or_else(|| file.kafka.brokers.clone()) else {
        eprintln!("{path}: its tables are Kafka topics: give --brokers (or VIGIL_BROKERS)");
        return Ok(ExitCode::from(exit::INVALID_PIPELINE));
    };
    // The file's stem names the pipeline in metrics, alerts and its default group.
    let name = &pipeline.name;
    let group = args
        .group
        .clone()
        .or_else(|| file.kafka.group.clone())
        .unwrap_or_else(|| format!("vigil-{name}"));
    let mut config = KafkaConfig::new(brokers, group);
    config.batch_messages = args.batch_size.unwrap_or(file.run.batch_size) as usize;
    config.checkpoints = !args.no_checkpoints && file.kafka.checkpoints.unwrap_or(true);
    config.exactly_once = args.exactly_once || file.kafka.exactly_once.unwrap_or(false);
    config.transactional_id = args
        .transactional_id
        .clone()
        .or_else(|| file.kafka.transactional_id.clone());
    config.properties.extend(file.kafka.properties.clone());
    config
        .properties
        .extend(args.kafka_properties.iter().cloned());
    let run = match KafkaRun::new(pipeline, config) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("{path}: {e}");
            return Ok(ExitCode::from(exit::INVALID_PIPELINE));
        }
    };

    let registry = prometheus::Registry::new();
    let mut run = run.with_metrics(RunMetrics::new(&registry, name)?);
    let endpoints = Endpoints::new(registry, vec![run.live()])?;
    let http = args.http.as_deref().unwrap_or(&file.http.listen);
    let server = crate::http::serve("vigil run", http, endpoints)?;
    let outcome =
        crate::signals::run_serving_until_stopped("vigil run", server, |stop| run.run(stop))?;
    match outcome {
        Ok(stats) => {
            eprintln!(
                "vigil run: {} messages consumed, {} dead-lettered, {} late rows, {} duplicate rows, {} rows written, {} replayed rows already done, {} offset commits ({} failed), {} state checkpoints, {} transactions, {} partitions assigned ({} restored from a checkpoint, {} previous writers fenced), {} revoked, {} rewinds after a failed output",
                stats.consumed,
                stats.dead_lettered,
                stats.late,
                stats.duplicates,
                stats.rows_out,
                stats.replayed_done,
                stats.commits,
                stats.commit_failures,
                stats.checkpoints,
                stats.transactions,
                stats.assigned,
                stats.restored,
                stats.fenced,
                stats.revoked,
                stats.rewinds
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ KafkaError::Config(_)) => {
            eprintln!("{path}: {e}");
            Ok(ExitCode::from(exit::INVALID_PIPELINE))
        }
        Err(e) => Err(e).with_context(|| format!("running {path}")),
    }
}
