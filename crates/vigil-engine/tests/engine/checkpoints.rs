//! Operator state written out and restored: a job checkpointed after any batch and
//! restored from the encoded bytes into a fresh runner (another instance taking the
//! partition over) gives exactly the output of a run that was never interrupted, for
//! every kind of stateful operator. So does the runner that took the checkpoint and
//! went on from it.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::Float64Type;
use vigil_engine::EngineError;
use vigil_engine::files::JsonLinesSource;
use vigil_engine::plan::Pipeline;
use vigil_engine::runtime::{Emitted, JobRunner, PartitionState};

use crate::harness::{at, plan};

pub(crate) const DELAY_MS: i64 = 30_000;

fn source() -> String {
    format!(
        "CREATE TABLE readings (
  patient_id TEXT NOT NULL, ward TEXT, observed_at TIMESTAMP NOT NULL, x DOUBLE, o2 BOOLEAN,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '{}' SECOND
) WITH (connector = 'file', path = 'unused.jsonl', format = 'json');
",
        DELAY_MS / 1000
    )
}

const AGGREGATES: &str = "count(*) AS n, sum(x) AS total, avg(x) AS mean, stddev(x) AS sd,
  last_value(x ORDER BY observed_at) AS latest, last_value(o2 ORDER BY observed_at) IGNORE NULLS AS o2,
  count(DISTINCT ward) AS wards, approx_percentile_cont(x, 0.5) AS median";

/// The queries, one per kind of stateful operator.
pub(crate) fn queries() -> Vec<(&'static str, String)> {
    let sink = "CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json', state_ttl = '4 minutes');\n";
    let windowed = |group: &str| {
        format!(
            "{}{sink}INSERT INTO out SELECT patient_id, window_start, window_end, {AGGREGATES} FROM readings GROUP BY patient_id, {group};",
            source()
        )
    };
    vec![
        (
            "tumble",
            windowed("tumble(observed_at, INTERVAL '1' MINUTE)"),
        ),
        (
            "hop",
            windowed("hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)"),
        ),
        (
            "session",
            windowed("session(observed_at, INTERVAL '1' MINUTE)"),
        ),
        (
            "hop of latest values",
            format!(
                "{}{sink}INSERT INTO out SELECT patient_id, window_end,
  last_value(x ORDER BY observed_at) AS x, last_value(o2 ORDER BY observed_at) IGNORE NULLS AS o2
FROM readings GROUP BY patient_id, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE);",
                source()
            ),
        ),
        (
            "global hop",
            format!(
                "{}{sink}INSERT INTO out SELECT window_end, {AGGREGATES} FROM readings GROUP BY hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '3' MINUTE);",
                source()
            ),
        ),
        (
            "updating latest values",
            format!(
                "{}{sink}INSERT INTO out SELECT patient_id,
  last_value(x ORDER BY observed_at) AS x, last_value(o2 ORDER BY observed_at) IGNORE NULLS AS o2,
  first_value(ward ORDER BY observed_at) AS first_ward
FROM readings GROUP BY patient_id;",
                source()
            ),
        ),
        (
            "updating",
            format!(
                "{}{sink}INSERT INTO out SELECT patient_id, {AGGREGATES} FROM readings GROUP BY patient_id;",
                source()
            ),
        ),
        (
            "alert policy over a window",
            format!(
                "{}CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json',
  alert_key = 'patient_id', alert_severity = 'band', alert_time = 'window_end',
  alert_persistence = '1 minute', alert_cooldown = '2 minutes', alert_resolve_after = '1 minute');
INSERT INTO out SELECT patient_id, window_end, max(x) AS top,
  CASE WHEN max(x) >= 20 THEN 'high' WHEN max(x) >= 5 THEN 'medium' WHEN max(x) >= 3 THEN 'low-medium' ELSE 'low' END AS band
FROM readings GROUP BY patient_id, hop(observed_at, INTERVAL '30' SECOND, INTERVAL '1' MINUTE);",
                source()
            ),
        ),
    ]
}

