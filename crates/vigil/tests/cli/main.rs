//! The `vigil` binary as a user runs it.

mod demo;
mod docker;
mod evaluate;
mod kafka;
mod simulate;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn vigil(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn rows(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("output line is JSON"))
        .collect()
}

#[test]
fn scores_the_shipped_sample() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/vitals.jsonl");
    let out = vigil(&["score", sample], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = rows(&out);
    assert_eq!(rows.len(), 10);
    // p-002 deteriorates from medium to high; its last set scores 3+3+2+3+2+3+2.
    let p2: Vec<_> = rows.iter().filter(|r| r["patient_id"] == "p-002").collect();
    assert_eq!(p2[0]["news2_band"], "medium");
    assert_eq!(p2[2]["news2"], 18);
    assert_eq!(p2[2]["news2_band"], "high");
    assert_eq!(p2[2]["consciousness"], "C");
    // p-005 has no blood pressure or temperature: no aggregate, named as missing.
    let p5 = rows
        .iter()
        .find(|r| r["patient_id"] == "p-005")
        .expect("p-005");
    assert!(p5["news2"].is_null());
    assert_eq!(
        p5["news2_missing"],
        serde_json::json!(["systolic_bp", "temperature"])
    );
    // p-006's heart rate of 400 is invalid, not a score of 3.
    let p6 = rows
        .iter()
        .find(|r| r["patient_id"] == "p-006")
        .expect("p-006");
    assert!(p6["news2"].is_null());
    assert_eq!(p6["news2_invalid"], serde_json::json!(["heart_rate"]));
    assert!(p6["news2_subscores"]["heart_rate"].is_null());
}

#[test]
fn bad_lines_are_reported_by_number_and_skipped() {
    let input = concat!(
        r#"{"patient_id":"a","observed_at":"2026-11-24T08:00:00Z","resp_rate":30}"#,
        "\n",
        "not json\n",
        "\n",
        r#"{"patient_id":"b"}"#,
        "\n",
        r#"{"patient_id":"c","observed_at":"2026-11-24T08:00:00Z","heart_rate":"fast"}"#,
        "\n",
        r#"{"patient_id":"d","observed_at":0,"heart_rate":45}"#,
        "\n",
    );
    let out = vigil(&["score"], input);
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: expected ident at column 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 4: missing field `observed_at`"),
        "{stderr}"
    );
    assert!(stderr.contains("line 5: invalid type"), "{stderr}");
    assert!(
        stderr.contains("2 rows scored, 3 lines rejected"),
        "{stderr}"
    );
    let rows = rows(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["news2_partial"], 3);
    assert_eq!(rows[1]["patient_id"], "d");
    assert_eq!(rows[1]["news2_subscores"]["heart_rate"], 1);
}

#[test]
fn batches_do_not_change_results_and_files_work() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/vitals.jsonl");
    let whole = vigil(&["score", sample], "");
    let dir = std::env::temp_dir().join(format!("vigil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("out.jsonl");
    let path_str = path.to_str().expect("utf-8 path");
    let small = vigil(&["score", sample, "--batch-size", "3", "-o", path_str], "");
    assert_eq!(small.status.code(), Some(0));
    assert_eq!(std::fs::read(&path).expect("output file"), whole.stdout);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_input_file_fails_with_exit_1() {
    let out = vigil(&["score", "/nonexistent/vitals.jsonl"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}

#[test]
fn every_shipped_pipeline_checks() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("pipelines/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "sql") {
            let out = vigil(&["check", path.to_str().expect("utf-8 path")], "");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            // Each is stateful: windows over readings, or an alert policy.
            assert!(
                stdout.contains("window aggregate") || stdout.contains("alert policy "),
                "{stdout}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "pipelines/ holds the shipped pipelines");
}

#[test]
fn an_invalid_pipeline_names_its_line_and_exits_78() {
    let dir = std::env::temp_dir().join(format!("vigil-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.sql");
    std::fs::write(
        &path,
        "CREATE TABLE v (a TEXT) WITH (connector = 'file', path = 'x');\n\
         CREATE TABLE o WITH (connector = 'file', path = '-');\n\
         INSERT INTO o\nSELECT a FROM v\nORDER BY a;\n",
    )
    .expect("write");
    let out = vigil(&["check", path.to_str().expect("utf-8 path")], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("line 5: ORDER BY"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_reads_stdin_writes_the_sink_and_reports_rejections() {
    let pipeline = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/ward_summary.sql"
    );
    let input = concat!(
        r#"{"patient_id":"p-1","ward":"4B","observed_at":"2026-11-24T08:00:00Z","heart_rate":80,"spo2":97,"resp_rate":16}"#,
        "\n",
        "not json\n",
        r#"{"patient_id":"p-2","ward":"4B","observed_at":"2026-11-24T08:01:00Z","heart_rate":100,"spo2":95,"resp_rate":20}"#,
        "\n",
    );
    let out = vigil(
        &["run", pipeline, "--path", "vitals=-", "--batch-size", "1"],
        input,
    );
    assert_eq!(out.status.code(), Some(65), "a line was rejected");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("vitals line 2: rejected (malformed)"),
        "{stderr}"
    );
    assert!(stderr.contains("2 rows read, 1 lines rejected"), "{stderr}");
    let rows = rows(&out);
    // Windows of 1 h every 5 min containing 08:00 and 08:01: twelve of them.
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0]["window_end"], "2026-11-24T08:05:00Z");
    assert_eq!(rows[0]["patients"], 2);
    assert_eq!(rows[0]["heart_rate_mean"], 90.0);
}

#[test]
fn run_refuses_an_invalid_pipeline_with_78() {
    let out = vigil(&["run", "/dev/null/nope.sql"], "");
    assert_eq!(out.status.code(), Some(1), "unreadable file");
    let dir = std::env::temp_dir().join(format!("vigil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.sql");
    std::fs::write(&bad, "CREATE TABLE t (a TEXT) WITH (connector = 'file', path = 'x');\nINSERT INTO nowhere SELECT a FROM t ORDER BY a;\n")
        .expect("write");
    let out = vigil(&["run", bad.to_str().expect("utf-8")], "");
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}

/// vigil fixes glibc's mmap threshold itself (so a large state goes back to
/// the system outside the Docker image too), unless the environment sets it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn fixes_the_mmap_threshold_unless_the_environment_sets_it() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/vitals.jsonl");
    let threshold = |set: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
        command
            .args(["score", sample])
            .env("VIGIL_LOG", "vigil=debug")
            .env_remove("VIGIL_LOG_FORMAT")
            .env_remove("MALLOC_MMAP_THRESHOLD_");
        if let Some(value) = set {
            command.env("MALLOC_MMAP_THRESHOLD_", value);
        }
        let out = command.output().expect("run vigil");
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr
            .lines()
            .find(|l| l.contains("mmap threshold"))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no threshold line in {stderr}"))
    };
    assert!(threshold(None).contains("threshold=Fixed"));
    assert!(threshold(Some("262144")).contains("threshold=FromEnvironment"));
}
