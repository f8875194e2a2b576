//! The command line: subcommands and their flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// vigil: streaming early-warning scores for medical IoT vitals.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score vitals from JSON lines: NEWS2 (with band, sub-scores, missing and
    /// invalid parameters), qSOFA, MEWS and SIRS for every line.
    #[command(after_help = SCORE_EXAMPLES)]
    Score(ScoreArgs),
    /// Validate a pipeline file and print its streaming plan: sources with their
    /// watermarks, operators and windows, sinks and output schemas.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
}

const CHECK_EXAMPLES: &str = "\
Examples:
  vigil check pipelines/news2_per_patient.sql

An error names the line of the pipeline file and the construct the streaming engine
cannot run (ORDER BY or LIMIT over a stream, joins, undeclared tables, windows on a
column without a WATERMARK, ...).

Exit status: 0 the pipeline is valid; 78 it is not; 1 the file cannot be read.";

/// Flags of `vigil check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The pipeline SQL file.
    pub pipeline: PathBuf,
}

const SCORE_EXAMPLES: &str = "\
Examples:
  vigil score samples/vitals.jsonl              score a file, results on stdout
  vigil score export.jsonl -o scored.jsonl      write results to a file
  cat export.jsonl | vigil score -              read standard input

Each input line is one JSON object with patient_id, observed_at (RFC 3339 or epoch
milliseconds) and any of resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp,
diastolic_bp, heart_rate, consciousness (ACVPU letter or word), temperature (Celsius).
Each output line is the input row plus news2, news2_band, news2_partial,
news2_subscores, news2_missing, news2_invalid, qsofa, mews and sirs.
A line that cannot be read is reported on stderr with its line number and skipped.

Exit status: 0 every line scored; 65 some lines rejected (the rest were scored);
1 failure (unreadable input, unwritable output).";

/// Flags of `vigil score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// JSON-lines file to score; `-` for standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,

    /// Write results here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,

    /// Rows scored per Arrow batch.
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Reject readings observed more than this many hours in the future (device clocks
    /// set ahead).
    #[arg(long, default_value_t = 24)]
    pub max_future_hours: u32,
}
