//! Windowed and updating aggregation, run end to end over JSON lines.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::Value;

use crate::harness::{at, json, plan, run};

const BASE_MS: i64 = 1_795_507_200_000; // 2026-11-24T08:00:00Z

fn source(delay: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE readings (
  patient_id TEXT NOT NULL,
  observed_at TIMESTAMP NOT NULL,
  x DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '{delay}' SECOND
) WITH (connector = 'file', path = 'unused.jsonl', format = 'json'{extra});
CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');
"
    )
}

fn line(patient: &str, seconds: i64, x: f64) -> String {
    format!(
        r#"{{"patient_id":"{patient}","observed_at":{},"x":{x}}}"#,
        at(seconds)
    )
}

fn ms_of(v: &Value) -> i64 {
    let text = v.as_str().expect("timestamp text");
    chrono_free_parse(text)
}

/// Parses `YYYY-MM-DDTHH:MM:SS(.fff)Z` on 2026-11-24 into epoch ms (enough here).
fn chrono_free_parse(text: &str) -> i64 {
    assert!(text.starts_with("2026-11-24T"), "unexpected date {text}");
    let time = &text[11..text.len() - 1];
    let mut parts = time.split(':');
    let h: i64 = parts.next().expect("h").parse().expect("h");
    let m: i64 = parts.next().expect("m").parse().expect("m");
    let s: f64 = parts.next().expect("s").parse().expect("s");
    BASE_MS + ((h - 8) * 3600 + m * 60) * 1000 + (s * 1000.0).round() as i64
}

const HOP_QUERY: &str = "INSERT INTO out
SELECT patient_id, window_start, window_end, count(*) AS n, sum(x) AS total, min(x) AS lo,
       max(x) AS hi, last_value(x ORDER BY observed_at) AS latest
FROM readings
GROUP BY patient_id, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE);";

/// (patient, start ms, end ms) -> (count, sum, min, max, last)
type Expected = BTreeMap<(String, i64, i64), (i64, f64, f64, f64, f64)>;

fn brute_force(rows: &[(String, i64, f64)], slide_s: i64, size_s: i64) -> Expected {
    let mut out = Expected::new();
    for (patient, t, x) in rows {
        let pane = t.div_euclid(slide_s);
        // Every window [end - size, end) containing t, ends on slide multiples.
        let mut end = (pane + 1) * slide_s;
        while end - size_s <= *t {
            let key = (
                patient.clone(),
                BASE_MS + (end - size_s) * 1000,
                BASE_MS + end * 1000,
            );
            let e = out.entry(key).or_insert((0, 0.0, f64::MAX, f64::MIN, 0.0));
            e.0 += 1;
            e.1 += x;
            e.2 = e.2.min(*x);
            e.3 = e.3.max(*x);
            end += slide_s;
        }
    }
    // last_value by time: recompute per window from the latest row.
    for ((patient, start, end), e) in out.iter_mut() {
        let latest = rows
            .iter()
            .filter(|(p, t, _)| {
                p == patient && BASE_MS + t * 1000 >= *start && BASE_MS + t * 1000 < *end
            })
            .max_by_key(|(_, t, _)| *t)
            .expect("a row");
        e.4 = latest.2;
    }
    out
}

fn observed(lines: &[String]) -> Expected {
    json(lines)
        .iter()
        .map(|v| {
            (
                (
                    v["patient_id"].as_str().expect("id").to_owned(),
                    ms_of(&v["window_start"]),
                    ms_of(&v["window_end"]),
                ),
                (
                    v["n"].as_i64().expect("n"),
                    v["total"].as_f64().expect("total"),
                    v["lo"].as_f64().expect("lo"),
                    v["hi"].as_f64().expect("hi"),
                    v["latest"].as_f64().expect("latest"),
                ),
            )
        })
        .collect()
}

/// Readings of three patients over 20 minutes, distinct times per patient.
fn readings() -> Vec<(String, i64, f64)> {
    let mut rows = Vec::new();
    for (p, step) in [("a", 7), ("b", 13), ("c", 29)] {
        let mut t = 0;
        while t < 1200 {
            rows.push((p.to_owned(), t, ((t * 7 + step) % 50) as f64));
            t += step;
        }
    }
    rows.sort_by_key(|r| r.1);
    rows
}

