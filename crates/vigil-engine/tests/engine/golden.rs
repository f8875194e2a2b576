//! Golden tests: every pipeline in pipelines/ runs over the recorded input in
//! pipelines/testdata/ (one line per batch, as a stream delivers it) and must write
//! exactly its recorded output, late rows and rejections.
//!
//! After an intended change, re-record with `VIGIL_BLESS=1 cargo nextest run -p
//! vigil-engine golden` and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigil_engine::plan::Pipeline;

use crate::harness::{plan_file, run};

fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines")
}

fn check(expected: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("VIGIL_BLESS").is_some() {
        std::fs::write(expected, actual).expect("write golden file");
        return;
    }
    match std::fs::read_to_string(expected) {
        Ok(want) if want == actual => {}
        Ok(want) => {
            let first = want
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| want.lines().count().min(actual.lines().count()));
            failures.push(format!(
                "{}: differs from line {} ({} lines expected, {} written)\n  expected: {}\n  actual:   {}",
                expected.display(),
                first + 1,
                want.lines().count(),
                actual.lines().count(),
                want.lines().nth(first).unwrap_or("<end>"),
                actual.lines().nth(first).unwrap_or("<end>"),
            ));
        }
        Err(_) => failures.push(format!(
            "{} is missing: record it with VIGIL_BLESS=1",
            expected.display()
        )),
    }
}

