//! Watermarks across source partitions driving a job: an idle partition stops
//! holding windows back after the idle timeout, and what it sends afterwards behind
//! the watermark is late.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use vigil_engine::runtime::watermark::Watermarks;
use vigil_engine::runtime::{Emitted, JobRunner};

use crate::harness::plan;

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