/// Three patients over twelve minutes, out of order within the delay, with gaps that
/// split sessions and expire updating groups, one late row, and a silence that
/// windows close through.
pub(crate) fn input() -> String {
    let mut lines = Vec::new();
    let mut push = |patient: &str, ward: &str, s: i64, x: f64, o2: &str| {
        lines.push(format!(
            r#"{{"patient_id":"{patient}","ward":"{ward}","observed_at":{},"x":{x},"o2":{o2}}}"#,
            at(s)
        ));
    };
    for i in 0..40_i64 {
        let s = i * 15;
        push(
            "a",
            "4B",
            s,
            (i % 7) as f64,
            if i % 3 == 0 { "true" } else { "null" },
        );
        if i % 2 == 0 {
            push(
                "b",
                if i % 4 == 0 { "4B" } else { "ICU" },
                s + 7,
                10.0 + i as f64,
                "false",
            );
        }
        if i % 5 == 1 {
            // Out of order by up to 20 s (within the 30 s delay).
            push("c", "ED", (s - 20).max(0), 1.5 * i as f64, "null");
        }
    }
    // c comes back after a long gap (a new session; its updating group expired).
    for i in 0..8_i64 {
        push("c", "ED", 540 + i * 20, 2.0 * i as f64, "true");
    }
    // A row far behind the watermark: late.
    push("a", "4B", 100, 99.0, "true");
    push("b", "ICU", 720, 5.0, "false");
    // Three silent minutes: windows still close over the state held from before.
    push("a", "4B", 900, 3.0, "null");
    lines.join("\n")
}

/// `input()` with copies of some readings resent a row later, half of them with
/// another value (the first copy wins), for a source that declares a key.
pub(crate) fn input_with_copies() -> String {
    let lines: Vec<String> = input().lines().map(str::to_owned).collect();
    let mut out = Vec::with_capacity(lines.len() * 2);
    let mut pending: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        out.push(line.clone());
        if let Some(copy) = pending.take() {
            out.push(copy);
        }
        // Not the late row, and not c's rows (20 s out of order: a copy a row
        // later could fall behind the watermark and be late instead).
        let copied = i % 3 == 0 && !line.contains(r#""x":99"#) && !line.contains(r#""c""#);
        if copied {
            pending = Some(if i % 2 == 0 {
                line.clone()
            } else {
                line.replace(r#""x":"#, r#""x":1000"#)
            });
        }
    }
    out.extend(pending);
    out.join("\n")
}

/// A query's source declaring `PRIMARY KEY (patient_id, observed_at)`.
pub(crate) fn keyed(sql: &str) -> String {
    sql.replace(
        "  WATERMARK FOR",
        "  PRIMARY KEY (patient_id, observed_at),\n  WATERMARK FOR",
    )
}

/// Each query with its input: as written over `input()`, and with a keyed source
/// over `input_with_copies()`.
pub(crate) fn cases() -> Vec<(String, String, String)> {
    let mut cases = Vec::new();
    for (name, sql) in queries() {
        cases.push((name.to_owned(), keyed(&sql), input_with_copies()));
        cases.push((name.to_owned(), sql, input()));
    }
    // Without a stateful operator, only the memory of readings is state.
    cases.push((
        "filter".to_owned(),
        keyed(&format!(
            "{}CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');
INSERT INTO out SELECT patient_id, observed_at, x FROM readings WHERE x IS NOT NULL;",
            source()
        )),
        input_with_copies(),
    ));
    cases.sort_by_key(|(_, sql, _)| sql.contains("PRIMARY KEY"));
    for (name, sql, _) in &mut cases {
        if sql.contains("PRIMARY KEY") {
            *name = format!("{name} (keyed, with copies)");
        }
    }
    cases
}

pub(crate) fn batches(p: &Pipeline, text: &str, size: usize) -> Vec<(RecordBatch, i64)> {
    let table = &p.jobs[0].source;
    let reader = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
    let mut source = JsonLinesSource::from_reader(table, reader, size, 1 << 20, "test".to_owned())
        .expect("source");
    let mut out = Vec::new();
    while let Some(read) = source.next_batch().expect("read") {
        assert!(read.rejected.is_empty(), "{:?}", read.rejected);
        if let (Some(batch), Some(max)) = (read.batch, read.max_event_time) {
            out.push((batch, max));
        }
    }
    out
}

/// Rows emitted and rows found late.
#[derive(Default)]
pub(crate) struct Collected {
    pub(crate) rows: Vec<RecordBatch>,
    pub(crate) late: usize,
}

impl Collected {
    pub(crate) fn take(&mut self, emitted: Emitted) {
        self.rows.extend(emitted.rows);
        self.late += emitted
            .late
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>();
    }

    fn all(&self, runner: &JobRunner) -> RecordBatch {
        concat_batches(runner.output_schema(), &self.rows).expect("concat")
    }
}

/// Feeds batches from partition 0, advancing the watermark (the latest event time
/// seen, carried across a takeover as the source's watermark would be, minus the
/// delay) after each.
pub(crate) fn feed(
    runner: &mut JobRunner,
    input: &[(RecordBatch, i64)],
    seen: &mut Option<i64>,
    into: &mut Collected,
) {
    for (batch, max) in input {
        let mut emitted = Emitted::default();
        runner
            .process(0, batch.clone(), &mut emitted)
            .expect("process");
        *seen = Some(seen.map_or(*max, |s| s.max(*max)));
        if let Some(seen) = *seen {
            runner
                .advance(seen - DELAY_MS, &mut emitted)
                .expect("advance");
        }
        into.take(emitted);
    }
}

pub(crate) fn finish(runner: &mut JobRunner, into: &mut Collected) {
    let mut emitted = Emitted::default();
    runner.finish(&mut emitted).expect("finish");
    into.take(emitted);
}

/// The output of one uninterrupted run of `job` over `input` (partition 0), and
/// what it collected (rows and late count).
pub(crate) fn uninterrupted(
    job: &vigil_engine::plan::Job,
    ctx: &datafusion::prelude::SessionContext,
    input: &[(RecordBatch, i64)],
) -> (RecordBatch, Collected) {
    let mut whole = Collected::default();
    let mut runner = JobRunner::new(job, ctx).expect("runner");
    feed(&mut runner, input, &mut None, &mut whole);
    finish(&mut runner, &mut whole);
    (whole.all(&runner), whole)
}

/// Asserts equal batches, naming the first column that differs. Floating-point
/// columns may differ in the last bits: restoring merges a pane's state into a fresh
/// accumulator, and a merge such as stddev's (count, mean, M2) with an empty state
/// rounds (`mean * n / n`). Everything else must be identical.
fn same(got: &RecordBatch, expected: &RecordBatch, context: &str) {
    assert_eq!(got.num_rows(), expected.num_rows(), "{context}: rows");
    for (i, field) in expected.schema().fields().iter().enumerate() {
        let (g, e) = (got.column(i), expected.column(i));
        if let (Some(g), Some(e)) = (
            g.as_primitive_opt::<Float64Type>(),
            e.as_primitive_opt::<Float64Type>(),
        ) {
            for (row, (a, b)) in g.iter().zip(e.iter()).enumerate() {
                let close = match (a, b) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0),
                    (a, b) => a == b,
                };
                assert!(
                    close,
                    "{context}: {} row {row}: {a:?} != {b:?}",
                    field.name()
                );
            }
        } else {
            assert_eq!(g.as_ref(), e.as_ref(), "{context}: column {}", field.name());
        }
    }
}