fn text(rows: &[(String, i64, f64)]) -> String {
    rows.iter()
        .map(|(p, t, x)| line(p, *t, *x) + "\n")
        .collect()
}

#[test]
fn hop_windows_equal_a_brute_force_computation() {
    let p = plan(&format!("{}{HOP_QUERY}", source("0", "")));
    let rows = readings();
    let input = text(&rows);
    for batch in [1, 7, 64, 100_000] {
        let r = run(&p, &[("readings", &input)], batch);
        assert_eq!(r.report.jobs[0].rows_late, 0);
        assert_eq!(
            observed(r.out("out")),
            brute_force(&rows, 60, 300),
            "batch {batch}"
        );
    }
}

#[test]
fn tumbling_windows_close_at_end_of_input() {
    let p = plan(&format!(
        "{}INSERT INTO out SELECT patient_id, window_end, count(*) AS n FROM readings
GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);",
        source("3600", "")
    ));
    // The watermark (max - 1 hour) never passes a window: only end of input closes them.
    let input = [
        line("a", 0, 1.0),
        line("a", 59, 2.0),
        line("a", 60, 3.0),
        line("b", 30, 1.0),
    ]
    .join("\n");
    let r = run(&p, &[("readings", &input)], 1);
    let got: Vec<(String, i64, i64)> = json(r.out("out"))
        .iter()
        .map(|v| {
            (
                v["patient_id"].as_str().expect("id").to_owned(),
                (ms_of(&v["window_end"]) - BASE_MS) / 1000,
                v["n"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".to_owned(), 60, 2),
            ("b".to_owned(), 60, 1),
            ("a".to_owned(), 120, 1)
        ]
    );
}

#[test]
fn late_rows_go_to_the_late_output_and_are_counted() {
    let p = plan(&format!(
        "{}INSERT INTO out SELECT patient_id, window_end, count(*) AS n FROM readings
GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);",
        source("10", "")
    ));
    let input = [
        line("a", 0, 1.0),
        line("a", 100, 1.0), // watermark 90: window [0, 60) closes
        line("a", 50, 9.0),  // behind the watermark: late
        line("a", 85, 2.0),  // behind the watermark too (85 < 90)
        line("a", 95, 3.0),  // within the delay: counts
    ]
    .join("\n");
    let r = run(&p, &[("readings", &input)], 1);
    assert_eq!(r.report.jobs[0].rows_late, 2);
    let late = json(&r.late);
    assert_eq!(late.len(), 2);
    assert_eq!(late[0]["x"], 9.0);
    assert_eq!(late[1]["x"], 2.0);
    let counts: Vec<i64> = json(r.out("out"))
        .iter()
        .map(|v| v["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(counts, [1, 2], "the late rows counted in no window");
}

#[test]
fn allowed_lateness_holds_windows_open() {
    let p = plan(&format!(
        "{}INSERT INTO out SELECT patient_id, window_end, count(*) AS n FROM readings
GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);",
        source("10", ", allowed_lateness = '1 minute'")
    ));
    let input = [line("a", 0, 1.0), line("a", 100, 1.0), line("a", 50, 9.0)].join("\n");
    let r = run(&p, &[("readings", &input)], 1);
    assert_eq!(r.report.jobs[0].rows_late, 0);
    let counts: Vec<i64> = json(r.out("out"))
        .iter()
        .map(|v| v["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(counts, [2, 1]);
}

#[test]
fn a_row_bridging_two_sessions_merges_them() {
    let p = plan(&format!(
        "{}INSERT INTO out SELECT patient_id, window_start, window_end, count(*) AS n, sum(x) AS total
FROM readings GROUP BY patient_id, session(observed_at, INTERVAL '5' MINUTE);",
        source("3600", "")
    ));
    let input = [
        line("a", 0, 1.0),
        line("a", 500, 2.0), // 8m20s later: a second session
        line("b", 0, 5.0),
        line("a", 1500, 4.0), // 15 min after that: a third
        line("a", 250, 8.0),  // within the gap of both: bridges them
    ]
    .join("\n");
    let r = run(&p, &[("readings", &input)], 1);
    let got: Vec<(String, i64, i64, i64, f64)> = json(r.out("out"))
        .iter()
        .map(|v| {
            (
                v["patient_id"].as_str().expect("id").to_owned(),
                (ms_of(&v["window_start"]) - BASE_MS) / 1000,
                (ms_of(&v["window_end"]) - BASE_MS) / 1000,
                v["n"].as_i64().expect("n"),
                v["total"].as_f64().expect("total"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("b".to_owned(), 0, 300, 1, 5.0),
            ("a".to_owned(), 0, 800, 3, 11.0),
            ("a".to_owned(), 1500, 1800, 1, 4.0),
        ]
    );
}

#[test]
fn updating_aggregates_emit_changed_groups_and_expire_idle_ones() {
    let p = plan(&format!(
        "{}CREATE TABLE totals WITH (connector = 'file', path = '-', format = 'json', state_ttl = '10 minutes');
INSERT INTO totals SELECT patient_id, count(*) AS n, max(x) AS hi FROM readings GROUP BY patient_id;",
        source("0", "")
    ));
    let input = [
        line("a", 0, 1.0),
        line("b", 60, 2.0),
        line("a", 120, 3.0),
        line("b", 1000, 4.0), // watermark 1000: a (last seen 120) expired at 720
        line("a", 1001, 5.0),
    ]
    .join("\n");
    let r = run(&p, &[("readings", &input)], 1);
    let got: Vec<(String, i64, f64)> = json(r.out("totals"))
        .iter()
        .map(|v| {
            (
                v["patient_id"].as_str().expect("id").to_owned(),
                v["n"].as_i64().expect("n"),
                v["hi"].as_f64().expect("hi"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".to_owned(), 1, 1.0),
            ("b".to_owned(), 1, 2.0),
            ("a".to_owned(), 2, 3.0),
            ("b".to_owned(), 2, 4.0),
            ("a".to_owned(), 1, 5.0),
        ]
    );
}

/// BOOLEAN arguments of first_value/last_value run widened to TINYINT inside the
/// engine (DataFusion has no grouped accumulator for them); the output must still be
/// BOOLEAN, NULLs ignored where asked, in every kind of operator.
#[test]
fn boolean_first_and_last_values_in_every_operator() {
    let source = "CREATE TABLE readings (
  patient_id TEXT NOT NULL, observed_at TIMESTAMP NOT NULL, on_oxygen BOOLEAN,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '0' SECOND
) WITH (connector = 'file', path = 'unused.jsonl', format = 'json');
CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');
";
    let picks = "first_value(on_oxygen ORDER BY observed_at) AS first_o2,
  last_value(on_oxygen ORDER BY observed_at) IGNORE NULLS AS last_o2,
  last_value(on_oxygen ORDER BY observed_at) AS last_raw";
    let row = |s: i64, v: &str| {
        format!(
            r#"{{"patient_id":"a","observed_at":{},"on_oxygen":{v}}}"#,
            at(s)
        )
    };
    // Out of time order within the batch: the picks follow observed_at.
    let input = [row(20, "true"), row(10, "false"), row(30, "null")].join("\n");
    let groupings = [
        "GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE)",
        "GROUP BY patient_id, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)",
        "GROUP BY patient_id, session(observed_at, INTERVAL '1' MINUTE)",
        "GROUP BY patient_id",
    ];
    for grouping in groupings {
        let p = plan(&format!(
            "{source}INSERT INTO out SELECT patient_id, {picks} FROM readings {grouping};"
        ));
        let r = run(&p, &[("readings", &input)], 3);
        let got = json(r.out("out"));
        assert!(!got.is_empty(), "{grouping}: no output");
        for v in &got {
            assert_eq!(v["first_o2"], Value::Bool(false), "{grouping}: {v}");
            assert_eq!(v["last_o2"], Value::Bool(true), "{grouping}: {v}");
            assert_eq!(v["last_raw"], Value::Null, "{grouping}: {v}");
        }
    }
}

/// Output lines as JSON without the column `n` (the count(*) that some tests add
/// only to turn a specialised path off).
fn without_n(lines: &[String]) -> Vec<Value> {
    json(lines)
        .into_iter()
        .map(|mut v| {
            if let Some(object) = v.as_object_mut() {
                object.remove("n");
            }
            v
        })
        .collect()
}

/// Hop windows whose aggregates are all latest values by event time keep one merged
/// state instead of a state per pane. Adding any other aggregate (count) turns that
/// off, so the same query with and without it must pick the same values: keys that
/// fall silent leave the windows, come back (also while their last window
/// closes), send rows whose values are all NULL, with IGNORE NULLS and without,
/// keyed and global.
#[test]
fn collapsed_hop_windows_equal_pane_by_pane_ones() {
    let mut rows = Vec::new();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut d_rows = vec![(100_i64, 7), (602, 8)];
    for i in 0..600_i64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let patient = ["a", "b", "c"][(state % 3) as usize];
        // b falls silent between minutes 4 and 11; c only ever sends NULLs after
        // minute 6.
        let t = i * 2 + (state >> 8) as i64 % 2;
        if patient == "b" && (240..660).contains(&t) {
            continue;
        }
        let x = if (patient == "c" && t > 360) || (state >> 16).is_multiple_of(5) {
            "null".to_owned()
        } else {
            format!("{}", (state >> 20) % 100)
        };
        rows.push(format!(
            r#"{{"patient_id":"{patient}","observed_at":{},"x":{x}}}"#,
            at(t)
        ));
        // d is seen at 100 s, then once at 602 s: that row reaches the pane
        // [600, 660) before the window [300, 600) closes without d, so d must
        // stay known through that close.
        while let Some(&(d, x)) = d_rows.first().filter(|(d, _)| t >= *d) {
            rows.push(format!(
                r#"{{"patient_id":"d","observed_at":{},"x":{x}}}"#,
                at(d)
            ));
            d_rows.remove(0);
        }
    }
    let input = rows.join("\n");
    let picks = "last_value(x ORDER BY observed_at) AS latest,
  last_value(x ORDER BY observed_at) IGNORE NULLS AS known";
    for (keys, group) in [("patient_id, ", "patient_id, "), ("", "")] {
        let query = |extra: &str| {
            plan(&format!(
                "{}INSERT INTO out SELECT {keys}window_end, {picks}{extra} FROM readings
GROUP BY {group}hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE);",
                source("10", "")
            ))
        };
        let collapsed = run(&query(""), &[("readings", &input)], 16);
        let panes = run(&query(", count(*) AS n"), &[("readings", &input)], 16);
        let (got, expected) = (without_n(collapsed.out("out")), without_n(panes.out("out")));
        assert!(expected.len() > 20, "{keys}: too little output");
        assert_eq!(got, expected, "keys: {keys:?}");
    }
}

/// Updating aggregates of latest values only keep column accumulators over every
/// group instead of row-wise ones per group. Adding count(*) turns that off, so the
/// picks must be the same either way, through expiry and a new key taking an
/// expired key's slot with only NULL values.
#[test]
fn updating_latest_values_equal_row_wise_ones() {
    let row = |p: &str, s: i64, x: &str| {
        format!(r#"{{"patient_id":"{p}","observed_at":{},"x":{x}}}"#, at(s))
    };
    let input = [
        row("a", 0, "1"),
        row("b", 10, "2"),
        row("a", 20, "null"),
        row("b", 15, "3"),     // older than b's latest: not picked by last_value
        row("c", 700, "4"),    // watermark 700: a and b (last seen by 20) expired at 620
        row("d", 701, "null"), // takes an expired slot; has no value
        row("a", 702, "null"), // back, with no value
        row("b", 703, "5"),
    ]
    .join("\n");
    let picks = "last_value(x ORDER BY observed_at) AS latest,
  last_value(x ORDER BY observed_at) IGNORE NULLS AS known,
  first_value(x ORDER BY observed_at) IGNORE NULLS AS first_known";
    let query = |extra: &str| {
        plan(&format!(
            "{}CREATE TABLE totals WITH (connector = 'file', path = '-', format = 'json', state_ttl = '10 minutes');
INSERT INTO totals SELECT patient_id, {picks}{extra} FROM readings GROUP BY patient_id;",
            source("0", "")
        ))
    };
    for batch_size in [1, 3] {
        let picked = run(&query(""), &[("readings", &input)], batch_size);
        let row_wise = run(
            &query(", count(*) AS n"),
            &[("readings", &input)],
            batch_size,
        );
        let (got, expected) = (
            without_n(picked.out("totals")),
            without_n(row_wise.out("totals")),
        );
        assert!(expected.len() >= 6, "too little output");
        assert_eq!(got, expected, "batch size {batch_size}");
    }
    // And what the picks are, batch by batch of one.
    let r = run(&query(""), &[("readings", &input)], 1);
    let last = json(r.out("totals"));
    let d = last.iter().find(|v| v["patient_id"] == "d").expect("d");
    assert_eq!(
        d["known"],
        Value::Null,
        "d inherits nothing from an expired key"
    );
    let a = last.iter().rfind(|v| v["patient_id"] == "a").expect("a");
    assert_eq!(a["known"], Value::Null, "a's old value expired with it");
}

#[test]
fn global_windows_without_keys() {
    let p = plan(&format!(
        "{}INSERT INTO out SELECT window_end, count(*) AS n, avg(x) AS mean FROM readings
GROUP BY tumble(observed_at, INTERVAL '1' MINUTE);",
        source("0", "")
    ));
    let input = [line("a", 0, 1.0), line("b", 30, 3.0), line("a", 61, 5.0)].join("\n");
    let r = run(&p, &[("readings", &input)], 2);
    let got: Vec<(i64, f64)> = json(r.out("out"))
        .iter()
        .map(|v| {
            (
                v["n"].as_i64().expect("n"),
                v["mean"].as_f64().expect("mean"),
            )
        })
        .collect();
    assert_eq!(got, [(2, 2.0), (1, 5.0)]);
}

#[test]
fn rejected_lines_are_reported_and_the_rest_goes_on() {
    let p = plan(&format!("{}{HOP_QUERY}", source("0", "")));
    let input = [
        line("a", 0, 1.0),
        r#"{"patient_id":"a","observed_at":"#.to_owned(),
        r#"{"patient_id":"a","x":2}"#.to_owned(),
        r#"{"patient_id":"a","observed_at":5000,"x":"high"}"#.to_owned(),
        line("a", 10, 2.0),
    ]
    .join("\n");
    let r = run(&p, &[("readings", &input)], 8);
    let lines: Vec<u64> = r.rejected.iter().map(|(_, l, _)| *l).collect();
    assert_eq!(lines, [2, 3, 4]);
    assert_eq!(r.report.sources[0].rows, 2);
    assert_eq!(r.report.sources[0].rejected, 3);
}

/// Arrival order: each row delayed by up to `delay` seconds, so no row arrives after
/// one more than `delay` seconds newer than itself; never late.
fn shuffled(rows: &[(String, i64, f64)], jitter: &[u8], delay: i64) -> Vec<(String, i64, f64)> {
    let mut keyed: Vec<(i64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let j = i64::from(jitter[i % jitter.len()]) % (delay + 1);
            (r.1 + j, i)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, i)| rows[i].clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same input, split into random batch sizes and shuffled within the
    /// watermark delay, gives identical output.
    #[test]
    fn output_does_not_depend_on_batching_or_order_within_the_delay(
        batch in 1usize..50,
        jitter in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        // Pane-by-pane hop windows, collapsed hop windows of latest values, and
        // sessions (which close from an index by end time).
        let queries = [
            HOP_QUERY.to_owned(),
            "INSERT INTO out SELECT patient_id, window_end,
  last_value(x ORDER BY observed_at) AS latest FROM readings
GROUP BY patient_id, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE);"
                .to_owned(),
            "INSERT INTO out SELECT patient_id, window_start, window_end, count(*) AS n,
  sum(x) AS total, last_value(x ORDER BY observed_at) AS latest FROM readings
GROUP BY patient_id, session(observed_at, INTERVAL '20' SECOND);"
                .to_owned(),
        ];
        let rows = readings();
        let arrived = shuffled(&rows, &jitter, 20);
        for query in &queries {
            let p = plan(&format!("{}{query}", source("20", "")));
            let reference = run(&p, &[("readings", &text(&rows))], 100_000);
            let r = run(&p, &[("readings", &text(&arrived))], batch);
            prop_assert_eq!(r.report.jobs[0].rows_late, 0);
            prop_assert!(!reference.out("out").is_empty());
            prop_assert_eq!(r.out("out"), reference.out("out"));
        }
    }
}
