//! The shipped NEWS2 alert pipeline over Kafka (librdkafka's mock cluster): a
//! score topic in, alert events out keyed by patient, counted by severity.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use vigil_engine::plan::{Binding, Pipeline};
use vigil_kafka::{KafkaConfig, KafkaRun, RunMetrics};
use vigil_tests::Broker;

use crate::pipeline::sample;

#[test]
fn score_rows_become_alert_events_keyed_by_patient_and_counted() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let broker = Broker::at(mock.bootstrap_servers());
    for (topic, partitions) in [
        ("scores", 2),
        ("scores.dead-letter", 1),
        ("scores.progress", 2),
        ("alerts", 2),
    ] {
        mock.create_topic(topic, partitions, 1).expect("topic");
    }
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipelines/news2_alerts.sql"
    ))
    .expect("alert pipeline");
    let pipeline = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan_with(
            &sql,
            &[
                Binding::topic("news2_scores", "scores"),
                Binding::topic("news2_alerts", "alerts"),
                Binding::option("news2_alerts", "key", "patient_id"),
            ],
        ))
        .expect("plan");
    // p1 is high for two minutes (confirmed on the second: one alert); p2 is
    // medium for one minute only (an artefact: no alert), then low.
    let score = |patient: &str, minute: u32, band: &str, news2: u32| {
        format!(
            r#"{{"patient_id":"{patient}","ward":"w1","scored_at":"2026-11-24T10:{minute:02}:00Z","news2":{news2},"news2_band":"{band}"}}"#
        )
    };
    let messages = [
        (0, "p1", score("p1", 0, "high", 8)),
        (0, "p1", score("p1", 1, "high", 8)),
        (1, "p2", score("p2", 0, "medium", 5)),
        (1, "p2", score("p2", 1, "low", 1)),
        (1, "p2", score("p2", 2, "low", 1)),
    ];
    let refs: Vec<_> = messages
        .iter()
        .map(|(p, k, v)| (*p, Some(*k), v.as_str()))
        .collect();
    broker.produce("scores", &refs);

    let registry = prometheus::Registry::new();
    let stop = Arc::new(AtomicBool::new(false));
    let run = {
        let (stop, registry, bootstrap) = (
            Arc::clone(&stop),
            registry.clone(),
            broker.bootstrap().to_owned(),
        );
        std::thread::spawn(move || {
            KafkaRun::new(&pipeline, KafkaConfig::new(bootstrap, "alerts"))
                .expect("run")
                .with_metrics(RunMetrics::new(&registry, "news2_alerts").expect("metrics"))
                .run(&stop)
                .expect("run")
        })
    };
    let received = broker.consume("alerts", Duration::from_secs(60), |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    run.join().expect("run thread");
    assert_eq!(received.len(), 1, "one alert, for p1 only: {received:?}");
    let alert: serde_json::Value = serde_json::from_str(&received[0].payload).expect("json");
    assert_eq!(received[0].key.as_deref(), Some("p1"));
    assert_eq!(alert["event"], "raised");
    assert_eq!(alert["severity"], "high");
    assert_eq!(alert["rule"], "news2");
    assert_eq!(alert["news2"], 8);
    assert_eq!(alert["scored_at"], "2026-11-24T10:01:00Z");
    assert_eq!(alert["alert_id"].as_str().map(str::len), Some(16));
    assert_eq!(
        sample(
            &registry,
            "vigil_alerts_total",
            &[("event", "raised"), ("severity", "high"), ("rule", "news2")]
        ),
        1.0
    );
}
