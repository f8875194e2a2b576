//! docker/ is kept correct without a Docker engine: the compose file passes
//! `docker-compose config` (Debian's, installed by scripts/compose.sh), the
//! Prometheus configuration passes `promtool check config`, every metric the
//! Grafana dashboard queries is one vigil exports, and the containers' `vigil
//! run` command plans: the shipped NEWS2 pipeline with its tables made topics.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_tests::tool;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn run(program: PathBuf, args: &[&str]) -> String {
    let out = Command::new(&program)
        .args(args)
        .current_dir(repo(""))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?}: {text}",
        program.display()
    );
    text
}

#[test]
fn the_compose_file_is_valid_and_runs_everything_the_stack_needs() {
    let compose = tool("VIGIL_COMPOSE_DIR", "scripts/compose.sh").join("docker-compose");
    let rendered = run(compose, &["-f", "docker/compose.yaml", "config"]);
    for service in [
        "kafka:",
        "topics:",
        "simulator:",
        "vigil:",
        "prometheus:",
        "grafana:",
    ] {
        assert!(
            rendered.contains(&format!("\n  {service}\n")),
            "{service} {rendered}"
        );
    }
    assert!(
        rendered.contains("replicas: 2"),
        "two vigil replicas: {rendered}"
    );
    assert!(
        rendered.contains("KAFKA_PROCESS_ROLES: broker,controller"),
        "KRaft"
    );
}

#[test]
fn the_prometheus_configuration_is_valid() {
    let promtool = tool("VIGIL_PROMETHEUS_DIR", "scripts/prometheus.sh").join("promtool");
    let report = run(
        promtool,
        &["check", "config", "docker/prometheus/prometheus.yml"],
    );
    assert!(report.contains("SUCCESS"), "{report}");
}

/// Every metric name vigil's `/metrics` can show.
fn exported() -> BTreeSet<String> {
    let registry = prometheus::Registry::new();
    let m = vigil_kafka::RunMetrics::new(&registry, "p").expect("metrics");
    // Vectors appear once they have a series.
    for vec in [&m.consumed, &m.dead_letters, &m.late_rows, &m.outputs] {
        vec.with_label_values(&["t"]).inc();
    }
    m.decode_errors.with_label_values(&["t", "malformed"]).inc();
    m.alerts.with_label_values(&["r", "raised", "high"]).inc();
    m.watermark_lag.with_label_values(&["t"]).set(0.0);
    m.consumer_lag.with_label_values(&["t", "0"]).set(0);
    m.state_groups.with_label_values(&["j"]).set(0);
    m.state_bytes.with_label_values(&["j"]).set(0);
    let mut names: BTreeSet<String> = registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    names.insert("vigil_build_info".to_owned());
    names
}

#[test]
fn the_dashboard_queries_only_metrics_vigil_exports() {
    let text =
        std::fs::read_to_string(repo("docker/grafana/dashboards/vigil.json")).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let exported = exported();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("vigil_").map(|_| word) {
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(name);
                    assert!(exported.contains(base), "{} queries {name}", panel["title"]);
                    queried.insert(base.to_owned());
                }
            }
        }
    }
    for needed in [
        "vigil_records_consumed_total",
        "vigil_consumer_lag_messages",
        "vigil_end_to_end_latency_seconds",
        "vigil_dead_letters_total",
        "vigil_alerts_total",
    ] {
        assert!(queried.contains(needed), "the dashboard shows {needed}");
    }
}

#[test]
fn the_containers_run_the_shipped_news2_pipelines_over_kafka() {
    let compose = std::fs::read_to_string(repo("docker/compose.yaml")).expect("compose file");
    // Each `vigil run` service's command, a YAML flow sequence of quoted strings
    // (valid JSON): the shipped pipeline as the Dockerfile copies it, planned
    // here with the same table bindings.
    let mut plans = String::new();
    for line in compose
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("command: [\"run\""))
    {
        let command: Vec<String> =
            serde_json::from_str(line.trim_start_matches("command:").trim()).expect("a JSON array");
        let file = command[1]
            .strip_prefix("/usr/share/vigil/pipelines/")
            .unwrap_or_else(|| panic!("{}: not a shipped pipeline", command[1]));
        let mut args = vec![
            "check".to_owned(),
            repo(&format!("pipelines/{file}")).display().to_string(),
        ];
        let mut rest = command[2..].iter();
        while let Some(flag) = rest.next() {
            let value = rest.next().expect("a flag's value");
            if flag == "--topic" || flag == "--with" {
                args.extend([flag.clone(), value.clone()]);
            }
        }
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(&args)
            .output()
            .expect("vigil check");
        let plan = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{plan}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        plans.push_str(&plan);
    }
    for wanted in [
        "source vitals [arrival_time=received_at, connector=kafka, format=json, topic=vitals]",
        "sink news2_scores [connector=kafka, format=json, key=patient_id, topic=news2-scores]",
        "source news2_scores [connector=kafka, format=json, topic=news2-scores]",
        "key=patient_id, topic=news2-alerts]",
    ] {
        assert!(plans.contains(wanted), "{wanted} in\n{plans}");
    }
}

/// The runtime image fixes glibc's mmap threshold (what keeps 1M patients in
/// 1 GiB; README, Performance), in the stage that runs vigil, not the build.
#[test]
fn the_runtime_image_fixes_the_mmap_threshold() {
    let dockerfile = std::fs::read_to_string(repo("docker/Dockerfile")).expect("Dockerfile");
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, last)| last)
        .expect("a runtime stage");
    assert!(
        runtime
            .lines()
            .any(|l| l.trim() == "ENV MALLOC_MMAP_THRESHOLD_=131072"),
        "{runtime}"
    );
}
