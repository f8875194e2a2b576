//! Streaming throughput of the engine from in-memory batches: the NEWS2-per-patient
//! pipeline over a 1-minute tumbling window (also from a source that declares a
//! key, recognising resent readings), over a 1-hour window hopping every minute
//! (60 panes), and as an updating aggregate. Reports events/s, and prints the
//! operator state per patient at its peak.
//!
//! What is timed is the stream itself: batches in, watermark advanced after each,
//! every window emitted as it closes. The end-of-input flush is not timed (it is
//! printed): an unbounded stream never has one, and for a 1-hour hop it emits an
//! hour of extra windows at once, which would charge the hop for 60 windows no
//! tumbling window has. Ninety minutes of data, so the hop windows are full for
//! the last half hour.
//!
//! `cargo bench -p vigil-engine --bench windows`

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vigil_engine::plan::Pipeline;
use vigil_engine::runtime::{Emitted, JobRunner};

const PATIENTS: usize = 2_000;
/// One reading per patient every this many seconds.
const EVERY_S: i64 = 6;
/// Minutes of data.
const MINUTES: i64 = 90;
const BATCH: usize = 8192;
const BASE_MS: i64 = 1_795_507_200_000;

const SOURCE: &str = "CREATE TABLE vitals (
  patient_id TEXT NOT NULL, ward TEXT, observed_at TIMESTAMP NOT NULL,
  resp_rate DOUBLE, spo2 DOUBLE, spo2_scale DOUBLE, on_oxygen BOOLEAN, systolic_bp DOUBLE,
  heart_rate DOUBLE, consciousness TEXT, temperature DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '5' SECOND
) WITH (connector = 'kafka', topic = 'vitals', format = 'json');
CREATE TABLE scores WITH (connector = 'kafka', topic = 'scores', format = 'json');
";

const LATEST: &str = "
  last_value(resp_rate ORDER BY observed_at) IGNORE NULLS AS resp_rate,
  last_value(spo2 ORDER BY observed_at) IGNORE NULLS AS spo2,
  last_value(spo2_scale ORDER BY observed_at) IGNORE NULLS AS spo2_scale,
  last_value(on_oxygen ORDER BY observed_at) IGNORE NULLS AS on_oxygen,
  last_value(systolic_bp ORDER BY observed_at) IGNORE NULLS AS systolic_bp,
  last_value(heart_rate ORDER BY observed_at) IGNORE NULLS AS heart_rate,
  last_value(consciousness ORDER BY observed_at) IGNORE NULLS AS consciousness,
  last_value(temperature ORDER BY observed_at) IGNORE NULLS AS temperature";

const SCORE: &str = "news2(resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, heart_rate, consciousness, temperature) AS news2";

fn windowed(window: &str) -> String {
    format!(
        "{SOURCE}CREATE VIEW latest AS SELECT patient_id, window_end, {LATEST}
FROM vitals GROUP BY patient_id, {window};
INSERT INTO scores SELECT patient_id, window_end, {SCORE} FROM latest;"
    )
}

fn updating() -> String {
    format!(
        "{SOURCE}CREATE VIEW latest AS SELECT patient_id, {LATEST} FROM vitals GROUP BY patient_id;
INSERT INTO scores SELECT patient_id, {SCORE} FROM latest;"
    )
}

/// Time-ordered batches: every patient reads heart rate and SpO2 every few seconds,
/// the rest of the chart now and then (NULL otherwise).
fn batches(schema: &arrow::datatypes::SchemaRef) -> Vec<RecordBatch> {
    let ids: Vec<String> = (0..PATIENTS).map(|i| format!("p-{i:07}")).collect();
    let mut rows: Vec<(usize, i64)> = Vec::new();
    for step in 0..(MINUTES * 60 / EVERY_S) {
        for p in 0..PATIENTS {
            let jitter = (p as i64 * 37) % (EVERY_S * 1000);
            rows.push((p, BASE_MS + step * EVERY_S * 1000 + jitter));
        }
    }
    rows.sort_by_key(|r| r.1);
    rows.chunks(BATCH)
        .map(|chunk| {
            let n = chunk.len();
            let sparse = |i: usize, every: usize, v: f64| {
                ((chunk[i].1 / 1000) as usize % every == chunk[i].0 % every).then_some(v)
            };
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|r| &ids[r.0]),
                )),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|r| ["4B", "ICU", "ED"][r.0 % 3]),
                )),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(chunk.iter().map(|r| r.1))
                        .with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from_iter((0..n).map(|i| sparse(i, 60, 18.0)))),
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| 94.0 + (i % 5) as f64),
                )),
                Arc::new(Float64Array::from(vec![None; n])),
                Arc::new(BooleanArray::from_iter(
                    (0..n).map(|i| sparse(i, 60, 0.0).map(|_| false)),
                )),
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| sparse(i, 300, 118.0)),
                )),
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| 70.0 + (i % 40) as f64),
                )),
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| sparse(i, 600, 0.0).map(|_| "A")),
                )),
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| sparse(i, 600, 37.1)),
                )),
            ];
            RecordBatch::try_new(Arc::clone(schema), cols).expect("batch")
        })
        .collect()
}

fn plan(sql: &str) -> Pipeline {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan(sql))
        .expect("plan")
}

/// Feeds every batch, advancing the watermark after each, then (if `flush`) ends
/// the input; returns rows out and the peak state in bytes.
fn drive(p: &Pipeline, input: &[RecordBatch], flush: bool) -> (u64, usize) {
    let mut runner = JobRunner::new(&p.jobs[0], &p.ctx).expect("runner");
    let mut peak = 0;
    for batch in input {
        let mut out = Emitted::default();
        let max = arrow::compute::max(
            batch
                .column(2)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .expect("times"),
        )
        .expect("rows");
        runner.process(0, batch.clone(), &mut out).expect("process");
        runner.advance(max - 5_000, &mut out).expect("advance");
        peak = peak.max(runner.state_bytes());
    }
    if flush {
        let mut out = Emitted::default();
        runner.finish(&mut out).expect("finish");
    }
    (runner.counters().rows_out, peak)
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "tumble_1min",
            windowed("tumble(observed_at, INTERVAL '1' MINUTE)"),
        ),
        // The same with the source keyed: what recognising resent readings
        // costs (one look-up per row, and the memory of readings in the state).
        (
            "tumble_1min_keyed",
            windowed("tumble(observed_at, INTERVAL '1' MINUTE)").replacen(
                "\n) WITH (connector = 'kafka', topic = 'vitals'",
                ",\n  PRIMARY KEY (patient_id, observed_at)\n) WITH (connector = 'kafka', topic = 'vitals'",
                1,
            ),
        ),
        (
            "hop_1min_1h",
            windowed("hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '1' HOUR)"),
        ),
        (
            "tumble_1h",
            windowed("tumble(observed_at, INTERVAL '1' HOUR)"),
        ),
        ("updating", updating()),
    ];
    let first = plan(&cases[0].1);
    let input = batches(&first.jobs[0].source.schema);
    let events: u64 = input.iter().map(|b| b.num_rows() as u64).sum();
    let mut group = c.benchmark_group("news2_pipeline");
    group.throughput(Throughput::Elements(events));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, sql) in &cases {
        let p = plan(sql);
        let (streamed, peak) = drive(&p, &input, false);
        let (rows, _) = drive(&p, &input, true);
        eprintln!(
            "{name}: {events} events, {streamed} rows out while streaming ({rows} with the \
             end-of-input flush), peak state {peak} B = {} B/patient",
            peak / PATIENTS
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), &p, |b, p| {
            b.iter(|| drive(p, &input, false))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
