//! Golden tests: every pipeline in pipelines/ runs over the recorded input in
//! pipelines/testdata/ (one line per batch, as a stream delivers it) and must write
//! exactly its recorded output, late rows and rejections.
//!
//! After an intended change, re-record with `VIGIL_BLESS=1 cargo nextest run -p
//! vigil-engine golden` and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::harness::{plan, run};

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
    // then that pipeline's recorded output.
    let mut written = BTreeMap::new();
    for file in &files {
        let stem = file
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let p = plan(&std::fs::read_to_string(file).expect("read pipeline"));
        for job in &p.jobs {
            written.insert(
                job.sink.name.clone(),
                testdata.join(expected_name(&stem, &p, job)),
            );
        }
    }
    let mut failures = Vec::new();
    for file in files {
        let stem = file
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let p = plan(&std::fs::read_to_string(&file).expect("read pipeline"));
        let mut inputs = BTreeMap::new();
        for job in &p.jobs {
            let recorded = testdata.join(format!("{}.jsonl", job.source.name));
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
    let p = plan(
        &std::fs::read_to_string(pipelines_dir().join("news2_per_patient.sql"))
            .expect("read pipeline"),
    );
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
