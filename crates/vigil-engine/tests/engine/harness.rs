//! Running pipelines over in-memory input and capturing what they write.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vigil_engine::plan::Pipeline;
use vigil_engine::run::{Outputs, RunOptions, RunReport, run_files};

/// A writer whose bytes the test can read back.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The lines written.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().expect("lock").clone())
            .expect("utf-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Plans a pipeline.
pub fn plan(sql: &str) -> Pipeline {
    plan_named(vigil_engine::plan::UNNAMED, sql)
}

/// Plans the pipeline file at `path`, named after it as `vigil run` names it.
pub fn plan_file(path: &std::path::Path) -> Pipeline {
    let sql =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    plan_named(&vigil_engine::plan::name_of(path), &sql)
}

fn plan_named(name: &str, sql: &str) -> Pipeline {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan_named(name, sql, &[]))
        .unwrap_or_else(|e| panic!("plan failed: {e}"))
}

/// What a run wrote.
pub struct Run {
    /// Lines written to each sink.
    pub sinks: BTreeMap<String, Vec<String>>,
    /// Late rows (every source).
    pub late: Vec<String>,
    /// Rejected lines: (table, line number, "label: reason").
    pub rejected: Vec<(String, u64, String)>,
    /// The counts.
    pub report: RunReport,
}

impl Run {
    /// Lines of the only (or named) sink.
    pub fn out(&self, sink: &str) -> &[String] {
        self.sinks.get(sink).map_or(&[], Vec::as_slice)
    }
}

fn temp_file(contents: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "vigil-engine-test-{}-{}.jsonl",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).expect("write temp input");
    path
}

/// Runs `pipeline` with each source reading `inputs[table]` (lines), in batches of
/// `batch_size` lines.
pub fn run(pipeline: &Pipeline, inputs: &[(&str, &str)], batch_size: usize) -> Run {
    let mut paths = BTreeMap::new();
    let mut files = Vec::new();
    for (table, text) in inputs {
        let path = temp_file(text);
        paths.insert((*table).to_owned(), path.display().to_string());
        files.push(path);
    }
    let options = RunOptions {
        batch_size,
        paths,
        ..RunOptions::default()
    };
    let mut captured = BTreeMap::new();
    let mut writers: BTreeMap<String, Box<dyn Write + Send>> = BTreeMap::new();
    for job in &pipeline.jobs {
        let c = Captured::default();
        captured.insert(job.sink.name.clone(), c.clone());
        writers.insert(job.sink.name.clone(), Box::new(c));
    }
    let late = Captured::default();
    let late_writer = late.clone();
    let mut outputs =
        Outputs::to_writers(pipeline, writers, move |_| Box::new(late_writer.clone()))
            .expect("outputs");
    let mut rejected = Vec::new();
    let report = run_files(pipeline, &options, &mut outputs, |table, r| {
        rejected.push((
            table.to_owned(),
            r.line,
            format!("{}: {}", r.reason.reason_label(), r.reason),
        ));
    })
    .unwrap_or_else(|e| panic!("run failed: {e}"));
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    Run {
        sinks: captured.into_iter().map(|(k, v)| (k, v.lines())).collect(),
        late: late.lines(),
        rejected,
        report,
    }
}

/// Parses JSON lines.
pub fn json(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// `2026-11-24T08:MM:SSZ` for minute/second offsets from 08:00.
pub fn at(seconds: i64) -> String {
    let base = 1_795_507_200_000_i64; // 2026-11-24T08:00:00Z
    let ms = base + seconds * 1000;
    format!("{ms}")
}
