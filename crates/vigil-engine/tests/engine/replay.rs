//! A partition taken over by replay from its committed offset: the previous owner
//! committed up to the first input that still mattered to its state (its
//! [`Progress`] horizon), went on for a while, and died; the new owner replays from
//! the commit with that progress. Together they must emit every result of an
//! uninterrupted run, and the new owner must emit nothing else: no window rebuilt
//! from only part of its rows.

use std::collections::BTreeSet;

use arrow::array::RecordBatch;
use vigil_engine::runtime::{Emitted, JobRunner, PartitionState, Progress};

use crate::checkpoints::{Collected, batches, cases, feed, finish, input, queries, uninterrupted};

/// Output rows as canonical text (floats to 9 significant digits: merges in
/// another order round the last bits).
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let bytes = vigil_formats::json::write_json_lines(Vec::new(), &[batch]).expect("json");
        for line in String::from_utf8(bytes).expect("utf-8").lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("json");
            out.push(canonical(&value));
        }
    }
    out
}

fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", canonical(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Number(n) if n.is_f64() => {
            format!("{:.9e}", n.as_f64().unwrap_or(f64::NAN))
        }
        other => other.to_string(),
    }
}

/// The number of leading batches that can be committed at `progress`: those whose
/// rows are all older than its horizon.
fn committable(input: &[(RecordBatch, i64)], fed: usize, progress: Progress) -> usize {
    match progress.horizon {
        None => fed,
        Some(horizon) => input[..fed]
            .iter()
            .take_while(|(_, max)| *max < horizon)
            .count(),
    }
}

#[test]
fn a_partition_replayed_from_its_commit_loses_nothing_and_emits_nothing_wrong() {
    // Not the alert policy: its state is not in the commit's progress, so a new
    // owner that replays raises an alert in force again (with its own
    // first_seen). A takeover from a state checkpoint keeps it (checkpoints.rs).
    for (name, sql, text) in cases().into_iter().filter(|(n, _, _)| !n.contains("alert")) {
        let p = plan_of(&sql);
        let input = batches(&p, &text, 7);
        let job = &p.jobs[0];

        let (_, whole) = uninterrupted(job, &p.ctx, &input);
        let expected: BTreeSet<String> = rows(&whole.rows).into_iter().collect();

        let mut committed_somewhere = false;
        let last = input.iter().map(|(_, max)| *max).max().expect("input");
        for (cut, ahead) in (0..=input.len()).flat_map(|c| [(c, false), (c, true)]) {
            for crash in [cut, (cut + 3).min(input.len())] {
                // The first owner: commits after `cut` batches, dies after `crash`.
                let mut seen = None;
                let mut first_out = Collected::default();
                let mut first = JobRunner::new(job, &p.ctx).expect("runner");
                feed(&mut first, &input[..cut], &mut seen, &mut first_out);
                let progress = first.progress(0);
                let commit = committable(&input, cut, progress);
                committed_somewhere |= commit > 0;
                feed(&mut first, &input[cut..crash], &mut seen, &mut first_out);

                // The next owner replays from the commit; it may be an instance
                // whose other partitions have moved its watermark far ahead.
                let replay = |ahead: bool| {
                    let mut out = Collected::default();
                    let mut second = JobRunner::new(job, &p.ctx).expect("runner");
                    if ahead {
                        let mut ignored = Emitted::default();
                        second
                            .advance(last + 86_400_000, &mut ignored)
                            .expect("advance");
                    }
                    second.resume(0, progress).expect("resume");
                    feed(&mut second, &input[commit..], &mut None, &mut out);
                    finish(&mut second, &mut out);
                    out
                };
                let second_out = replay(ahead);
                if ahead {
                    let fresh = replay(false);
                    assert_eq!(
                        (rows(&second_out.rows), second_out.late),
                        (rows(&fresh.rows), fresh.late),
                        "{name}, commit after {cut}: a new owner whose watermark is ahead replays as a fresh one"
                    );
                }

                let context = format!(
                    "{name}: commit after {cut} batches ({commit} committable), crash after {crash}, new owner ahead: {ahead}"
                );
                let replayed = rows(&second_out.rows);
                for row in &replayed {
                    assert!(
                        expected.contains(row),
                        "{context}: the new owner emitted a row no full run emits: {row}"
                    );
                }
                let got: BTreeSet<String> =
                    rows(&first_out.rows).into_iter().chain(replayed).collect();
                let missing: Vec<&String> = expected.difference(&got).collect();
                assert!(missing.is_empty(), "{context}: lost {missing:?}");
            }
        }
        assert!(
            committed_somewhere || name.starts_with("updating"),
            "{name}: offsets never committable"
        );
    }
}

