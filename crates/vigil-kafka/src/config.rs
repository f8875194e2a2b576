//! How a pipeline reaches Kafka: brokers, consumer group, topics from the tables'
//! `WITH` options, and librdkafka properties passed through unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use vigil_engine::sql::ddl::TableDecl;

use crate::error::{KafkaError, Result};

/// Table option: the topic a table reads or writes.
pub const TOPIC: &str = "topic";
/// Table option: the dead-letter topic of a source (default `<topic>.dead-letter`).
pub const DEAD_LETTER_TOPIC: &str = "dead_letter_topic";
/// Table option: the progress topic of a source (default `<topic>.progress`; see
/// [`progress`](crate::progress)).
pub const PROGRESS_TOPIC: &str = "progress_topic";
/// Table option: the output column whose value keys a sink's messages (e.g.
/// `patient_id`, so a patient's results stay in order on one partition).
pub const KEY: &str = "key";
/// Table options starting with this are librdkafka properties, passed through
/// without the prefix (`'kafka.security.protocol' = 'SASL_SSL'`).
pub const PROPERTY_PREFIX: &str = "kafka.";

/// Connection and behaviour settings of a Kafka run.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The consumer group every instance of the pipeline joins.
    pub group_id: String,
    /// librdkafka properties for every client (TLS, SASL, timeouts), applied last.
    pub properties: BTreeMap<String, String>,
    /// Messages taken per step (decoded into one batch per partition).
    pub batch_messages: usize,
    /// Longest wait for a step to fill before it runs with what it has.
    pub max_wait: Duration,
    /// How often offsets are committed.
    pub commit_interval: Duration,
    /// How long to wait at start for the brokers and topics before failing.
    pub startup_timeout: Duration,
    /// Messages larger than this are dead-lettered.
    pub max_message_bytes: usize,
    /// Whether each commit writes the jobs' state to the progress log first (see
    /// [`state`](crate::state)): a new owner of a partition restores it and
    /// reads on from the commit, instead of replaying the input its windows
    /// still hold. Off: commits stop at the oldest input the state holds, and a
    /// new owner replays from there.
    pub checkpoints: bool,
    /// Largest piece of a job's state per message of the progress log.
    pub state_chunk_bytes: usize,
    /// Exactly-once mode (see [`transaction`](crate::transaction)): each commit
    /// is one Kafka transaction holding the outputs, dead letters, state
    /// checkpoints, progress and source offsets since the last one. Needs
    /// `checkpoints`.
    pub exactly_once: bool,
    /// The producer's `transactional.id` in exactly-once mode; default
    /// `<group>.<host>.<pid>.<random>`, unique per run (a new owner of a
    /// partition fences the previous writer by this id, see
    /// [`transaction`](crate::transaction)).
    pub transactional_id: Option<String>,
}

impl KafkaConfig {
    /// Settings for `brokers` and `group_id`, with defaults for the rest.
    pub fn new(brokers: impl Into<String>, group_id: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            group_id: group_id.into(),
            properties: BTreeMap::new(),
            batch_messages: 8192,
            max_wait: Duration::from_millis(100),
            commit_interval: Duration::from_secs(1),
            startup_timeout: Duration::from_secs(15),
            max_message_bytes: vigil_formats::json::DEFAULT_MAX_MESSAGE_BYTES,
            checkpoints: true,
            state_chunk_bytes: crate::state::CHUNK_BYTES,
            exactly_once: false,
            transactional_id: None,
        }
    }

    /// Configuration shared by every client: brokers, then the pass-through
    /// properties (which may override anything).
    fn base(&self, table_properties: &BTreeMap<String, String>) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in self.properties.iter().chain(table_properties) {
            config.set(key, value);
        }
        config
    }

    /// The consumer's configuration: the group, manual commits, no auto offset
    /// store, start from the earliest offset when the group has none.
    pub fn consumer(&self, table_properties: &BTreeMap<String, String>) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Once a partition's prefetch queue is full (`queued.min.messages`)
            // librdkafka stops fetching it for this long; its default (1 s) lets
            // a loop that drains the queue in a fraction of that sit idle for the
            // rest (measured: 1 s stalls that cut the bench's rate to a fifth).
            .set("fetch.queue.backoff.ms", "20")
            // Consumer lag for the metrics.
            .set("statistics.interval.ms", "5000");
        for (key, value) in self.properties.iter().chain(table_properties) {
            config.set(key, value);
        }
        config
    }

    /// The producer's configuration: idempotent (no duplicates or reordering from
    /// its own retries), every replica acknowledging; transactional in
    /// exactly-once mode.
    pub fn producer(&self, table_properties: &BTreeMap<String, String>) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // At most 64 MiB awaiting the broker (librdkafka's default is
            // 1 GiB): a checkpoint of a large state, or a burst of outputs,
            // waits for acknowledgements instead of being copied whole into
            // the producer's queue.
            .set("queue.buffering.max.kbytes", "65536")
            // Producers' metadata requests would create a topic deleted under a
            // running pipeline; its topics are checked at start instead.
            .set("allow.auto.create.topics", "false");
        for (key, value) in self.properties.iter().chain(table_properties) {
            config.set(key, value);
        }
        if self.exactly_once {
            let id = self
                .transactional_id
                .clone()
                .unwrap_or_else(|| crate::transaction::default_transactional_id(&self.group_id));
            config.set("transactional.id", id);
        }
        config
    }

    /// An admin or metadata client's configuration.
    pub fn admin(&self) -> ClientConfig {
        self.base(&BTreeMap::new())
    }
}

/// The librdkafka properties a table declares (`'kafka.*'` options, prefix removed).
pub fn table_properties(table: &TableDecl) -> BTreeMap<String, String> {
    table
        .options
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(PROPERTY_PREFIX)
                .map(|k| (k.to_owned(), v.clone()))
        })
        .collect()
}

/// Whether a table is a Kafka table.
pub fn is_kafka(table: &TableDecl) -> bool {
    table.option("connector") == Some("kafka")
}

/// The topic of a Kafka table.
pub fn topic(table: &TableDecl) -> Result<String> {
    table.option(TOPIC).map(str::to_owned).ok_or_else(|| {
        KafkaError::Config(format!(
            "line {}: table {} needs the option `topic` in WITH (...)",
            table.line, table.name
        ))
    })
}

/// The progress topic of a Kafka source.
pub fn progress_topic(table: &TableDecl) -> Result<String> {
    match table.option(PROGRESS_TOPIC) {
        Some(t) => Ok(t.to_owned()),
        None => Ok(format!("{}.progress", topic(table)?)),
    }
}

/// The dead-letter topic of a Kafka source.
pub fn dead_letter_topic(table: &TableDecl) -> Result<String> {
    match table.option(DEAD_LETTER_TOPIC) {
        Some(t) => Ok(t.to_owned()),
        None => Ok(format!("{}.dead-letter", topic(table)?)),
    }
}
