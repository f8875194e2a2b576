//! What the end-to-end benches share: the shipped NEWS2 pipeline with its tables
//! made Kafka topics, and simulated monitor readings.

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use vigil_engine::plan::{Binding, Pipeline};
use vigil_kafka::fetch::FetchQueue;
use vigil_kafka::source::GroupContext;

/// Partitions of the benches' input and output topics.
pub const PARTITIONS: i32 = 3;

/// The shipped NEWS2 pipeline (`pipelines/news2_per_patient.sql`) reading topic
/// `input` and writing topic `output`, keyed by patient.
pub fn news2_pipeline(input: &str, output: &str) -> Pipeline {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipelines/news2_per_patient.sql"
    );
    let sql = std::fs::read_to_string(path).expect("read the NEWS2 pipeline");
    let mut bindings = vec![
        Binding::topic("vitals", input),
        Binding::topic("news2_scores", output),
        Binding::option("news2_scores", "key", "patient_id"),
    ];
    if let Ok(drift) = std::env::var("VIGIL_BENCH_MAX_DRIFT") {
        bindings.push(Binding::option("vitals", "max_drift", &drift));
    }
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan_with(&sql, &bindings))
        .expect("plan")
}

/// Reading `n` of `patients`, observed at `at_ms`: patient `n % patients`, a
/// monitor's heart rate, SpO2 and respiration, with blood pressure, temperature
/// and consciousness in every 12th round of readings. Returns partition, key
/// and JSON payload.
pub fn reading(n: usize, patients: usize, at_ms: i64) -> (i32, String, String) {
    let patient = n % patients;
    let round = n / patients;
    let wobble = ((n * 7919) % 13) as f64;
    let mut json = format!(
        r#"{{"patient_id":"p{patient:06}","ward":"w{}","observed_at":{at_ms},"heart_rate":{},"spo2":{},"resp_rate":{},"on_oxygen":false"#,
        patient % 20,
        70.0 + wobble,
        95.0 + wobble / 4.0,
        14.0 + wobble / 3.0
    );
    if round.is_multiple_of(12) {
        json.push_str(&format!(
            r#","systolic_bp":{},"diastolic_bp":{},"temperature":{},"consciousness":"A""#,
            120.0 + wobble,
            80.0 - wobble,
            36.8 + wobble / 20.0
        ));
    }
    json.push('}');
    (
        (patient % PARTITIONS as usize) as i32,
        format!("p{patient:06}"),
        json,
    )
}

/// A whole-number setting from the environment variable `name`, or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A consumer of `bootstrap` (group `group`, no commits, `properties` on top)
/// assigned partitions `0..partitions` of `topic` from the beginning: no group
/// join to wait for.
pub fn reader(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    properties: &[(&str, &str)],
) -> BaseConsumer {
    let consumer: BaseConsumer = reader_config(bootstrap, group, properties)
        .create()
        .expect("consumer");
    consumer
        .assign(&whole_topic(topic, partitions))
        .expect("assign");
    consumer
}

/// The same reader taking its messages in batches, as vigil does: its
/// partitions routed to a fetch queue before they are assigned.
#[allow(dead_code)] // the kafka bench's, not the soak bench's
pub fn batch_reader<'c>(
    consumer: &'c BaseConsumer<GroupContext>,
    topic: &str,
    partitions: i32,
) -> FetchQueue<'c> {
    let fetch = FetchQueue::new(consumer).expect("fetch queue");
    let list = whole_topic(topic, partitions);
    fetch.route(&list);
    consumer.assign(&list).expect("assign");
    fetch
}

/// The consumer of [`reader`] and [`batch_reader`], not yet assigned.
pub fn reader_config(bootstrap: &str, group: &str, properties: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    for (key, value) in properties {
        config.set(*key, *value);
    }
    config
}

/// Every partition of `topic`, from its beginning.
fn whole_topic(topic: &str, partitions: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    list
}

/// Hands a message to `producer`, waiting while its queue is full; false if the
/// producer refused it for another reason.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    key: &str,
    payload: &str,
) -> bool {
    let mut record = BaseRecord::to(topic)
        .partition(partition)
        .key(key)
        .payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return true,
            Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                record = back;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(_) => return false,
        }
    }
}

/// Fills `topic` with `readings` messages, message `n` being `reading(n)`
/// (partition, key, payload), batched as a bulk load would be; returns the
/// payload bytes.
#[allow(dead_code)] // the Kafka bench's: the soak bench feeds a live stream
pub fn fill(
    bootstrap: &str,
    topic: &str,
    readings: usize,
    reading: impl Fn(usize) -> (i32, String, String),
) -> u64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .expect("producer");
    let mut bytes = 0;
    for n in 0..readings {
        let (partition, key, payload) = reading(n);
        bytes += payload.len() as u64;
        assert!(
            send(&producer, topic, partition, &key, &payload),
            "the producer refused a reading"
        );
    }
    rdkafka::producer::Producer::flush(&producer, std::time::Duration::from_secs(600))
        .expect("flush");
    bytes
}

/// Milliseconds since the epoch of an RFC 3339 time as the JSON sink writes it.
pub fn time_ms(text: &str) -> Option<i64> {
    let text = text.trim_end_matches('Z').trim_end_matches("+00:00");
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// Milliseconds since the epoch, now.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Resident and peak resident memory (MiB) of this process, from `/proc`.
pub fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The value of the gauge `name` summed over its labels.
pub fn gauge_sum(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_gauge().get_value()))
        .sum()
}

/// The `q` quantile (0 to 1) of sorted `values`, nearest rank.
pub fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