fn plan_of(sql: &str) -> vigil_engine::plan::Pipeline {
    crate::harness::plan(sql)
}

/// Replayed rows older than the horizon are counted, not emitted or reported late.
#[test]
fn replayed_rows_a_previous_owner_took_in_are_skipped_and_counted() {
    let (_, sql) = &queries()[0];
    let p = plan_of(sql);
    let input = batches(&p, &input(), 1000);
    let job = &p.jobs[0];
    let mut runner = JobRunner::new(job, &p.ctx).expect("runner");
    runner
        .resume(
            0,
            Progress {
                horizon: Some(i64::MAX),
                emitted_through: Some(i64::MAX),
            },
        )
        .expect("resume");
    let mut emitted = Emitted::default();
    for (batch, _) in &input {
        runner
            .process(0, batch.clone(), &mut emitted)
            .expect("process");
    }
    runner.finish(&mut emitted).expect("finish");
    let total: usize = input.iter().map(|(b, _)| b.num_rows()).sum();
    assert!(emitted.rows.is_empty() && emitted.late.is_empty());
    assert_eq!(runner.counters().rows_replayed_done, total as u64);
}

/// A partition checkpointed while it replays (an exactly-once instance gives up
/// a partition it is rebuilding by replay, or commits one) and restored on
/// another instance goes on replaying there: together the two emit exactly what
/// one replayer emits, row for row, with the same late rows. Without the replay
/// in the checkpoint the second would emit windows the first owner had emitted,
/// or windows from part of their rows.
#[test]
fn a_partition_checkpointed_mid_replay_goes_on_replaying_where_it_is_restored() {
    for (name, sql, text) in cases() {
        let p = plan_of(&sql);
        let input = batches(&p, &text, 7);
        let job = &p.jobs[0];
        let last = input.iter().map(|(_, max)| *max).max().expect("input");
        // A replayer on an instance whose other partitions are far ahead: it
        // replays to the end of the input.
        let replayer = |progress: Progress| {
            let mut runner = JobRunner::new(job, &p.ctx).expect("runner");
            runner
                .advance(last + 86_400_000, &mut Emitted::default())
                .expect("advance");
            runner.resume(0, progress).expect("resume");
            runner
        };
        // Without a stateful operator only the memory of readings replays.
        let mut checkpointed_replaying = name.starts_with("filter");
        // Every other commit and checkpoint point (a run takes a minute otherwise).
        for cut in (0..=input.len()).step_by(2) {
            let mut first = JobRunner::new(job, &p.ctx).expect("runner");
            feed(
                &mut first,
                &input[..cut],
                &mut None,
                &mut Collected::default(),
            );
            let progress = first.progress(0);
            let commit = committable(&input, cut, progress);

            let mut whole = Collected::default();
            let mut one = replayer(progress);
            feed(&mut one, &input[commit..], &mut None, &mut whole);
            finish(&mut one, &mut whole);
            let mut expected = rows(&whole.rows);
            expected.sort();

            let mids = (commit..=input.len()).step_by(2);
            for (mid, ahead) in mids.flat_map(|m| [(m, false), (m, true)]) {
                let mut out = Collected::default();
                let mut seen = None;
                let mut a = replayer(progress);
                feed(&mut a, &input[commit..mid], &mut seen, &mut out);
                checkpointed_replaying |= a.replaying(0);
                let bytes = a
                    .checkpoint(0)
                    .and_then(|s| s.to_bytes())
                    .expect("checkpoint");
                drop(a);

                let mut b = JobRunner::new(job, &p.ctx).expect("runner");
                if ahead {
                    b.advance(last + 86_400_000, &mut Emitted::default())
                        .expect("advance");
                }
                let state = PartitionState::from_bytes(&bytes).expect("decode");
                b.restore(state).expect("restore");
                feed(&mut b, &input[mid..], &mut seen, &mut out);
                finish(&mut b, &mut out);
                let mut got = rows(&out.rows);
                got.sort();
                let context = format!(
                    "{name}: commit after {cut} batches ({commit} committable), checkpointed after {mid}, new owner ahead: {ahead}"
                );
                assert_eq!(got, expected, "{context}");
                assert_eq!(out.late, whole.late, "{context}: late rows");
            }
        }
        assert!(
            checkpointed_replaying,
            "{name}: never checkpointed while replaying"
        );
    }
}
