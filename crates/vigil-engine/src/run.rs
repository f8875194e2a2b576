//! Running a pipeline whose tables are files: `vigil run` for replays, backfills and
//! the golden tests. Each source is read once and its batches are fed to every job
//! that reads it; end of input closes every window.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::TimestampMillisecondType;

use crate::error::{EngineError, Result};
use crate::files::{JsonLinesSink, JsonLinesSource, Rejected, STANDARD_STREAM, resolve};
use crate::plan::Pipeline;
use crate::runtime::watermark::Watermarks;
use crate::runtime::{Emitted, JobRunner};
use crate::sql::ddl::{TableDecl, event_time_type};

/// The option of a source table naming where its late rows go (`-`, the default,
/// is stderr).
pub const LATE_PATH_OPTION: &str = "late_path";

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Lines per batch.
    pub batch_size: usize,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// Per table name, a path replacing the table's `path` option.
    pub paths: BTreeMap<String, String>,
    /// Lines longer than this are rejected.
    pub max_message_bytes: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_size: 8192,
            base_dir: PathBuf::from("."),
            paths: BTreeMap::new(),
            max_message_bytes: vigil_formats::json::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// What a run did, per source and per job.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Per source table: lines decoded and lines rejected.
    pub sources: Vec<SourceReport>,
    /// Per job (INSERT), in file order.
    pub jobs: Vec<JobReport>,
}

/// One source's counts.
#[derive(Debug, Default, Clone)]
pub struct SourceReport {
    /// The table.
    pub table: String,
    /// Rows decoded.
    pub rows: u64,
    /// Lines rejected.
    pub rejected: u64,
}

/// One job's counts.
#[derive(Debug, Default, Clone)]
pub struct JobReport {
    /// The sink table.
    pub sink: String,
    /// Rows written to the sink.
    pub rows_out: u64,
    /// Source rows found late and written to the late output.
    pub rows_late: u64,
    /// Source rows dropped as copies of a reading already taken in (a source
    /// that declares a `PRIMARY KEY`).
    pub rows_duplicate: u64,
    /// Largest operator state seen, in bytes.
    pub peak_state_bytes: usize,
}

