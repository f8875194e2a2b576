//! Faults injected through librdkafka's mock cluster: the broker goes down and
//! comes back mid-stream, and requests fail; nothing is lost and nothing crashes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use vigil_kafka::{KafkaConfig, KafkaRun};
use vigil_tests::Broker;
use vigil_tests::workload::{PARTITIONS, PATIENTS, expected, produce, readings, results, sql};

#[test]
fn the_broker_going_down_and_coming_back_mid_stream_loses_nothing() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let broker = Broker::at(mock.bootstrap_servers());
    let (input, output) = ("mock-vitals", "mock-out");
    for (topic, partitions) in [
        (input.to_owned(), PARTITIONS),
        (format!("{input}.dead-letter"), 1),
        (format!("{input}.progress"), PARTITIONS),
        (output.to_owned(), PARTITIONS),
    ] {
        mock.create_topic(&topic, partitions, 1).expect("topic");
    }
    let pipeline = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(vigil_engine::plan::Pipeline::plan(&sql(input, output)))
            .expect("plan"),
    );
    let all = readings();
    let half = 15 * PATIENTS;
    produce(&broker, input, &all[..half]);

    let mut config = KafkaConfig::new(broker.bootstrap(), "mock");
    config.commit_interval = Duration::from_millis(200);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (pipeline, stop) = (Arc::clone(&pipeline), Arc::clone(&stop));
        std::thread::spawn(move || {
            KafkaRun::new(&pipeline, config)
                .expect("run")
                .run(&stop)
                .expect("the run survives the outage")
        })
    };
    let first = broker.consume(output, Duration::from_secs(60), |r| r.len() >= 2 * PATIENTS);
    assert_eq!(first.len(), 2 * PATIENTS);

    // Down while the rest is produced (the producer retries until it is back),
    // then up; and a few produce and commit requests fail afterwards.
    mock.broker_down(-1).expect("down");
    let rest = all[half..].to_vec();
    let producer = {
        let bootstrap = broker.bootstrap().to_owned();
        std::thread::spawn(move || produce(&Broker::at(bootstrap), "mock-vitals", &rest))
    };
    std::thread::sleep(Duration::from_secs(3));
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3],
    );
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 2],
    );
    mock.broker_up(-1).expect("up");
    producer.join().expect("producer");

    let expected = expected();
    let received = broker.consume(output, Duration::from_secs(90), |r| {
        results(r).len() >= expected.len()
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().expect("run thread");
    assert_eq!(results(&received), expected, "nothing lost");
    assert_eq!(stats.consumed, all.len() as u64, "{stats:?}");
    assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
    eprintln!(
        "outage: {} results for {} windows; {stats:?}",
        received.len(),
        expected.len()
    );
}
