//! `vigil simulate`: deterministic files with the ground truth beside them,
//! messages vigil reads, readable flag errors, and delivery to a Kafka topic.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use vigil_tests::Broker;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-cli-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

fn simulate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("vigil simulate")
}

#[test]
fn the_same_seed_writes_the_same_file_with_its_episodes_beside_it() {
    let (a, b) = (scratch("a.jsonl"), scratch("b.jsonl"));
    for path in [&a, &b] {
        let out = simulate(&[
            "--patients",
            "40",
            "--hours",
            "3",
            "--episodes",
            "0.5",
            "--seed",
            "9",
            "-o",
            path.to_str().expect("path"),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read = |p: &PathBuf| std::fs::read_to_string(p).expect("read");
    assert_eq!(read(&a), read(&b));
    let episodes = read(&scratch("a.episodes.jsonl"));
    assert!(episodes.lines().count() >= 10, "{episodes}");
    for line in episodes.lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("episode JSON");
        assert!(
            ["sepsis", "respiratory_failure", "haemorrhage"]
                .contains(&e["kind"].as_str().unwrap_or(""))
        );
    }
    let patients: HashSet<String> = read(&a)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("reading JSON");
            v["patient_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(patients.len(), 40);
    // vigil reads what it simulates: every line scores, none rejected.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["score", a.to_str().expect("path")])
        .output()
        .expect("vigil score");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        read(&a).lines().count()
    );
}

#[test]
fn bad_flags_are_readable_errors() {
    for (args, says) in [
        (vec!["--hours", "0"], "--hours must be above 0"),
        (vec!["--episodes", "1.5"], "--episodes is a share"),
        (vec!["--start", "yesterday"], "not an RFC 3339 time"),
        (vec!["--topic", "vitals"], "--brokers"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("simulate")
            .args(&args)
            .env_remove("VIGIL_BROKERS")
            .output()
            .expect("vigil simulate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn to_a_kafka_topic_keyed_by_patient_and_a_missing_topic_is_refused() {
    let broker = Broker::start();
    broker.create_topic("sim-vitals", 3);
    let out = simulate(&[
        "--patients",
        "12",
        "--hours",
        "0.25",
        "--shape",
        "narrow",
        "--clean",
        "--topic",
        "sim-vitals",
        "--brokers",
        broker.bootstrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let sent: usize = stderr
        .split(" as ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("message count in {stderr}"));
    let received = broker.consume("sim-vitals", Duration::from_secs(60), |r| r.len() >= sent);
    assert_eq!(received.len(), sent);
    for m in &received {
        let v: serde_json::Value = serde_json::from_str(&m.payload).expect("JSON");
        assert_eq!(m.key.as_deref(), v["patient_id"].as_str());
        assert!(v["code"].is_string());
    }
    let out = simulate(&["--topic", "no-such-topic", "--brokers", broker.bootstrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("topic no-such-topic does not exist"),
        "{stderr}"
    );
}