/// Where the rows of a run go: sinks by table name, late rows by source name.
pub struct Outputs {
    sinks: BTreeMap<String, JsonLinesSink>,
    late: BTreeMap<String, JsonLinesSink>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .field("late", &self.late.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Outputs {
    /// Opens every sink and late output the pipeline's jobs write to.
    pub fn open(pipeline: &Pipeline, options: &RunOptions) -> Result<Outputs> {
        let mut sinks = BTreeMap::new();
        let mut late = BTreeMap::new();
        for job in &pipeline.jobs {
            check_file(&job.sink)?;
            if !sinks.contains_key(&job.sink.name) {
                let path = path_of(&job.sink, options)?;
                let sink = JsonLinesSink::create(&job.sink, &resolve(&options.base_dir, &path))?;
                sinks.insert(job.sink.name.clone(), sink);
            }
            let source = &job.source;
            if !late.contains_key(&source.name) {
                let path = source.option(LATE_PATH_OPTION).unwrap_or(STANDARD_STREAM);
                let sink = if path == STANDARD_STREAM {
                    JsonLinesSink::raw(
                        Box::new(io::stderr()),
                        format!("late rows of {}", source.name),
                    )
                } else {
                    JsonLinesSink::create(source, &resolve(&options.base_dir, path))?
                };
                late.insert(source.name.clone(), sink);
            }
        }
        Ok(Outputs { sinks, late })
    }

    /// Outputs writing to the given writers (tests): sinks by table name, and one
    /// writer for every source's late rows.
    pub fn to_writers(
        pipeline: &Pipeline,
        mut sinks: BTreeMap<String, Box<dyn Write + Send>>,
        mut late: impl FnMut(&str) -> Box<dyn Write + Send>,
    ) -> Result<Outputs> {
        let mut out = Outputs {
            sinks: BTreeMap::new(),
            late: BTreeMap::new(),
        };
        for job in &pipeline.jobs {
            if let Some(writer) = sinks.remove(&job.sink.name) {
                let sink = JsonLinesSink::to_writer(&job.sink, writer, job.sink.name.clone());
                out.sinks.insert(job.sink.name.clone(), sink);
            }
            if !out.late.contains_key(&job.source.name) {
                let writer = late(&job.source.name);
                out.late.insert(
                    job.source.name.clone(),
                    JsonLinesSink::raw(writer, format!("late rows of {}", job.source.name)),
                );
            }
        }
        Ok(out)
    }

    fn write(&mut self, sink: &str, source: &str, emitted: Emitted) -> Result<()> {
        let out = self
            .sinks
            .get_mut(sink)
            .ok_or_else(|| EngineError::Internal(format!("no output for {sink}")))?;
        for batch in &emitted.rows {
            out.write(batch)?;
        }
        if !emitted.late.is_empty() {
            let late = self
                .late
                .get_mut(source)
                .ok_or_else(|| EngineError::Internal(format!("no late output for {source}")))?;
            for batch in &emitted.late {
                late.write(batch)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        for sink in self.sinks.values_mut().chain(self.late.values_mut()) {
            sink.flush()?;
        }
        Ok(())
    }
}

fn check_file(table: &TableDecl) -> Result<()> {
    match table.option("connector") {
        Some("file") => Ok(()),
        Some(other) => Err(EngineError::sql(
            table.line,
            format!(
                "table {}: the {other} connector does not run in this build yet; `vigil run` reads and writes files",
                table.name
            ),
        )),
        None => Err(EngineError::sql(
            table.line,
            format!("table {} has no connector", table.name),
        )),
    }
}

fn path_of(table: &TableDecl, options: &RunOptions) -> Result<String> {
    match options.paths.get(&table.name) {
        Some(p) => Ok(p.clone()),
        None => table.required("path").map(str::to_owned),
    }
}

/// Runs every job of `pipeline` over its file sources. `on_reject` hears of every
/// rejected line (table name and the line).
pub fn run_files(
    pipeline: &Pipeline,
    options: &RunOptions,
    outputs: &mut Outputs,
    on_reject: impl FnMut(&str, &Rejected),
) -> Result<RunReport> {
    let open = |table: &TableDecl| {
        check_file(table)?;
        let path = resolve(&options.base_dir, &path_of(table, options)?);
        JsonLinesSource::open(table, &path, options.batch_size, options.max_message_bytes)
    };
    run_sources(pipeline, open, outputs, on_reject)
}

/// Runs every job of `pipeline` over sources that `open` supplies, one per source
/// table that a job reads (in declaration order): a file, or any reader of JSON
/// lines (`vigil evaluate` feeds the simulator's stream through a pipe). End of a
/// source closes its windows.
pub fn run_sources(
    pipeline: &Pipeline,
    mut open: impl FnMut(&TableDecl) -> Result<JsonLinesSource>,
    outputs: &mut Outputs,
    mut on_reject: impl FnMut(&str, &Rejected),
) -> Result<RunReport> {
    let mut report = RunReport::default();
    let mut runners = pipeline
        .jobs
        .iter()
        .map(|job| JobRunner::new(job, &pipeline.ctx))
        .collect::<Result<Vec<_>>>()?;
    let mut peaks = vec![0usize; runners.len()];
    let started = Instant::now();
    let now = || i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    for table in &pipeline.def.tables {
        let jobs: Vec<usize> = (0..pipeline.jobs.len())
            .filter(|&i| pipeline.jobs[i].source.name == table.name)
            .collect();
        if jobs.is_empty() {
            continue;
        }
        let mut source = open(table)?;
        let mut counts = SourceReport {
            table: table.name.clone(),
            ..SourceReport::default()
        };
        let (delay, idle) = (
            table.event_time.as_ref().map_or(0, |et| et.delay_ms),
            pipeline.jobs[jobs[0]].time.idle_timeout_ms,
        );
        let time = pipeline.jobs[jobs[0]].time;
        let mut watermarks = Watermarks::new(delay, idle);
        watermarks.assign(0, now());
        while let Some(read) = source.next_batch()? {
            for r in &read.rejected {
                on_reject(&table.name, r);
            }
            counts.rejected += read.rejected.len() as u64;
            let Some(batch) = read.batch else { continue };
            counts.rows += batch.num_rows() as u64;
            // With an arrival-time column, event times are trusted only up to
            // the latest arrival plus the tolerated skew (a fast device clock
            // must not drag the watermark ahead).
            let trusted = time.arrival_time.and_then(|i| {
                let arrivals = arrow::compute::cast(batch.column(i), &event_time_type()).ok()?;
                arrow::compute::max(arrivals.as_primitive::<TimestampMillisecondType>())
                    .map(|a| a.saturating_add(time.max_clock_skew_ms))
            });
            let observed = match (read.max_event_time, trusted) {
                (Some(t), Some(bound)) => Some(t.min(bound)),
                (t, _) => t,
            };
            watermarks.observe(0, observed, now());
            let mark = watermarks.watermark(now());
            for &j in &jobs {
                let mut emitted = Emitted::default();
                runners[j].process_bounded(0, batch.clone(), trusted, &mut emitted)?;
                if let Some(mark) = mark {
                    runners[j].advance(mark, &mut emitted)?;
                }
                peaks[j] = peaks[j].max(runners[j].state_bytes());
                outputs.write(&pipeline.jobs[j].sink.name, &table.name, emitted)?;
            }
        }
        watermarks.finish(0);
        for &j in &jobs {
            let mut emitted = Emitted::default();
            runners[j].finish(&mut emitted)?;
            outputs.write(&pipeline.jobs[j].sink.name, &table.name, emitted)?;
        }
        report.sources.push(counts);
    }
    outputs.flush()?;
    for ((job, runner), peak) in pipeline.jobs.iter().zip(&runners).zip(peaks) {
        let c = runner.counters();
        report.jobs.push(JobReport {
            sink: job.sink.name.clone(),
            rows_out: c.rows_out,
            rows_late: c.rows_late,
            rows_duplicate: c.rows_duplicate,
            peak_state_bytes: peak,
        });
    }
    Ok(report)
}