#[test]
fn a_restored_partition_continues_exactly_where_it_left_off() {
    for (name, sql, text) in cases() {
        let p = plan(&sql);
        let input = batches(&p, &text, 7);
        let job = &p.jobs[0];

        let (expected, whole) = uninterrupted(job, &p.ctx, &input);
        assert!(expected.num_rows() > 5, "{name}: too little output");
        assert_eq!(whole.late, 1, "{name}: the late row");

        for cut in 0..=input.len() {
            let mut seen = None;
            let mut before = Collected::default();
            let mut first = JobRunner::new(job, &p.ctx).expect("runner");
            feed(&mut first, &input[..cut], &mut seen, &mut before);
            let state = first.checkpoint(0).expect("checkpoint");
            let bytes = state.to_bytes().expect("encode");
            // Taking a checkpoint changes nothing, whether the state is read in
            // place or the operator rebuilt: a second one holds as much, and
            // the run goes on as if there had been none (below).
            let again = first.checkpoint(0).expect("checkpoint again");
            assert_eq!(again.rows(), state.rows(), "{name}: cut {cut}");
            assert_eq!(again.parts.len(), state.parts.len(), "{name}: cut {cut}");
            // Streamed in place, where the state allows (it always does for
            // merged hop state), the bytes are the checkpoint's.
            let measured = first.measure_in_place(0).expect("measure");
            if name.starts_with("hop of latest values") {
                assert!(measured.is_some(), "{name}: cut {cut}: not in place");
            }
            if let Some(measured) = measured {
                let mut streamed = Vec::new();
                first
                    .write_in_place(&measured, &mut streamed)
                    .expect("write in place");
                assert_eq!(streamed.len() as u64, measured.len(), "{name}: cut {cut}");
                assert!(streamed == bytes, "{name}: cut {cut}: other bytes in place");
            }

            // The instance that wrote the checkpoint goes on from it.
            let mut went_on = Collected {
                rows: before.rows.clone(),
                late: before.late,
            };
            let mut seen_on = seen;
            feed(&mut first, &input[cut..], &mut seen_on, &mut went_on);
            finish(&mut first, &mut went_on);
            same(
                &went_on.all(&first),
                &expected,
                &format!("{name}: checkpoint after batch {cut}, same runner"),
            );
            assert_eq!(went_on.late, 1, "{name}: cut {cut}");

            // Another instance takes the partition over from the bytes.
            let mut second = JobRunner::new(job, &p.ctx).expect("runner");
            let restored = PartitionState::from_bytes(&bytes).expect("decode");
            assert_eq!(restored.rows(), state.rows());
            second.restore(restored).expect("restore");
            let mut after = before;
            feed(&mut second, &input[cut..], &mut seen, &mut after);
            finish(&mut second, &mut after);
            same(
                &after.all(&second),
                &expected,
                &format!("{name}: checkpoint after batch {cut}, restored elsewhere"),
            );
            assert_eq!(after.late, 1, "{name}: cut {cut}");
        }
    }
}

