//! The Kafka bench's scale phase: a large cohort (`VIGIL_BENCH_SCALE_PATIENTS`,
//! default 1,000,000; 0 skips the phase) through the 1-hour hop NEWS2 pipeline
//! (`crates/vigil-engine/benches/news2_hour.sql`), read from a topic holding
//! `VIGIL_BENCH_SCALE_ROUNDS` readings per patient (default 4), a minute apart.
//! The pipeline keeps each patient's latest values, so its state is all there
//! after the first round; later rounds close panes (the peak: two live panes
//! beside the merged state, and a million scores out per minute of event time)
//! and the commits checkpoint the whole state.
//!
//! vigil runs in a child process (this executable again, told so by
//! [`CHILD`]), so the peak RSS it reports (`VmHWM`) is vigil's own, with its
//! Kafka clients, and not the filler's or the other phases'.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_engine::plan::{Binding, Pipeline};
use vigil_kafka::{KafkaConfig, KafkaRun, RunMetrics};
use vigil_tests::Broker;

use crate::common::{self, PARTITIONS, gauge_sum};

/// Set (to the bootstrap servers) in the child process that runs vigil.
pub const CHILD: &str = "VIGIL_BENCH_SCALE_CHILD";
/// The topics of the phase.
const INPUT: &str = "bench-scale-vitals";
const OUTPUT: &str = "bench-scale-news2";
const BASE_MS: i64 = 1_795_507_200_000;

/// The pipeline over the phase's topics.
fn pipeline() -> Pipeline {
    let sql = include_str!("../../../crates/vigil-engine/benches/news2_hour.sql");
    let bindings = [
        Binding::topic("vitals", INPUT),
        Binding::topic("scores", OUTPUT),
        Binding::option("scores", "key", "patient_id"),
    ];
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan_with(sql, &bindings))
        .expect("plan")
}

/// Reading `n`: patient `n % patients` in round `n / patients`, rounds a
/// minute apart, the patients of a round spread over its minute in order (so
/// each partition's readings come in time order, none late).
fn reading(n: usize, patients: usize) -> (i32, String, String) {
    let (patient, round) = ((n % patients) as i64, (n / patients) as i64);
    common::reading(
        n,
        patients,
        BASE_MS + round * 60_000 + patient * 60_000 / patients as i64,
    )
}

/// Runs the phase (unless `patients` is 0): fills the topic, runs vigil in a
/// child process and returns what it measured, as JSON.
pub fn run(broker: &Broker, patients: usize, rounds: usize) -> Option<serde_json::Value> {
    if patients == 0 {
        return None;
    }
    for (topic, partitions) in [
        (INPUT.to_owned(), PARTITIONS),
        (format!("{INPUT}.dead-letter"), 1),
        (format!("{INPUT}.progress"), PARTITIONS),
        (OUTPUT.to_owned(), PARTITIONS),
    ] {
        broker.create_topic(&topic, partitions);
    }
    let readings = patients * rounds;
    let started = Instant::now();
    let bytes = common::fill(broker.bootstrap(), INPUT, readings, |n| {
        reading(n, patients)
    });
    println!(
        "scale: filled {readings} readings of {patients} patients, {:.1} MB, in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let output = std::process::Command::new(std::env::current_exe().expect("this executable"))
        .env(CHILD, broker.bootstrap())
        .env("VIGIL_BENCH_SCALE_PATIENTS", patients.to_string())
        .env("VIGIL_BENCH_SCALE_ROUNDS", rounds.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the scale phase's child process");
    assert!(output.status.success(), "the scale phase failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut report: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the child's report");
    report["bytes"] = json!(bytes);
    Some(report)
}

/// `VmRSS` and `VmHWM` of this process, in bytes.
fn memory_bytes() -> (u64, u64) {
    let (rss, hwm) = common::memory_mib();
    ((rss * 1048576.0) as u64, (hwm * 1048576.0) as u64)
}

/// The child: runs the pipeline over the filled topic until every reading is
/// taken in, then stops (the last commit, a full checkpoint, included) and
/// prints its figures as one JSON line.
pub fn child(bootstrap: &str, patients: usize, rounds: usize) {
    let readings = (patients * rounds) as u64;
    let pipeline = pipeline();
    let registry = prometheus::Registry::new();
    let config = KafkaConfig::new(bootstrap, "bench-scale");
    let mut run = KafkaRun::new(&pipeline, config)
        .expect("run")
        .with_metrics(RunMetrics::new(&registry, "bench").expect("metrics"));
    let live = run.live();
    let stop = AtomicBool::new(false);
    let baseline = memory_bytes().0;
    let (stats, seconds, until_stop, state_bytes) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| run.run(&stop));
        let (mut first, mut state_bytes) = (None, 0.0_f64);
        while live.consumed.load(Ordering::Relaxed) < readings {
            if live.consumed.load(Ordering::Relaxed) > 0 {
                first.get_or_insert_with(Instant::now);
            }
            state_bytes = state_bytes.max(gauge_sum(&registry, "vigil_state_bytes"));
            std::thread::sleep(Duration::from_millis(5));
        }
        let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
        let stopping = Instant::now();
        stop.store(true, Ordering::Relaxed);
        let stats = worker.join().expect("run thread").expect("run");
        (
            stats,
            seconds,
            stopping.elapsed().as_secs_f64(),
            state_bytes,
        )
    });
    assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
    let hwm = memory_bytes().1;
    let mib = |b: f64| b / 1048576.0;
    let report = json!({
        "patients": patients,
        "readings": readings,
        "seconds": seconds,
        "msgs_per_s": readings as f64 / seconds,
        "stop_seconds": until_stop,
        "scores": stats.rows_out,
        "state_mib": mib(state_bytes),
        "state_bytes_per_patient": state_bytes / patients as f64,
        "rss_baseline_mib": mib(baseline as f64),
        "peak_rss_mib": mib(hwm as f64),
        "checkpoints": stats.checkpoints,
        "checkpoint_mib": mib(stats.checkpoint_bytes as f64),
        "commit_rounds": stats.commit_rounds,
        "commit_ms_mean": stats.commit_time.as_secs_f64() * 1e3 / stats.commit_rounds.max(1) as f64,
    });
    println!("{report}");
}
