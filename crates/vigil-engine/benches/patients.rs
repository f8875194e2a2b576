//! Memory at scale: the NEWS2-per-patient pipeline (latest value of each vital within
//! the last hour, scored every minute: a 1-hour window hopping every minute) over a
//! large cohort, reporting operator state per patient and the process's peak RSS.
//!
//! `cargo bench -p vigil-engine --bench patients` (1M patients, one reading each a
//! minute; set `VIGIL_BENCH_PATIENTS` for another size and `VIGIL_BENCH_EVERY_S`
//! for another reading interval: with readings more often than the watermark
//! delay, nearly two live panes coexist at each pane boundary). Readings are generated batch by batch,
//! so the input never sits in memory: what the peak RSS holds beyond the baseline
//! is the engine's state, one batch in flight and the allocator's slack.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use vigil_engine::plan::Pipeline;
use vigil_engine::runtime::{Emitted, JobRunner};

/// One reading per patient every this many seconds, unless `VIGIL_BENCH_EVERY_S`
/// says otherwise.
const EVERY_S: i64 = 60;
/// Minutes of data: past the hour, so every window is full.
const MINUTES: i64 = 75;
const BATCH: usize = 8192;
const BASE_MS: i64 = 1_795_507_200_000;

/// The 1-hour hop NEWS2 pipeline (shared with the Kafka bench's scale phase).
const PIPELINE: &str = include_str!("news2_hour.sql");

/// A `/proc/self/status` figure in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Readings of patients `from..to` in reading round `round` (rounds `every_s`
/// apart): heart rate and SpO2 every time, the rest of the chart now and then
/// (NULL otherwise).
fn batch(
    schema: &arrow::datatypes::SchemaRef,
    round: i64,
    every_s: i64,
    from: usize,
    to: usize,
) -> RecordBatch {
    let n = to - from;
    let t = |p: usize| BASE_MS + round * every_s * 1000 + (p as i64 * 37) % (every_s * 1000);
    let sparse = |p: usize, every: i64, v: f64| ((round + p as i64) % every == 0).then_some(v);
    let ids = (from..to).map(|p| format!("p-{p:07}"));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(ids)),
        Arc::new(
            TimestampMillisecondArray::from_iter_values((from..to).map(t)).with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter(
            (from..to).map(|p| sparse(p, 5, 18.0)),
        )),
        Arc::new(Float64Array::from_iter_values(
            (from..to).map(|p| 94.0 + (p % 5) as f64),
        )),
        Arc::new(BooleanArray::from_iter(
            (from..to).map(|p| sparse(p, 15, 0.0).map(|_| false)),
        )),
        Arc::new(Float64Array::from_iter(
            (from..to).map(|p| sparse(p, 30, 118.0)),
        )),
        Arc::new(Float64Array::from_iter_values(
            (from..to).map(|p| 70.0 + (p % 40) as f64),
        )),
        Arc::new(StringArray::from_iter(
            (from..to).map(|p| sparse(p, 60, 0.0).map(|_| "A")),
        )),
        Arc::new(Float64Array::from_iter(
            (from..to).map(|p| sparse(p, 60, 37.1)),
        )),
    ];
    debug_assert_eq!(cols[0].len(), n);
    RecordBatch::try_new(Arc::clone(schema), cols).expect("batch")
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let patients: usize = std::env::var("VIGIL_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let every_s: i64 = std::env::var("VIGIL_BENCH_EVERY_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(EVERY_S);
    let rounds = MINUTES * 60 / every_s;
    let p = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan(PIPELINE))
        .expect("plan");
    let job = &p.jobs[0];
    let schema = Arc::clone(&job.source.schema);
    let mut runner = JobRunner::new(job, &p.ctx).expect("runner");
    let baseline = status_bytes("VmRSS");
    let started = Instant::now();
    let (mut events, mut rows_out, mut peak_state) = (0u64, 0u64, 0usize);
    for round in 0..rounds {
        let mut from = 0;
        while from < patients {
            let to = (from + BATCH).min(patients);
            let b = batch(&schema, round, every_s, from, to);
            let max = BASE_MS + round * every_s * 1000 + (every_s * 1000 - 1);
            let mut out = Emitted::default();
            runner.process(0, b, &mut out).expect("process");
            events += (to - from) as u64;
            // Readings arrive in patient order within a round, so the watermark
            // moves a round at a time: at each round's end.
            if to == patients {
                // The peak is just before the watermark closes a pane: the
                // closing pane and the next one are both live.
                peak_state = peak_state.max(runner.state_bytes());
                runner.advance(max - 5_000, &mut out).expect("advance");
            }
            rows_out += out.rows.iter().map(|r| r.num_rows() as u64).sum::<u64>();
            from = to;
        }
        peak_state = peak_state.max(runner.state_bytes());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let hwm = status_bytes("VmHWM");
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("patients:            {patients}");
    println!(
        "events:              {events} ({MINUTES} minutes, one reading per patient every {every_s} s)"
    );
    println!("rows out:            {rows_out}");
    println!(
        "throughput:          {:.2} M events/s (generation included)",
        events as f64 / elapsed / 1e6
    );
    println!(
        "peak operator state: {:.1} MiB = {} B/patient",
        mib(peak_state as u64),
        peak_state / patients.max(1)
    );
    println!("RSS baseline:        {:.1} MiB", mib(baseline));
    println!(
        "peak RSS:            {:.1} MiB ({:.1} MiB above baseline = {} B/patient)",
        mib(hwm),
        mib(hwm.saturating_sub(baseline)),
        hwm.saturating_sub(baseline) / patients.max(1) as u64
    );
}
