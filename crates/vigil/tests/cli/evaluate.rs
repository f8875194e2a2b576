//! `vigil evaluate`: the shipped NEWS2 alert pipelines scored against a simulated
//! cohort's ground truth, a user's own alert pipeline, and the refusals.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-cli-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

fn evaluate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("evaluate")
        .args(args)
        .output()
        .expect("vigil evaluate")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A small cohort where half the patients deteriorate, faults on.
const SMALL: [&str; 8] = [
    "--patients",
    "60",
    "--hours",
    "10",
    "--episodes",
    "0.5",
    "--seed",
    "11",
];

#[test]
fn the_shipped_pipelines_catch_the_deteriorating_patients_early_and_rarely_alarm_otherwise() {
    let events = scratch("events.jsonl");
    let mut args = SMALL.to_vec();
    args.extend([
        "--json",
        "--check",
        "--events",
        events.to_str().expect("path"),
    ]);
    let out = evaluate(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");

    assert!(report["counts"]["readings"].as_u64().unwrap_or(0) > 100_000);
    assert_eq!(report["counts"]["rejected"], 0);
    let judged = report["episodes_judged"].as_u64().expect("judged");
    assert!(judged >= 5, "too few episodes to judge: {report}");
    // The aims of issue 6, which --check enforces (exit 0 above).
    assert!(report["sensitivity"].as_f64().expect("sensitivity") >= 0.95);
    assert!(report["median_lead_minutes"].as_f64().expect("lead") >= 30.0);
    assert!(
        report["burden"]["per_patient_day"]
            .as_f64()
            .expect("burden")
            <= 1.0
    );
    assert_eq!(report["aims"]["sensitivity"]["met"], true);

    // Every episode is listed; a detected one has its first alert between onset
    // and event, and its lead is the difference.
    let episodes = report["episodes"].as_array().expect("episodes");
    assert!(episodes.len() as u64 >= judged);
    for e in episodes.iter().filter(|e| !e["first_alert_at"].is_null()) {
        let (onset, event, first) = (
            e["onset_at"].as_str().expect("onset"),
            e["event_at"].as_str().expect("event"),
            e["first_alert_at"].as_str().expect("first"),
        );
        assert!(onset <= first && first < event, "{e}");
        assert!(e["lead_minutes"].as_f64().expect("lead") > 0.0);
    }

    // The events file holds the alert sink's rows; their count is reported.
    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .expect("events file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("event is JSON"))
        .collect();
    assert_eq!(lines.len() as u64, report["counts"]["alert_events"]);
    assert!(lines.iter().all(|l| l["rule"] == "news2"));
    assert!(lines.iter().any(|l| l["event"] == "raised"));

    // The table for people says the same.
    let mut args = SMALL.to_vec();
    args.push("--clean");
    let out = evaluate(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no faults"), "{text}");
    assert!(text.contains("sensitivity"), "{text}");
    assert!(text.contains("per patient-day"), "{text}");
}

#[test]
fn an_alert_pipeline_that_pages_on_every_minute_misses_the_burden_aim() {
    // The shipped policy, loosened: every band alerts at once, even low ones,
    // and reminds every minute.
    let shipped = include_str!("../../../../pipelines/news2_alerts.sql");
    let start = shipped.find("CREATE TABLE news2_alerts").expect("sink");
    let loose = format!(
        "{}CREATE TABLE news2_alerts WITH (
  connector = 'file', path = '-', format = 'json',
  alert_key = 'patient_id', alert_severity = 'news2_band', alert_time = 'scored_at',
  alert_levels = 'low,low-medium,medium,high', alert_immediate = 'low',
  alert_cooldown = '1 minute'
);
INSERT INTO news2_alerts SELECT * FROM news2_scores;
",
        &shipped[..start]
    );
    let path = scratch("loose.sql");
    std::fs::write(&path, loose).expect("write pipeline");
    let mut args = SMALL.to_vec();
    args.extend([
        "--alerts",
        path.to_str().expect("path"),
        "--json",
        "--check",
    ]);
    let out = evaluate(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["aims"]["per_patient_day"]["met"], false);
    assert!(
        report["burden"]["per_patient_day"]
            .as_f64()
            .expect("burden")
            > 100.0
    );
    assert_eq!(report["pipelines"]["alerts"], path.to_str().expect("path"));
}

#[test]
fn pipelines_that_do_not_fit_and_bad_flags_are_refused() {
    // Scores written straight out, with no alert policy.
    let path = scratch("plain.sql");
    std::fs::write(
        &path,
        "CREATE TABLE news2_scores (patient_id TEXT NOT NULL, news2_band TEXT, scored_at TIMESTAMP NOT NULL)
           WITH (connector = 'file', path = '-', format = 'json');
         CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');
         INSERT INTO out SELECT * FROM news2_scores;",
    )
    .expect("write pipeline");
    let out = evaluate(&["--alerts", path.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no sink with an alert policy"),
        "{}",
        stderr(&out)
    );

    let out = evaluate(&["--episodes", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--episodes"), "{}", stderr(&out));

    let out = evaluate(&["--scores", "/nonexistent/scores.sql"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/scores.sql"),
        "{}",
        stderr(&out)
    );
}
