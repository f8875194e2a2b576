//! `vigil demo` as a new user meets it: nothing else running, alerts within
//! seconds, metrics served, a clean stop on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_tests::prometheus::{http_get, promtool_check_metrics};

/// Waits (at most `timeout`) until `lines` holds one that `wanted` accepts.
fn wait_for(lines: &Mutex<Vec<String>>, timeout: Duration, wanted: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if lines.lock().expect("lines").iter().any(|l| wanted(l)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Collects a pipe's lines on a thread.
fn collect(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

#[test]
fn the_demo_raises_alerts_serves_metrics_and_stops_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "demo",
            "--plain",
            "--patients",
            "80",
            "--episodes",
            "0.5",
            "--warmup",
            "2",
        ])
        .args(["--speed", "300", "--http", "127.0.0.1:0", "--for", "150s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vigil demo");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));
    let shown = || stdout.lock().expect("lines").join("\n");
    let logged = || stderr.lock().expect("lines").join("\n");

    assert!(
        wait_for(&stdout, Duration::from_secs(120), |l| l.contains(" ALERT ")),
        "an alert within two minutes; stdout:\n{}\nstderr:\n{}",
        shown(),
        logged()
    );
    // The alert names the band, the ward, the patient and the score.
    let alert = shown()
        .lines()
        .find(|l| l.contains(" ALERT "))
        .map(str::to_owned)
        .expect("alert line");
    assert!(
        ["low-medium", "medium", "high"]
            .iter()
            .any(|band| alert.contains(band))
            && alert.contains("NEWS2")
            && alert.contains(" w0")
            && alert.contains(" p0"),
        "{alert}"
    );

    let log = logged();
    let addr = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in {log}"))
        .to_owned();
    let (status, metrics) = http_get(&addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    for (pipeline, topic) in [
        ("news2_per_patient", "vitals"),
        ("ward_summary", "vitals"),
        ("news2_alerts", "news2-scores"),
    ] {
        assert!(
            metrics.contains(&format!(
                "vigil_records_consumed_total{{pipeline=\"{pipeline}\",topic=\"{topic}\"}}"
            )),
            "{metrics}"
        );
    }
    // The alert shown was counted (rule and severity as labels, never a patient).
    assert!(
        metrics.contains("vigil_alerts_total{event=\"")
            && metrics.contains("pipeline=\"news2_alerts\",rule=\"news2\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("p0000"),
        "no patient identifier in metrics"
    );
    let report = promtool_check_metrics(&metrics).expect("promtool check metrics");
    assert!(report.trim().is_empty(), "promtool: {report}");
    assert_eq!(http_get(&addr, "/healthz").expect("GET /healthz").0, 200);

    // Ctrl-C: a clean stop with a summary.
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let status = child.wait().expect("wait");
    assert!(
        wait_for(&stdout, Duration::from_secs(10), |l| l
            .starts_with("vigil demo: stopped.")),
        "a summary at the end:\n{}",
        shown()
    );
    assert_eq!(status.code(), Some(0), "stderr:\n{}", logged());
    assert!(logged().contains("stopping (interrupt)"), "{}", logged());
    let summary = shown()
        .lines()
        .find(|l| l.starts_with("vigil demo: stopped."))
        .map(str::to_owned)
        .expect("summary");
    assert!(!summary.contains(" 0 scores"), "{summary}");
}

#[test]
fn demo_flag_errors_are_readable_and_exit_2() {
    for (args, needle) in [
        (&["demo", "--speed", "0"][..], "--speed"),
        (&["demo", "--warmup", "30", "--hours", "24"][..], "--warmup"),
        (&["demo", "--for", "soon"][..], "duration"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .args(["--http", "off"])
            .output()
            .expect("run vigil demo");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn the_demo_runs_on_a_real_kafka_and_creates_its_topics() {
    let broker = vigil_tests::Broker::start();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--plain", "--patients", "40", "--warmup", "1"])
        .args(["--speed", "300", "--http", "off", "--for", "25s"])
        .args(["--brokers", broker.bootstrap()])
        // tansu completes a join after about half the rebalance timeout.
        .args(["--kafka", "session.timeout.ms=6000"])
        .args(["--kafka", "heartbeat.interval.ms=1000"])
        .args(["--kafka", "max.poll.interval.ms=7000"])
        .output()
        .expect("run vigil demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Kafka at 127.0.0.1:"), "{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("vigil demo: stopped."))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    assert!(
        !summary.contains(" 0 scores"),
        "scores came back: {summary}"
    );
    // The topics it made are there, scores in them.
    let scores = broker.consume("vigil-demo.news2-scores", Duration::from_secs(20), |r| {
        !r.is_empty()
    });
    assert!(!scores.is_empty(), "scores in vigil-demo.news2-scores");
}