#[test]
fn rows_behind_a_restored_watermark_are_late_not_lost() {
    let (_, sql) = &queries()[0];
    let p = plan(sql);
    let input = batches(&p, &input(), 1000);
    let job = &p.jobs[0];
    let mut first = JobRunner::new(job, &p.ctx).expect("runner");
    let mut seen = None;
    feed(&mut first, &input, &mut seen, &mut Collected::default());
    let state = first.checkpoint(0).expect("checkpoint");
    let watermark = state.watermark.expect("a watermark");

    let mut second = JobRunner::new(job, &p.ctx).expect("runner");
    second.restore(state).expect("restore");
    // The new owner's job watermark has not moved yet; the restored one still holds.
    let old = batches(
        &p,
        &format!(
            r#"{{"patient_id":"a","observed_at":{},"x":1}}"#,
            (watermark - 120_000)
        ),
        1,
    );
    let mut emitted = Emitted::default();
    second
        .process(0, old[0].0.clone(), &mut emitted)
        .expect("process");
    assert_eq!(emitted.late.len(), 1);
    assert_eq!(second.counters().rows_late, 1);
}

#[test]
fn state_of_another_job_or_a_taken_partition_is_refused() {
    let queries = queries();
    let p = plan(&queries[0].1);
    let other = plan(&queries[1].1);
    let input = batches(&p, &input(), 1000);
    let mut runner = JobRunner::new(&p.jobs[0], &p.ctx).expect("runner");
    feed(&mut runner, &input, &mut None, &mut Collected::default());
    let state = runner.checkpoint(0).expect("checkpoint");
    assert!(!state.parts.is_empty());

    let mut elsewhere = JobRunner::new(&other.jobs[0], &other.ctx).expect("runner");
    let err = elsewhere.restore(state.clone()).expect_err("another job");
    assert!(matches!(err, EngineError::Checkpoint(_)), "{err}");
    assert!(err.to_string().contains("different job"), "{err}");

    // The partition is still held by the runner that wrote the checkpoint.
    let err = runner.restore(state.clone()).expect_err("held");
    assert!(err.to_string().contains("already holds state"), "{err}");

    // Released, it can be taken back.
    runner.release(0);
    assert_eq!(runner.partitions().count(), 0);
    runner.restore(state).expect("restore after release");
    assert_eq!(runner.partitions().collect::<Vec<_>>(), [0]);
}

#[test]
fn partitions_keep_separate_state() {
    let (_, sql) = &queries()[0];
    let p = plan(sql);
    let input = batches(&p, &input(), 10);
    let mut runner = JobRunner::new(&p.jobs[0], &p.ctx).expect("runner");
    let mut out = Emitted::default();
    for (i, (batch, _)) in input.iter().enumerate() {
        runner
            .process((i % 2) as u32, batch.clone(), &mut out)
            .expect("process");
    }
    assert_eq!(runner.partitions().collect::<Vec<_>>(), [0, 1]);
    let groups = runner.state_groups();
    let one = runner.checkpoint(1).expect("checkpoint");
    runner.release(1);
    assert!(runner.state_groups() < groups);
    assert!(one.rows() > 0);
}

