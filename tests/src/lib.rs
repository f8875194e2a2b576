//! The harness of vigil's end-to-end tests: a real Kafka-protocol broker on a
//! loopback port, topics, and plain producing and consuming.
//!
//! [`Broker::start`] runs tansu (fetched by `scripts/tansu.sh`, or the binary
//! named by `VIGIL_TANSU`) on a free port of 127.0.0.1 with in-memory storage, and
//! stops it when dropped. With `VIGIL_TEST_BROKERS=host:port` the tests use that
//! Kafka instead and start nothing.

pub mod prometheus;
pub mod workload;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// A broker for one test process.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    bootstrap: String,
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The tansu binary: `VIGIL_TANSU`, or what `scripts/tansu.sh` fetches.
fn tansu() -> PathBuf {
    tool("VIGIL_TANSU", "scripts/tansu.sh")
}

/// A path the environment variable `env` names, or the one the project script
/// `script` prints (installing what it must).
pub fn tool(env: &str, script: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    let out = Command::new("bash")
        .arg(repo_root().join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(out.status.success(), "{script} failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Broker {
    /// Starts a broker on a free loopback port (or uses `VIGIL_TEST_BROKERS`).
    pub fn start() -> Broker {
        if let Ok(bootstrap) = std::env::var("VIGIL_TEST_BROKERS") {
            return Broker {
                child: None,
                bootstrap,
            };
        }
        let binary = tansu();
        for _attempt in 0..5 {
            let port = free_port();
            let url = format!("tcp://127.0.0.1:{port}");
            let child = Command::new(&binary)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                    "--storage-engine",
                    "memory://tansu/",
                ])
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tansu");
            let mut broker = Broker {
                child: Some(child),
                bootstrap: format!("127.0.0.1:{port}"),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return broker;
                }
                if let Some(Ok(Some(_))) = broker.child.as_mut().map(Child::try_wait) {
                    break; // exited (the port was taken meanwhile): try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            broker.stop();
        }
        panic!("tansu did not start");
    }

    /// A broker someone else runs (librdkafka's mock cluster, say), at
    /// `bootstrap`; nothing is started or stopped.
    pub fn at(bootstrap: impl Into<String>) -> Broker {
        Broker {
            child: None,
            bootstrap: bootstrap.into(),
        }
    }

    /// `host:port` to bootstrap from.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("admin client");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let results = runtime
            .block_on(admin.create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ))
            .expect("create topics");
        for result in results {
            if let Err((name, code)) = result {
                panic!("creating topic {name}: {code}");
            }
        }
    }

    /// Produces `(partition, key, payload)` messages and waits for them.
    pub fn produce(&self, topic: &str, messages: &[(i32, Option<&str>, &str)]) {
        let timed: Vec<_> = messages.iter().map(|&(p, k, v)| (p, k, v, None)).collect();
        self.produce_timed(topic, &timed);
    }

    /// Produces `(partition, key, payload, timestamp)` messages (the timestamp in
    /// epoch milliseconds, or the producer's clock when `None`) and waits for them.
    pub fn produce_timed(&self, topic: &str, messages: &[(i32, Option<&str>, &str, Option<i64>)]) {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        for (partition, key, payload, timestamp) in messages {
            let mut record = BaseRecord::to(topic)
                .partition(*partition)
                .payload(*payload);
            if let Some(key) = key {
                record = record.key(*key);
            }
            if let Some(timestamp) = timestamp {
                record = record.timestamp(*timestamp);
            }
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    }

    /// Whether a read-committed consumer of this broker skips the messages of
    /// an aborted transaction (Kafka does; tansu returns them): writes one
    /// message in a transaction to a new topic, aborts it, writes another in a
    /// committed one, and reads the topic back.
    pub fn hides_aborted_transactions(&self) -> bool {
        let topic = "vigil-tests-aborted-probe";
        self.create_topic(topic, 1);
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("transactional.id", "vigil-tests-aborted-probe")
            .create()
            .expect("producer");
        let timeout = Duration::from_secs(10);
        producer.init_transactions(timeout).expect("init");
        for (payload, commit) in [("aborted", false), ("committed", true)] {
            producer.begin_transaction().expect("begin");
            producer
                .send(
                    BaseRecord::<(), str>::to(topic)
                        .partition(0)
                        .payload(payload),
                )
                .map_err(|(e, _)| e)
                .expect("send");
            producer.flush(timeout).expect("flush");
            if commit {
                producer.commit_transaction(timeout).expect("commit");
            } else {
                producer.abort_transaction(timeout).expect("abort");
            }
        }
        let read = self.consume(topic, Duration::from_secs(10), |r| {
            r.iter().any(|m| m.payload == "committed")
        });
        !read.iter().any(|m| m.payload == "aborted")
    }

    /// Reads `topic` from the beginning until `enough` says so (given what was
    /// read) or `timeout` passes; returns what was read.
    pub fn consume(
        &self,
        topic: &str,
        timeout: Duration,
        enough: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        // Partitions are assigned, not subscribed: no group join to wait for.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "vigil-tests-reader")
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut assignment = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                assignment
                    .add_partition_offset(topic, p.id(), Offset::Beginning)
                    .expect("offset");
            }
        }
        consumer.assign(&assignment).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !enough(&out) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    h.value
                                        .map(|v| String::from_utf8_lossy(v).into_owned())
                                        .unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Received {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m
                        .payload()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .unwrap_or_default(),
                    headers,
                });
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its partition.
    pub partition: i32,
    /// Its key.
    pub key: Option<String>,
    /// Its payload, as text.
    pub payload: String,
    /// Its headers, as text.
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