/// The recorded output of `job` of pipeline `stem`: `<stem>.expected.jsonl`, or
/// with the sink's name when the pipeline has several jobs.
fn expected_name(
    stem: &str,
    p: &vigil_engine::plan::Pipeline,
    job: &vigil_engine::plan::Job,
) -> String {
    if p.jobs.len() == 1 {
        format!("{stem}.expected.jsonl")
    } else {
        format!("{stem}.{}.expected.jsonl", job.sink.name)
    }
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn every_shipped_pipeline_matches_its_recorded_output() {
    let dir = pipelines_dir();
    let testdata = dir.join("testdata");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("pipelines/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "pipelines/ holds the shipped pipelines");
    // A pipeline may read what another writes (a second stage): its input is
    // then that pipeline's recorded output, so it runs after that pipeline (and
    // one blessing run records both stages).
    let mut pending: Vec<(String, Pipeline)> = files
        .iter()
        .map(|file| {
            let stem = file
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            (stem, plan_file(file))
        })
        .collect();
    let mut written = BTreeMap::new();
    for (stem, p) in &pending {
        for job in &p.jobs {
            written.insert(
                job.sink.name.clone(),
                testdata.join(expected_name(stem, p, job)),
            );
        }
    }
    let recorded = |source: &str| testdata.join(format!("{source}.jsonl"));
    let mut failures = Vec::new();
    while !pending.is_empty() {
        let writes = |p: &Pipeline, table: &str| p.jobs.iter().any(|j| j.sink.name == table);
        let ready = pending
            .iter()
            .position(|(_, p)| {
                p.jobs.iter().all(|j| {
                    recorded(&j.source.name).exists()
                        || !pending.iter().any(|(_, q)| writes(q, &j.source.name))
                })
            })
            .expect("pipelines/ holds no cycle of stages");
        let (stem, p) = pending.remove(ready);
        let mut inputs = BTreeMap::new();
        for job in &p.jobs {
            let recorded = recorded(&job.source.name);
            let input = match written.get(&job.source.name) {
                Some(upstream) if !recorded.exists() => upstream.clone(),
                _ => recorded,
            };
            let text = std::fs::read_to_string(&input)
                .unwrap_or_else(|_| panic!("{stem}: no recorded input {}", input.display()));
            inputs.insert(job.source.name.clone(), text);
        }
        let inputs: Vec<(&str, &str)> = inputs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = run(&p, &inputs, 1);
        for job in &p.jobs {
            let name = expected_name(&stem, &p, job);
            check(
                &testdata.join(name),
                &joined(r.out(&job.sink.name)),
                &mut failures,
            );
        }
        check(
            &testdata.join(format!("{stem}.late.jsonl")),
            &joined(&r.late),
            &mut failures,
        );
        let rejected: Vec<String> = r
            .rejected
            .iter()
            .map(|(table, line, reason)| format!("{table} line {line}: {reason}"))
            .collect();
        check(
            &testdata.join(format!("{stem}.rejected.txt")),
            &joined(&rejected),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The shipped NEWS2 pipeline scores each parameter only while it is current:
/// heart rate, SpO2, respiration and oxygen for an hour, blood pressure for two,
/// temperature and consciousness (nursing rounds) for five. Each edge is tested
/// on both sides: observed exactly the validity before the score counts, one
/// millisecond more does not (the score is then NULL, never normal).
#[test]
fn the_news2_pipeline_scores_each_parameter_only_while_it_is_current() {
    let p = plan_file(&pipelines_dir().join("news2_per_patient.sql"));
    // Scored at 13:00: the window [08:00, 13:00) holds every row below.
    let at = |hh_mm_ss_ms: &str| format!("2026-11-24T{hh_mm_ss_ms}Z");
    let row = |patient: &str, time: &str, fields: &str| {
        format!(
            r#"{{"patient_id":"{patient}","ward":"w1","observed_at":"{}",{fields}}}"#,
            at(time)
        )
    };
    let monitor = r#""heart_rate":70,"spo2":97,"resp_rate":16,"on_oxygen":false"#;
    let cuff = r#""systolic_bp":120"#;
    let round = r#""temperature":37.0,"consciousness":"A""#;
    let mut lines = vec![
        // "edge": every parameter observed exactly its validity before 13:00.
        row("edge", "08:00:00.000", round),
        row("edge", "11:00:00.000", cuff),
        row("edge", "12:00:00.000", monitor),
        // One "stale" patient per parameter group: one millisecond too old.
        row("stale-round", "07:59:59.999", round),
        row("stale-round", "11:00:00.000", cuff),
        row("stale-round", "12:00:00.000", monitor),
        row("stale-cuff", "08:00:00.000", round),
        row("stale-cuff", "10:59:59.999", cuff),
        row("stale-cuff", "12:00:00.000", monitor),
        row("stale-monitor", "08:00:00.000", round),
        row("stale-monitor", "11:00:00.000", cuff),
        row("stale-monitor", "11:59:59.999", monitor),
    ];
    lines.sort_by_key(|l| l[l.find("observed_at").unwrap_or(0)..].to_owned());
    // Then a later reading of another patient moves the watermark past 13:00.
    lines.push(row("other", "13:01:00.000", monitor));
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = run(&p, &[("vitals", input.as_str())], 1);
    let score = |patient: &str| -> serde_json::Value {
        r.out("news2_scores")
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .find(|v| v["patient_id"] == patient && v["scored_at"] == "2026-11-24T13:00:00Z")
            .unwrap_or_else(|| panic!("no 13:00 score for {patient}"))
    };
    let edge = score("edge");
    assert_eq!(edge["news2"], 0, "every parameter current: {edge}");
    assert_eq!(edge["news2_band"], "low");
    assert_eq!(edge["ward"], "w1");
    for stale in ["stale-round", "stale-cuff", "stale-monitor"] {
        let s = score(stale);
        assert!(
            s["news2"].is_null(),
            "{stale}: a parameter out of date is missing: {s}"
        );
        assert!(s["news2_band"].is_null(), "{stale}: {s}");
    }
}

/// Every NEWS2 alert says what a ward team and a deduplicating consumer need:
/// its id, event, pipeline, rule, severity, the patient and ward, the score with
/// each parameter's points (summing to it), the readings with their times, and
/// when the episode was first and last seen.
#[test]
fn a_news2_alert_carries_the_score_its_sub_scores_readings_and_pipeline() {
    let text =
        std::fs::read_to_string(pipelines_dir().join("testdata/news2_alerts.expected.jsonl"))
            .expect("recorded alerts");
    let alerts: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(!alerts.is_empty(), "the recorded run raises alerts");
    let sub_scores = [
        "resp_rate_score",
        "spo2_score",
        "air_or_oxygen_score",
        "systolic_bp_score",
        "heart_rate_score",
        "consciousness_score",
        "temperature_score",
    ];
    for a in &alerts {
        for field in ["alert_id", "event", "severity", "patient_id", "ward"] {
            assert!(a[field].is_string(), "{field} in {a}");
        }
        assert_eq!(a["pipeline"], "news2_alerts", "{a}");
        assert_eq!(a["rule"], "news2", "{a}");
        assert!(a["first_seen"].as_str() <= a["last_seen"].as_str(), "{a}");
        let points: u64 = sub_scores
            .iter()
            .map(|s| a[s].as_u64().unwrap_or_else(|| panic!("{s} in {a}")))
            .sum();
        assert_eq!(
            Some(points),
            a["news2"].as_u64(),
            "sub-scores sum to the score: {a}"
        );
        for (reading, at) in [
            ("resp_rate", "resp_rate_at"),
            ("spo2", "spo2_at"),
            ("systolic_bp", "systolic_bp_at"),
            ("heart_rate", "heart_rate_at"),
            ("temperature", "round_at"),
        ] {
            assert!(
                a[reading].is_number() && a[at].is_string(),
                "{reading} in {a}"
            );
        }
    }
}
