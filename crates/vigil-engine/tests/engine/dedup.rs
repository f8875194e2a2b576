//! Duplicate readings: a source declaring `PRIMARY KEY (...)` takes each reading in
//! once, however often a device resends it; what the key may be is checked when
//! the pipeline is planned.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use vigil_engine::plan::Pipeline;
use vigil_engine::runtime::{Emitted, JobRunner, PartitionState};

use crate::harness::{at, json, plan, run};

const SINK: &str = "CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');\n";

/// A source of readings with `key` (the table's last clause before the watermark).
fn source(key: &str) -> String {
    format!(
        "CREATE TABLE readings (
  patient_id TEXT, ward TEXT, observed_at TIMESTAMP NOT NULL, x DOUBLE, y DOUBLE,
  {key}
  WATERMARK FOR observed_at AS observed_at - INTERVAL '30' SECOND
) WITH (connector = 'file', path = 'unused.jsonl', format = 'json');
{SINK}"
    )
}

const KEY: &str = "PRIMARY KEY (patient_id, observed_at),";

const COUNTS: &str =
    "INSERT INTO out SELECT patient_id, window_end, count(*) AS n, sum(x) AS sx, sum(y) AS sy
FROM readings GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);";

fn try_plan(sql: &str) -> Result<Pipeline, String> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan(sql))
        .map_err(|e| e.to_string())
}

fn line(patient: &str, s: i64, fields: &str) -> String {
    let sep = if fields.is_empty() { "" } else { "," };
    format!(
        r#"{{"patient_id":"{patient}","observed_at":{}{sep}{fields}}}"#,
        at(s)
    )
}

#[test]
fn the_key_is_checked_when_the_pipeline_is_planned() {
    let ok = try_plan(&format!("{}{COUNTS}", source(KEY))).expect("plans");
    assert_eq!(ok.jobs[0].source.key, ["patient_id", "observed_at"]);
    assert!(
        ok.describe()
            .contains("key (patient_id, observed_at): copies of a reading are taken in once"),
        "{}",
        ok.describe()
    );
    // Flink's spelling plans to the same key.
    let flink = try_plan(&format!(
        "{}{COUNTS}",
        source("PRIMARY KEY (patient_id, observed_at) NOT ENFORCED,")
    ))
    .expect("plans");
    assert_eq!(flink.jobs[0].source.key, ["patient_id", "observed_at"]);
    let rejected = |key: &str, query: &str| {
        try_plan(&format!("{}{query}", source(key))).expect_err("should be rejected")
    };
    let cases = [
        (
            "PRIMARY KEY (patient_id),",
            "must include its event-time column observed_at",
        ),
        (
            "PRIMARY KEY (patient_id, nope, observed_at),",
            "no column nope",
        ),
        (
            "PRIMARY KEY (observed_at, observed_at),",
            "column observed_at named twice",
        ),
        (
            "PRIMARY KEY (patient_id, observed_at), PRIMARY KEY (ward, observed_at),",
            "more than one PRIMARY KEY",
        ),
        ("UNIQUE (patient_id, observed_at),", "is not supported"),
    ];
    for (key, expected) in cases {
        let e = rejected(key, COUNTS);
        assert!(e.contains(expected), "{key}: {e}");
        assert!(e.contains("line 1"), "{key}: {e}");
    }
    // A key on a column works too, but still needs the event time.
    let e = try_plan(&format!(
        "CREATE TABLE readings (patient_id TEXT PRIMARY KEY, observed_at TIMESTAMP, x DOUBLE,
  WATERMARK FOR observed_at AS observed_at) WITH (connector = 'file', path = 'x', format = 'json');
{SINK}INSERT INTO out SELECT * FROM readings;"
    ))
    .expect_err("key without event time");
    assert!(e.contains("must include its event-time column"), "{e}");
    // Without a watermark, readings could never be forgotten.
    let e = try_plan(&format!(
        "CREATE TABLE readings (patient_id TEXT, observed_at TIMESTAMP, x DOUBLE,
  PRIMARY KEY (patient_id, observed_at)) WITH (connector = 'file', path = 'x', format = 'json');
{SINK}INSERT INTO out SELECT * FROM readings;"
    ))
    .expect_err("key without watermark");
    assert!(e.contains("needs event time: declare a WATERMARK"), "{e}");
    // A key on a table no query reads would silently do nothing.
    let e = try_plan(&format!(
        "{}CREATE TABLE keyed_sink (patient_id TEXT, observed_at TIMESTAMP, PRIMARY KEY (patient_id, observed_at),
  WATERMARK FOR observed_at AS observed_at) WITH (connector = 'file', path = 'y', format = 'json');
INSERT INTO keyed_sink SELECT patient_id, observed_at FROM readings;",
        source(KEY)
    ))
    .expect_err("key on a sink");
    assert!(e.contains("no query reads keyed_sink"), "{e}");
    // Too wide to remember which columns a reading carried.
    let columns: String = (0..65).map(|i| format!("c{i} DOUBLE, ")).collect();
    let e = try_plan(&format!(
        "CREATE TABLE wide (patient_id TEXT, observed_at TIMESTAMP, {columns}
  PRIMARY KEY (patient_id, observed_at), WATERMARK FOR observed_at AS observed_at)
  WITH (connector = 'file', path = 'x', format = 'json');
{SINK}INSERT INTO out SELECT * FROM wide;"
    ))
    .expect_err("65 carried columns");
    assert!(e.contains("at most 64"), "{e}");
}