/// A partition restored on an instance whose other partitions have moved the
/// job's watermark far ahead: its rows after the checkpoint are not late, and
/// together the two owners emit exactly the windows of an uninterrupted run.
#[test]
fn a_partition_restored_behind_the_new_owners_watermark_catches_up() {
    let (name, sql) = &queries()[0];
    let p = plan(sql);
    let input = batches(&p, &input(), 7);
    let job = &p.jobs[0];
    let (expected, _) = uninterrupted(job, &p.ctx, &input);

    let cut = input.len() / 2;
    let (mut seen, mut before) = (None, Collected::default());
    let mut first = JobRunner::new(job, &p.ctx).expect("runner");
    feed(&mut first, &input[..cut], &mut seen, &mut before);
    let state = first.checkpoint(0).expect("checkpoint");

    // The new owner's partition 1 is an hour ahead.
    let mut second = JobRunner::new(job, &p.ctx).expect("runner");
    let ahead = batches(
        &p,
        &format!(r#"{{"patient_id":"z","observed_at":{}}}"#, at(3600)),
        1,
    );
    let mut ignored = Emitted::default();
    second
        .process(1, ahead[0].0.clone(), &mut ignored)
        .expect("process");
    second
        .advance(ahead[0].1 - DELAY_MS, &mut ignored)
        .expect("advance");
    second.restore(state).expect("restore");
    let mut after = before;
    let rest = &input[cut..];
    // Checkpointed again while catching up (a commit of the new owner): it
    // goes on catching up.
    feed(&mut second, &rest[..1], &mut seen, &mut after);
    let again = second.checkpoint(0).expect("checkpoint while catching up");
    assert!(
        again.watermark < Some(ahead[0].1 - DELAY_MS),
        "its own watermark"
    );
    feed(&mut second, &rest[1..], &mut seen, &mut after);
    finish(&mut second, &mut after);
    let got = after.all(&second);
    let keep = arrow::compute::kernels::cmp::neq(
        got.column(0),
        &arrow::array::Scalar::new(arrow::array::StringArray::from(vec!["z"])),
    )
    .expect("filter");
    let got = arrow::compute::filter_record_batch(&got, &keep).expect("filter");
    same(&got, &expected, &format!("{name}: restored behind"));
    assert_eq!(after.late, 1, "only the row that was late anyway");
}

/// Partition 1's readings (five minutes of them, then one at minute 20) are
/// taken in while partition 0 is still at minute 0, so its windows stay open
/// and it is checkpointed so; then partition 0 catches up and the job's
/// watermark passes them. Restored from that checkpoint, by the runner that
/// took it (a rewind: its outputs since were lost) or by another whose
/// watermark is as far, with no reading of partition 1 to come, the next
/// advance (the watermark unchanged) closes them: its rows had passed them.
#[test]
fn a_partition_checkpointed_ahead_of_the_others_closes_its_windows_once_restored() {
    let p = plan(&queries()[0].1);
    let job = &p.jobs[0];
    let mut text = String::new();
    for s in (0..300).step_by(10) {
        text.push_str(&format!(
            "{{\"patient_id\":\"b\",\"observed_at\":{},\"x\":{s}}}\n",
            at(s)
        ));
    }
    text.push_str(&format!(
        "{{\"patient_id\":\"b\",\"observed_at\":{}}}\n",
        at(1200)
    ));
    let ahead = batches(&p, &text, 100);
    let caught_up = at(1200).parse::<i64>().expect("ms") - DELAY_MS;
    let windows_of_b = |out: &Emitted| -> usize {
        out.rows
            .iter()
            .map(|b| {
                let patient = b.column(0).as_string::<i32>();
                (0..b.num_rows())
                    .filter(|&i| patient.value(i) == "b")
                    .count()
            })
            .sum()
    };

    let mut first = JobRunner::new(job, &p.ctx).expect("runner");
    let mut out = Emitted::default();
    first
        .advance(at(0).parse::<i64>().expect("ms") - DELAY_MS, &mut out)
        .expect("advance");
    for (batch, _) in &ahead {
        first.process(1, batch.clone(), &mut out).expect("process");
    }
    let state = first.checkpoint(1).expect("checkpoint");
    first.advance(caught_up, &mut out).expect("advance");
    assert_eq!(windows_of_b(&out), 5, "closed once partition 0 caught up");

    // A rewind: the outputs since the checkpoint were lost.
    first.release(1);
    first.restore(state.clone()).expect("restore");
    let mut again = Emitted::default();
    first.advance(caught_up, &mut again).expect("advance");
    assert_eq!(windows_of_b(&again), 5, "closed again after the rewind");

    // Another instance, its own partition 0 as far.
    let mut second = JobRunner::new(job, &p.ctx).expect("runner");
    let mut ignored = Emitted::default();
    second.advance(caught_up, &mut ignored).expect("advance");
    second.restore(state).expect("restore");
    let mut moved = Emitted::default();
    second.advance(caught_up, &mut moved).expect("advance");
    assert_eq!(windows_of_b(&moved), 5, "closed on the new owner");
}

/// A state of more keys than one slice: streamed in place it is written slice
/// by slice (parts of at most `SLICE_ROWS` keys), and the instance restored from
/// those bytes, like the one that went on, gives the uninterrupted output.
#[test]
fn a_large_merged_hop_state_is_streamed_in_slices_and_restores_whole() {
    let sql = format!(
        "{}CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');
INSERT INTO out SELECT patient_id, window_end,
  last_value(x ORDER BY observed_at) AS x, last_value(o2 ORDER BY observed_at) IGNORE NULLS AS o2
FROM readings GROUP BY patient_id, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE);",
        source()
    );
    let patients = vigil_engine::runtime::checkpoint::SLICE_ROWS + 3_000;
    let mut lines = Vec::new();
    for round in 0..4_i64 {
        for patient in 0..patients {
            // Two thirds of the patients in each minute: the merged state and
            // the live panes both hold more keys than a slice.
            if (patient as i64 + round) % 3 != 0 {
                lines.push(format!(
                    r#"{{"patient_id":"p{patient}","observed_at":{},"x":{},"o2":null}}"#,
                    at(round * 60 + (patient % 50) as i64),
                    (patient as i64 * 7 + round) % 40
                ));
            }
        }
    }
    let p = plan(&sql);
    let input = batches(&p, &lines.join("\n"), 8_192);
    let job = &p.jobs[0];
    let (expected, _) = uninterrupted(job, &p.ctx, &input);
    assert!(expected.num_rows() > patients, "too little output");
    let cut = input.len() * 3 / 4;

    let mut seen = None;
    let mut before = Collected::default();
    let mut first = JobRunner::new(job, &p.ctx).expect("runner");
    feed(&mut first, &input[..cut], &mut seen, &mut before);
    let measured = first
        .measure_in_place(0)
        .expect("measure")
        .expect("merged hop state is read in place");
    assert!(
        measured.rows() > vigil_engine::runtime::checkpoint::SLICE_ROWS as u64,
        "{measured:?}"
    );
    let mut bytes = Vec::new();
    first.write_in_place(&measured, &mut bytes).expect("write");
    assert_eq!(bytes.len() as u64, measured.len());
    let state = PartitionState::from_bytes(&bytes).expect("decode");
    assert_eq!(state.rows() as u64, measured.rows());
    let slices = state.parts.iter().filter(|p| p.num_rows() > 0).count();
    assert!(slices >= 3, "{slices} parts: the keys came in one");
    assert!(
        state
            .parts
            .iter()
            .all(|p| p.num_rows() <= vigil_engine::runtime::checkpoint::SLICE_ROWS)
    );

    let mut went_on = Collected {
        rows: before.rows.clone(),
        late: before.late,
    };
    let mut seen_on = seen;
    feed(&mut first, &input[cut..], &mut seen_on, &mut went_on);
    finish(&mut first, &mut went_on);
    same(&went_on.all(&first), &expected, "the runner that wrote it");

    let mut second = JobRunner::new(job, &p.ctx).expect("runner");
    second.restore(state).expect("restore");
    let mut after = before;
    feed(&mut second, &input[cut..], &mut seen, &mut after);
    finish(&mut second, &mut after);
    same(&after.all(&second), &expected, "restored elsewhere");
}
