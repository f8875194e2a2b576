//! Watermarks across source partitions driving a job: an idle partition stops
//! holding windows back after the idle timeout, and what it sends afterwards behind
//! the watermark is late.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use vigil_engine::runtime::watermark::Watermarks;
use vigil_engine::runtime::{Emitted, JobRunner};

use crate::harness::{plan, run};

const BASE_MS: i64 = 1_795_507_200_000;

fn batch(schema: &arrow::datatypes::SchemaRef, rows: &[(&str, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| BASE_MS + r.1 * 1000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(vec![1.0; rows.len()])),
        ],
    )
    .expect("batch")
}

#[test]
fn an_idle_partition_stops_holding_windows_back() {
    let p = plan(
        "CREATE TABLE readings (
  patient_id TEXT NOT NULL,
  observed_at TIMESTAMP NOT NULL,
  x DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '5' SECOND
) WITH (connector = 'kafka', topic = 'readings', format = 'json', idle_timeout = '1 minute');
CREATE TABLE out WITH (connector = 'kafka', topic = 'out', format = 'json');
INSERT INTO out SELECT patient_id, window_end, count(*) AS n FROM readings
GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);",
    );
    let job = &p.jobs[0];
    assert_eq!(job.time.idle_timeout_ms, 60_000);
    let schema = Arc::clone(&job.source.schema);
    let mut runner = JobRunner::new(job, &p.ctx).expect("runner");
    let mut marks = Watermarks::new(5_000, job.time.idle_timeout_ms);
    let mut out = Emitted::default();
    let step = |runner: &mut JobRunner,
                marks: &mut Watermarks,
                partition: u32,
                rows: &[(&str, i64)],
                now: i64,
                out: &mut Emitted| {
        let b = batch(&schema, rows);
        let max = rows.iter().map(|r| BASE_MS + r.1 * 1000).max();
        runner.process(partition, b, out).expect("process");
        marks.observe(partition, max, now);
        if let Some(w) = marks.watermark(now) {
            runner.advance(w, out).expect("advance");
        }
    };
    // Partition 1 delivers once, early, then goes quiet.
    step(&mut runner, &mut marks, 1, &[("b", 10)], 0, &mut out);
    // Partition 0 moves event time on by ten minutes within the idle timeout.
    for i in 1..=10 {
        step(
            &mut runner,
            &mut marks,
            0,
            &[("a", i * 60)],
            i * 5_000,
            &mut out,
        );
    }
    assert!(
        out.rows.is_empty(),
        "partition 1 (at 10 s) holds every window back"
    );
    // A minute of processing time later partition 1 is idle: the windows close.
    step(
        &mut runner,
        &mut marks,
        0,
        &[("a", 11 * 60)],
        60_000,
        &mut out,
    );
    let closed: usize = out.rows.iter().map(RecordBatch::num_rows).sum();
    // Watermark 11 min - 5 s: b's [0, 1 min) and a's nine windows up to [9, 10 min).
    assert_eq!(closed, 10);
    // Partition 1 comes back with a row from long ago: late, not lost.
    let mut late = Emitted::default();
    step(&mut runner, &mut marks, 1, &[("b", 20)], 61_000, &mut late);
    assert_eq!(
        late.late.iter().map(RecordBatch::num_rows).sum::<usize>(),
        1
    );
    assert_eq!(runner.counters().rows_late, 1);
}

/// A file source with an arrival-time column: a device whose clock runs five
/// minutes fast does not drag the watermark ahead, so the honest readings after
/// it are not late; without the option they are.
#[test]
fn an_arrival_time_column_keeps_a_fast_device_clock_from_making_readings_late() {
    let pipeline = |arrival: &str| {
        format!(
            "CREATE TABLE vitals (
  patient_id TEXT NOT NULL, observed_at TIMESTAMP NOT NULL, received_at TIMESTAMP,
  heart_rate DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '5' SECOND
) WITH (connector = 'file', path = 'in.jsonl', format = 'json'{arrival});
CREATE TABLE per_minute WITH (connector = 'file', path = '-', format = 'json');
INSERT INTO per_minute
SELECT patient_id, window_end, count(*) AS n
FROM vitals GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);"
        )
    };
    // 08:00-08:03, a reading every 10 s received 1 s later; at 08:00:30 a fast
    // clock says 08:05:30 (received on time).
    let base = 1_795_507_200_000_i64;
    let mut lines = Vec::new();
    for s in (0..180).step_by(10) {
        lines.push(format!(
            r#"{{"patient_id":"p1","observed_at":{},"received_at":{},"heart_rate":70}}"#,
            base + s * 1000,
            base + s * 1000 + 1000
        ));
        if s == 30 {
            lines.push(format!(
                r#"{{"patient_id":"p2","observed_at":{},"received_at":{},"heart_rate":90}}"#,
                base + 330_000,
                base + 31_000
            ));
        }
    }
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let trusting = run(&plan(&pipeline("")), &[("vitals", input.as_str())], 1);
    assert!(
        !trusting.late.is_empty(),
        "without an arrival time the fast clock makes readings late"
    );
    let bounded = run(
        &plan(&pipeline(", arrival_time = 'received_at'")),
        &[("vitals", input.as_str())],
        1,
    );
    assert!(bounded.late.is_empty(), "{:?}", bounded.late);
    let p1: Vec<&String> = bounded
        .out("per_minute")
        .iter()
        .filter(|l| l.contains("\"p1\""))
        .collect();
    assert_eq!(p1.len(), 3, "three full minutes of p1: {p1:?}");
    assert!(p1.iter().all(|l| l.contains("\"n\":6")), "{p1:?}");
    // The fast reading is kept, in the window its own time names.
    assert!(
        bounded
            .out("per_minute")
            .iter()
            .any(|l| l.contains("\"p2\"")),
        "{:?}",
        bounded.out("per_minute")
    );
}

#[test]
fn arrival_time_must_be_a_timestamp_column() {
    let sql = "CREATE TABLE v (p TEXT, t TIMESTAMP NOT NULL, r TEXT,
  WATERMARK FOR t AS t - INTERVAL '5' SECOND
) WITH (connector = 'file', path = 'x', format = 'json', arrival_time = 'r');
CREATE TABLE o WITH (connector = 'file', path = '-', format = 'json');
INSERT INTO o SELECT p, count(*) AS n FROM v GROUP BY p, tumble(t, INTERVAL '1' MINUTE);";
    let err = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(vigil_engine::plan::Pipeline::plan(sql))
        .expect_err("a TEXT arrival time is refused");
    assert!(
        err.to_string()
            .contains("arrival_time r must be a TIMESTAMP"),
        "{err}"
    );
}