/// Resent copies (identical, or with another value: the first copy wins) are
/// dropped; a row bringing a column not seen yet for its key (another measurement
/// at the same time, as narrow messages bring them) is taken in; rows with a NULL
/// key are taken in unjudged. The same in one batch and row by row.
#[test]
fn copies_are_dropped_and_new_measurements_of_the_same_reading_kept() {
    let input = [
        line("a", 0, r#""x":1"#),
        line("a", 0, r#""x":1"#),       // identical resend
        line("a", 0, r#""x":100"#),     // a resend with another value: the first wins
        line("a", 0, r#""y":7"#),       // another measurement of the same reading
        line("a", 0, r#""y":7"#),       // ... resent
        line("a", 0, r#""x":2,"y":9"#), // nothing new
        line("a", 1, r#""x":3"#),       // another time
        line("b", 0, r#""x":4"#),       // another patient
        r#"{"observed_at":"#.to_owned() + &at(0) + r#","x":5}"#, // no patient: unjudged
        r#"{"observed_at":"#.to_owned() + &at(0) + r#","x":5}"#,
        line("a", 0, r#""ward":"4B""#), // a column not seen yet, even if not a vital
        line("a", 120, ""),
    ]
    .join("\n");
    let p = plan(&format!("{}{COUNTS}", source(KEY)));
    for batch in [1, 3, 1000] {
        let r = run(&p, &[("readings", &input)], batch);
        let out = json(r.out("out"));
        let row = |patient: Option<&str>| {
            out.iter()
                .find(|o| {
                    o["patient_id"].as_str() == patient && o["window_end"] == "2026-11-24T08:01:00Z"
                })
                .unwrap_or_else(|| panic!("batch {batch}: no row for {patient:?} in {out:?}"))
        };
        let a = row(Some("a"));
        assert_eq!(
            (&a["n"], &a["sx"], &a["sy"]),
            (&4.into(), &4.0.into(), &7.0.into()),
            "batch {batch}: {a}"
        );
        assert_eq!(row(Some("b"))["n"], 1, "batch {batch}");
        assert_eq!(row(None)["n"], 2, "batch {batch}");
        assert_eq!(r.report.jobs[0].rows_duplicate, 4, "batch {batch}");
        assert_eq!(r.report.jobs[0].rows_late, 0, "batch {batch}");
    }
    // Without the key every copy counts.
    let unkeyed = plan(&format!("{}{COUNTS}", source("")));
    let r = run(&unkeyed, &[("readings", &input)], 1000);
    assert_eq!(r.report.jobs[0].rows_duplicate, 0);
    let a = json(r.out("out"))
        .into_iter()
        .find(|o| o["patient_id"] == "a")
        .expect("a");
    assert_eq!(a["n"], 8);
}

/// A job without a stateful operator (a filter) drops copies too.
#[test]
fn a_stateless_job_drops_copies() {
    let p = plan(&format!(
        "{}INSERT INTO out SELECT patient_id, observed_at, x FROM readings WHERE x > 2;",
        source(KEY)
    ));
    let input = [
        line("a", 0, r#""x":3"#),
        line("a", 0, r#""x":3"#),
        line("a", 0, r#""x":1"#),
        line("a", 5, r#""x":1"#),
        line("a", 5, r#""x":8"#),
    ]
    .join("\n");
    let r = run(&p, &[("readings", &input)], 2);
    assert_eq!(r.out("out").len(), 1, "{:?}", r.out("out"));
    assert_eq!(r.report.jobs[0].rows_duplicate, 3);
}

fn batch(schema: &arrow::datatypes::SchemaRef, rows: &[(&str, i64, f64)]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| at(r.1).parse::<i64>().expect("ms")),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(Float64Array::from(vec![None::<f64>; rows.len()])),
        ],
    )
    .expect("batch")
}

/// The memory of readings is bounded by the watermark: readings behind it are
/// forgotten, and a copy of one arriving after that is late (for the late output,
/// counted), never taken in again unjudged. It survives a checkpoint, and a new
/// owner restored from it still recognises copies.
#[test]
fn the_memory_is_forgotten_behind_the_watermark_and_moves_with_the_partition() {
    for query in [
        COUNTS.to_owned(),
        "INSERT INTO out SELECT patient_id, observed_at, x FROM readings;".to_owned(),
    ] {
        let p = plan(&format!("{}{query}", source(KEY)));
        let job = &p.jobs[0];
        let schema = Arc::clone(&job.source.schema);
        let mut runner = JobRunner::new(job, &p.ctx).expect("runner");
        let mut out = Emitted::default();
        let rows: Vec<(&str, i64, f64)> = (0..110).map(|i| ("a", i, i as f64)).collect();
        runner
            .process(0, batch(&schema, &rows), &mut out)
            .expect("process");
        assert_eq!(runner.remembered_readings(), 110);
        let held = runner.state_bytes();
        assert!(held > 0);
        // The watermark passes 79 s (the partition's own, 109 s less the 30 s
        // delay, too): readings before 79 s are forgotten.
        let ms = |s: i64| at(s).parse::<i64>().expect("ms");
        runner.advance(ms(79), &mut out).expect("advance");
        assert_eq!(runner.remembered_readings(), 31, "{query}");
        assert!(runner.state_bytes() < held);
        // A replay must start early enough to rebuild the memory: the earliest
        // reading remembered, or the operator's own horizon (the open window).
        let horizon = if query == COUNTS { ms(60) } else { ms(79) };
        assert_eq!(runner.progress(0).horizon, Some(horizon), "{query}");
        let mut out = Emitted::default();
        runner
            .process(
                0,
                batch(&schema, &[("a", 78, 0.0), ("a", 85, 0.0), ("a", 120, 1.0)]),
                &mut out,
            )
            .expect("process");
        assert_eq!(out.duplicates, 1, "{query}: the copy at 85 s");
        let late: usize = out.late.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(late, 1, "{query}: the copy at 78 s is too old to judge");

        // Another instance takes the partition over from a checkpoint.
        let state = runner.checkpoint(0).expect("checkpoint");
        let bytes = state.to_bytes().expect("encode");
        let mut second = JobRunner::new(job, &p.ctx).expect("runner");
        second
            .restore(PartitionState::from_bytes(&bytes).expect("decode"))
            .expect("restore");
        assert_eq!(second.remembered_readings(), 32, "{query}");
        let mut out = Emitted::default();
        // Its own watermark has not moved: what was forgotten stays too old.
        second
            .process(
                0,
                batch(&schema, &[("a", 90, 0.0), ("a", 121, 0.0), ("a", 50, 0.0)]),
                &mut out,
            )
            .expect("process");
        assert_eq!(out.duplicates, 1, "{query}: the copy at 90 s");
        assert_eq!(
            out.late.iter().map(RecordBatch::num_rows).sum::<usize>(),
            1,
            "{query}"
        );
        assert_eq!(second.remembered_readings(), 33, "{query}");
        // The runner that wrote the checkpoint goes on with the same memory.
        let mut out = Emitted::default();
        runner
            .process(0, batch(&schema, &[("a", 90, 0.0)]), &mut out)
            .expect("process");
        assert_eq!(out.duplicates, 1, "{query}");
        // Released, the memory goes with the partition.
        runner.release(0);
        assert_eq!(runner.remembered_readings(), 0);
    }
}

/// Memory of readings is refused by a job whose source declares no key (an edited
/// pipeline: its fingerprint differs, so the state is refused as another job's).
#[test]
fn a_memory_is_refused_by_a_job_without_the_key() {
    let keyed = plan(&format!("{}{COUNTS}", source(KEY)));
    let unkeyed = plan(&format!("{}{COUNTS}", source("")));
    let mut runner = JobRunner::new(&keyed.jobs[0], &keyed.ctx).expect("runner");
    let schema = Arc::clone(&keyed.jobs[0].source.schema);
    runner
        .process(0, batch(&schema, &[("a", 0, 1.0)]), &mut Emitted::default())
        .expect("process");
    let state = runner.checkpoint(0).expect("checkpoint");
    let mut other = JobRunner::new(&unkeyed.jobs[0], &unkeyed.ctx).expect("runner");
    let e = other.restore(state).expect_err("refused");
    assert!(e.to_string().contains("different job"), "{e}");
    assert_ne!(
        JobRunner::new(&keyed.jobs[0], &keyed.ctx)
            .expect("runner")
            .fingerprint(),
        other.fingerprint()
    );
}

/// For every kind of stateful operator (and a filter), a keyed source fed copies
/// of readings gives exactly what it gives over the input without them.
#[test]
fn copies_change_no_result_of_any_operator() {
    use crate::checkpoints::{Collected, batches, cases, feed, finish, input, input_with_copies};
    let copies = input_with_copies().lines().count() - input().lines().count();
    assert!(copies >= 20, "{copies} copies");
    let clean_run = |sql: &str, text: &str, size: usize| {
        let p = plan(sql);
        let mut collected = Collected::default();
        let mut runner = JobRunner::new(&p.jobs[0], &p.ctx).expect("runner");
        feed(
            &mut runner,
            &batches(&p, text, size),
            &mut None,
            &mut collected,
        );
        finish(&mut runner, &mut collected);
        let mut lines: Vec<String> = collected
            .rows
            .iter()
            .flat_map(|b| {
                let bytes = vigil_formats::json::write_json_lines(Vec::new(), &[b]).expect("json");
                String::from_utf8(bytes)
                    .expect("utf-8")
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        // Windows closed by one watermark come out in key order, not in the
        // order of a run batched otherwise.
        lines.sort();
        (lines, collected.late, runner.counters().rows_duplicate)
    };
    // Keyed queries: every stateful operator and a filter.
    let keyed_cases = cases()
        .into_iter()
        .filter(|(_, sql, _)| sql.contains("PRIMARY KEY"));
    for (name, sql, with_copies) in keyed_cases {
        // Row by row, or all at once: copies then move no batch boundary (the
        // watermark moves and updating aggregates emit after each batch).
        for size in [1, 1000] {
            let (expected, late, none) = clean_run(&sql, &input(), size);
            assert!(!expected.is_empty(), "{name}");
            assert_eq!(none, 0, "{name}: no copies in the clean input");
            let (got, got_late, duplicates) = clean_run(&sql, &with_copies, size);
            assert_eq!(got, expected, "{name}, batches of {size}");
            assert_eq!(got_late, late, "{name}, batches of {size}");
            assert_eq!(duplicates as usize, copies, "{name}, batches of {size}");
        }
    }
}

/// Narrow messages (one measurement each, as FHIR Observation feeds send them):
/// a copy is the same patient, time and measurement, resent; the patient's other
/// measurements at that time are kept.
#[test]
fn narrow_copies_are_the_same_patient_time_and_measurement() {
    let p = plan(
        "CREATE TABLE vitals (
  patient_id TEXT NOT NULL, observed_at TIMESTAMP NOT NULL, heart_rate DOUBLE, resp_rate DOUBLE,
  temperature DOUBLE,
  PRIMARY KEY (patient_id, observed_at),
  WATERMARK FOR observed_at AS observed_at - INTERVAL '30' SECOND
) WITH (connector = 'file', path = 'unused.jsonl', format = 'json-narrow');
CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');
INSERT INTO out SELECT patient_id, window_end, count(*) AS n, count(heart_rate) AS hr,
  count(resp_rate) AS rr, max(temperature) AS temp
FROM vitals GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);",
    );
    let m = |s: i64, code: &str, value: &str, unit: &str| {
        format!(
            r#"{{"patient_id":"p1","observed_at":{},"code":"{code}","value":{value},"unit":"{unit}"}}"#,
            at(s)
        )
    };
    let input = [
        m(0, "8867-4", "88", "/min"),
        m(0, "9279-1", "18", "/min"),
        m(0, "8867-4", "88", "/min"),          // resent
        m(0, "8310-5", "101.3", "[degF]"),     // 38.5 °C
        m(0, "8310-5", "38.5", "Cel"),         // the same temperature, resent in °C
        m(0, "9279-1", "19", "{breaths}/min"), // resent with another value
        m(10, "8867-4", "90", "/min"),         // a later reading
        m(120, "8867-4", "70", "/min"),
    ]
    .join("\n");
    let r = run(&p, &[("vitals", &input)], 3);
    let out = json(r.out("out"));
    let first = &out[0];
    assert_eq!(first["n"], 4, "{first}");
    assert_eq!(
        (&first["hr"], &first["rr"]),
        (&2.into(), &1.into()),
        "{first}"
    );
    assert!(
        (first["temp"].as_f64().unwrap_or(0.0) - 38.5).abs() < 1e-9,
        "{first}"
    );
    assert_eq!(r.report.jobs[0].rows_duplicate, 3);
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}
