//! Partitions catching up on a backlog are held to the slowest in event time
//! (source option `max_drift`): a partition hours ahead is paused until the
//! others come within half the drift, and nothing is lost on the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vigil_engine::plan::Pipeline;
use vigil_tests::Broker;
use vigil_tests::workload::{BASE_MS, Message, produce, results, topics};

use crate::pipeline::{config, sample, spawn_reporting};

/// Readings of partition 0's patient over these seconds, every 10 s.
const SPAN_S: i64 = 7_200;

fn pipeline(input: &str, output: &str, max_drift: &str) -> Pipeline {
    let sql = format!(
        "CREATE TABLE vitals (
  patient_id TEXT NOT NULL, observed_at TIMESTAMP NOT NULL, heart_rate DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '5' SECOND
) WITH (connector = 'kafka', topic = '{input}', format = 'json',
        idle_timeout = '1 hour', max_drift = '{max_drift}');
CREATE TABLE per_minute WITH (connector = 'kafka', topic = '{output}', format = 'json', key = 'patient_id');
INSERT INTO per_minute
SELECT patient_id, window_end, count(*) AS n, max(heart_rate) AS max_hr
FROM vitals GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);"
    );
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan(&sql))
        .expect("plan")
}

/// Patient `p<partition>`'s readings from `from_s` up to `to_s` (exclusive).
fn readings(partition: i32, from_s: i64, to_s: i64) -> Vec<Message> {
    (from_s..to_s)
        .step_by(10)
        .map(|s| {
            (
                partition,
                format!("p{partition}"),
                format!(
                    r#"{{"patient_id":"p{partition}","observed_at":{},"heart_rate":{}}}"#,
                    BASE_MS + s * 1000,
                    60 + s % 7
                ),
            )
        })
        .collect()
}

/// Partition 0 gets an hour of readings, partitions 1 and 2 their first
/// reading only (they are behind, not idle: the idle timeout is an hour).
/// With a drift of 10 minutes, partition 0 is held back once it runs ahead,
/// and a second hour of its readings, produced then, is not taken in (what
/// was fetched before the hold is). Once partitions 1 and 2 get their two
/// hours too, every reading is taken in and every closed window emitted once.
/// With the drift off, partition 0's second hour is taken in at once.
#[test]
fn a_partition_hours_ahead_waits_for_the_slowest_and_loses_nothing() {
    for drift in ["10 minutes", "off"] {
        catches_up_together(drift);
    }
}

fn catches_up_together(max_drift: &str) {
    let broker = Broker::start();
    let name = if max_drift == "off" {
        "drift-off"
    } else {
        "drift"
    };
    let (input, output) = topics(&broker, name);
    let hour = readings(0, 0, SPAN_S / 2);
    produce(&broker, &input, &hour);
    produce(
        &broker,
        &input,
        &[readings(1, 0, 10), readings(2, 0, 10)].concat(),
    );
    let p = Arc::new(pipeline(&input, &output, max_drift));
    let mut config = config(&broker, name);
    // Small steps, so that partition 0 is seen ahead step by step.
    config.batch_messages = 20;
    let registry = prometheus::Registry::new();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn_reporting(Arc::clone(&p), config, Arc::clone(&stop), &registry);
    let consumed = || sample(&registry, "vigil_records_consumed_total", &[]) as usize;
    let held = || sample(&registry, "vigil_partitions_held_back", &[]);
    let wait_for = |done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let first = hour.len() + 2;
    if max_drift == "off" {
        wait_for(&|| consumed() >= first);
        assert_eq!(consumed(), first);
    } else {
        wait_for(&|| held() >= 1.0);
        assert_eq!(held(), 1.0, "partition 0 held back");
    }
    produce(&broker, &input, &readings(0, SPAN_S / 2, SPAN_S));
    let all_of_0 = first + hour.len();
    if max_drift == "off" {
        wait_for(&|| consumed() >= all_of_0);
        assert_eq!(
            consumed(),
            all_of_0,
            "without a drift, partition 0 is read on"
        );
    } else {
        // Nothing fetched after the hold is taken in while it lasts.
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            consumed() <= first,
            "partition 0's second hour waits: {} taken in, {first} before it",
            consumed()
        );
        assert_eq!(held(), 1.0, "still held back");
    }
    // Partitions 1 and 2 catch up: partition 0 goes on with them.
    produce(
        &broker,
        &input,
        &[readings(1, 10, SPAN_S), readings(2, 10, SPAN_S)].concat(),
    );
    // Every partition's watermark ends at 7,190 s - 5 s: 119 windows each
    // closed (ends 60 s to 7,140 s; the one ending at 7,200 s is still open).
    let windows = 3 * 119;
    let received = broker.consume(&output, Duration::from_secs(90), |r| r.len() >= windows);
    let total = 3 * 2 * hour.len();
    wait_for(&|| consumed() >= total);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().expect("run thread");
    assert_eq!(stats.consumed, total as u64, "{stats:?}");
    assert_eq!(stats.late + stats.dead_lettered, 0, "{stats:?}");
    assert_eq!(stats.held_back > 0, max_drift != "off", "{stats:?}");
    let results = results(&received);
    assert_eq!(results.len(), windows, "every closed window");
    assert_eq!(received.len(), windows, "once each");
    assert!(results.values().all(|&(n, _)| n == 6), "six readings each");
}
