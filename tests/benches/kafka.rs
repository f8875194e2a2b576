//! End to end through Kafka: a topic pre-filled with simulated readings, read by
//! the NEWS2 pipeline (`pipelines/news2_per_patient.sql`, its tables made Kafka
//! topics) into its output topic, next to the raw rate at which a bare rdkafka
//! consumer reads the same topic, on the same broker in the same run.
//!
//! `cargo bench -p vigil-tests --bench kafka` (tansu with in-memory storage on a
//! loopback port, started by the harness; `VIGIL_TEST_BROKERS` for another
//! Kafka). `VIGIL_BENCH_READINGS` (default 1,000,000) and
//! `VIGIL_BENCH_PATIENTS` (default 2,000) set the size.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use vigil_kafka::{KafkaConfig, KafkaRun};
use vigil_tests::Broker;

use common::{PARTITIONS, env_number, news2_pipeline};

mod common;

const BASE_MS: i64 = 1_795_507_200_000;

/// Reading `n`: every 5 s per patient (see [`common::reading`]).
fn reading(n: usize, patients: usize) -> (i32, String, String) {
    let patient = n % patients;
    let round = (n / patients) as i64;
    common::reading(
        n,
        patients,
        BASE_MS + round * 5_000 + (patient as i64 * 7) % 5_000,
    )
}

fn fill(broker: &Broker, topic: &str, readings: usize, patients: usize) -> u64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .expect("producer");
    let mut bytes = 0;
    for n in 0..readings {
        let (partition, key, payload) = reading(n, patients);
        bytes += payload.len() as u64;
        assert!(
            common::send(&producer, topic, partition, &key, &payload),
            "the producer refused a reading"
        );
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    bytes
}

/// Reads the whole topic with a bare consumer; seconds from the first message
/// to the last.
fn raw_consume(broker: &Broker, topic: &str, readings: usize) -> f64 {
    let consumer = common::reader(broker.bootstrap(), "bench-raw", topic, PARTITIONS, &[]);
    let (mut seen, mut bytes, mut first) = (0, 0_usize, None);
    while seen < readings {
        if let Some(Ok(m)) = consumer.poll(Duration::from_secs(10)) {
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    std::hint::black_box(bytes);
    first.map_or(0.0, |f| f.elapsed().as_secs_f64())
}

fn main() {
    if let Ok(filter) = std::env::var("VIGIL_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let readings = env_number("VIGIL_BENCH_READINGS", 1_000_000);
    let patients = env_number("VIGIL_BENCH_PATIENTS", 2_000);
    let broker = Broker::start();
    let (input, output) = ("bench-vitals", "bench-news2");
    broker.create_topic(input, PARTITIONS);
    broker.create_topic(&format!("{input}.dead-letter"), 1);
    broker.create_topic(&format!("{input}.progress"), PARTITIONS);
    broker.create_topic(output, PARTITIONS);

    let started = Instant::now();
    let bytes = fill(&broker, input, readings, patients);
    println!(
        "filled:       {readings} readings of {patients} patients, {:.1} MB, in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let raw = raw_consume(&broker, input, readings);
    let raw_rate = readings as f64 / raw;
    println!(
        "raw consume:  {:.0} msgs/s, {:.1} MB/s ({raw:.2} s)",
        raw_rate,
        bytes as f64 / 1e6 / raw
    );

    let pipeline = news2_pipeline(input, output);
    let config = KafkaConfig::new(broker.bootstrap(), "bench-vigil");
    let mut run = KafkaRun::new(&pipeline, config).expect("run");
    let live = run.live();
    let stop = AtomicBool::new(false);
    let (seconds, rows_out) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| run.run(&stop));
        let mut first = None;
        loop {
            let consumed = live.consumed.load(Ordering::Relaxed);
            if consumed > 0 {
                first.get_or_insert_with(Instant::now);
            }
            if consumed as usize >= readings {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
        let rows_out = live.rows_out.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        let stats = worker.join().expect("run thread").expect("run");
        assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
        (seconds, rows_out)
    });
    let rate = readings as f64 / seconds;
    println!(
        "vigil NEWS2:  {:.0} msgs/s, {:.1} MB/s ({seconds:.2} s, {rows_out} scores produced and acknowledged)",
        rate,
        bytes as f64 / 1e6 / seconds
    );
    println!(
        "ratio:        {:.2} of the raw consume rate",
        rate / raw_rate
    );
}
