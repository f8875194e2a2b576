//! `vigil score`: scores a JSON-lines export of vitals, line by line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use vigil_core::time::{DAY_MS, TimeBounds};
use vigil_formats::{DecodeError, VitalsJsonDecoder, write_json_lines};
use vigil_scores::vitals::score_vitals;

use crate::cli::ScoreArgs;
use crate::exit;

/// Runs `vigil score`.
pub fn run(args: &ScoreArgs) -> Result<ExitCode> {
    let input: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        let f = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(BufReader::new(f))
    };
    let output: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let bounds = TimeBounds::until(now, i64::from(args.max_future_hours) * DAY_MS / 24);
    match score_lines(
        input,
        BufWriter::new(output),
        bounds,
        args.batch_size as usize,
    ) {
        Ok(summary) => {
            eprintln!(
                "vigil score: {} rows scored, {} lines rejected",
                summary.scored, summary.rejected
            );
            Ok(ExitCode::from(if summary.rejected > 0 {
                exit::SOME_REJECTED
            } else {
                0
            }))
        }
        // A closed pipe (`vigil score x | head`) is the reader's choice, not a failure.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<DecodeError>(), Some(DecodeError::Io(io)) if io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Counts of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Rows scored and written.
    pub scored: u64,
    /// Lines rejected (reported on stderr).
    pub rejected: u64,
}

/// Reads JSON lines from `input`, writes scored JSON lines to `output` in batches of
/// `batch_size`, and reports each rejected line on stderr by its line number.
pub fn score_lines(
    mut input: impl BufRead,
    mut output: impl Write,
    bounds: TimeBounds,
    batch_size: usize,
) -> Result<Summary> {
    let mut decoder = VitalsJsonDecoder::new(bounds);
    let mut summary = Summary::default();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading line {}", number + 1))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.trim_ascii().is_empty() {
            continue;
        }
        if let Err(e) = decoder.decode(&line) {
            eprintln!("line {number}: {e}");
            summary.rejected += 1;
            continue;
        }
        if decoder.len() >= batch_size {
            summary.scored += write_scored(&mut decoder, &mut output)?;
        }
    }
    summary.scored += write_scored(&mut decoder, &mut output)?;
    output.flush().context("writing output")?;
    Ok(summary)
}

fn write_scored(decoder: &mut VitalsJsonDecoder, output: &mut impl Write) -> Result<u64> {
    if decoder.is_empty() {
        return Ok(0);
    }
    let batch = decoder.flush()?;
    let scored = score_vitals(&batch)?;
    write_json_lines(&mut *output, &[&scored]).context("writing output")?;
    Ok(scored.num_rows() as u64)
}
