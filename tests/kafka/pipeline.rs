//! A pipeline from topic to topic: exact output, dead letters for poison messages,
//! 10 MB messages, and two group members sharing the partitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vigil_engine::plan::Pipeline;
use vigil_kafka::{KafkaConfig, KafkaRun, RunMetrics, RunStats};
use vigil_tests::Broker;
use vigil_tests::workload::{
    PARTITIONS, PATIENTS, expected, produce, readings, results, sql, topics,
};

pub(crate) fn pipeline(input: &str, output: &str) -> Pipeline {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan(&sql(input, output)))
        .expect("plan")
}

pub(crate) fn config(broker: &Broker, group: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(broker.bootstrap(), group);
    config.commit_interval = Duration::from_millis(200);
    // tansu completes a join after about half the rebalance timeout.
    config
        .properties
        .insert("session.timeout.ms".to_owned(), "6000".to_owned());
    config
        .properties
        .insert("max.poll.interval.ms".to_owned(), "7000".to_owned());
    config
}

/// Runs the pipeline in a thread until `stop` is set.
pub(crate) fn spawn(
    pipeline: Arc<Pipeline>,
    config: KafkaConfig,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<RunStats> {
    spawn_reporting(pipeline, config, stop, &prometheus::Registry::new())
}

/// [`spawn`], its metrics registered in `registry`.
pub(crate) fn spawn_reporting(
    pipeline: Arc<Pipeline>,
    config: KafkaConfig,
    stop: Arc<AtomicBool>,
    registry: &prometheus::Registry,
) -> std::thread::JoinHandle<RunStats> {
    let metrics = RunMetrics::new(registry, "test").expect("metrics");
    std::thread::spawn(move || {
        let mut run = KafkaRun::new(&pipeline, config)
            .expect("run")
            .with_metrics(metrics);
        run.run(&stop).expect("run to the end")
    })
}

/// The value of the sample of `name` whose labels include `labels`, from the
/// Prometheus text exposition of `registry` (0 if there is none).
pub(crate) fn sample(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus::Encoder;
    let mut text = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .expect("encode");
    let text = String::from_utf8(text).expect("utf-8");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The offsets committed for `group` on each partition of `topic`.
fn committed(broker: &Broker, group: &str, topic: &str) -> Vec<Option<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(topic, p);
    }
    let list = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    list.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// How a run commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Offsets only, stopping before what open windows hold.
    Replay,
    /// State checkpoints, then offsets.
    Checkpoints,
    /// State checkpoints, outputs and offsets in one transaction.
    ExactlyOnce,
}

/// Every commit mode emits exactly the closed windows. Without checkpoints a
/// commit stops before the rows an open window holds (a new owner replays
/// them); with checkpoints it covers everything processed, the open window's
/// rows being in the state written first; exactly-once commits the same in
/// transactions, which a read-committed reader sees only once committed.
#[test]
fn a_pipeline_from_topic_to_topic_emits_exactly_the_closed_windows() {
    for mode in [Mode::Replay, Mode::Checkpoints, Mode::ExactlyOnce] {
        emits_exactly_the_closed_windows(mode);
    }
}

fn emits_exactly_the_closed_windows(mode: Mode) {
    let checkpoints = mode != Mode::Replay;
    let broker = Broker::start();
    let (input, output) = topics(&broker, "exact");
    let all = readings();
    let (first, last) = all.split_at(all.len() - PATIENTS);
    produce(&broker, &input, first);
    let p = Arc::new(pipeline(&input, &output));
    let stop = Arc::new(AtomicBool::new(false));
    let mut config = config(&broker, "exact");
    config.checkpoints = checkpoints;
    config.exactly_once = mode == Mode::ExactlyOnce;
    // Many small messages per state, so that restoring reassembles them.
    config.state_chunk_bytes = 64;
    let handle = spawn(Arc::clone(&p), config.clone(), Arc::clone(&stop));
    let expected = expected();
    // The watermark (290 s - 5 s) closes four windows per patient.
    let early = broker.consume(&output, Duration::from_secs(60), |r| {
        r.len() >= 4 * PATIENTS
    });
    assert_eq!(early.len(), 4 * PATIENTS);
    // The fifth window holds the readings from 240 s on: 6 per patient, 12 per
    // partition.
    std::thread::sleep(Duration::from_millis(800));
    let per_partition = (first.len() / PARTITIONS as usize) as i64;
    let held = per_partition - 12;
    let mid = committed(&broker, "exact", &input);
    if checkpoints {
        assert_eq!(
            mid,
            vec![Some(per_partition); PARTITIONS as usize],
            "commits cover everything processed"
        );
    } else {
        assert!(
            mid.iter().all(|c| c.is_none_or(|c| c <= held)),
            "commits stop before the open window's rows: {mid:?}"
        );
    }
    // The readings at 20 minutes close the fifth.
    produce(&broker, &input, last);
    let received = broker.consume(&output, Duration::from_secs(60), |r| {
        r.len() >= expected.len()
    });
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().expect("run thread");
    assert_eq!(results(&received), expected);
    assert_eq!(
        received.len(),
        expected.len(),
        "no duplicates in a clean run"
    );
    assert_eq!(stats.consumed, all.len() as u64);
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(stats.rows_out, expected.len() as u64);
    assert!(stats.commits > 0, "{stats:?}");
    assert_eq!(stats.checkpoints > 0, checkpoints, "{stats:?}");
    assert_eq!(
        stats.transactions > 0,
        mode == Mode::ExactlyOnce,
        "{stats:?}"
    );
    assert_eq!(stats.fenced, 0, "{stats:?}");
    // Without checkpoints, everything before the readings at 20 minutes is
    // committed (those are held by the window they opened); with them,
    // everything.
    let end = if checkpoints {
        per_partition + (PATIENTS / PARTITIONS as usize) as i64
    } else {
        per_partition
    };
    assert_eq!(
        committed(&broker, "exact", &input),
        vec![Some(end); PARTITIONS as usize]
    );
    if checkpoints {
        // The next instance restores every partition's state (the open
        // window of the readings at 20 minutes) and has nothing to replay.
        let registry = prometheus::Registry::new();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = spawn_reporting(Arc::clone(&p), config, Arc::clone(&stop), &registry);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while sample(&registry, "vigil_assigned_partitions", &[]) < f64::from(PARTITIONS)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        let next = handle.join().expect("run thread");
        assert_eq!(next.restored, PARTITIONS as u64, "{next:?}");
        assert_eq!((next.consumed, next.rows_out), (0, 0), "{next:?}");
        // The first instance released its partitions when it stopped: nobody
        // to fence.
        assert_eq!(next.fenced, 0, "{next:?}");
    }
}

#[test]
fn poison_messages_go_to_the_dead_letter_topic_while_the_good_ones_pass() {
    let broker = Broker::start();
    let (input, output) = topics(&broker, "poison");
    let dead_letter = format!("{input}.dead-letter");
    let poison: [(&str, &str); 6] = [
        (
            "truncated",
            r#"{"patient_id":"p0","observed_at":1795507201000,"heart_r"#,
        ),
        (
            "wrong type",
            r#"{"patient_id":"p0","observed_at":1795507202000,"heart_rate":"fast"}"#,
        ),
        (
            "missing key field",
            r#"{"observed_at":1795507203000,"heart_rate":80}"#,
        ),
        ("not JSON", "\u{0}\u{1}binary"),
        (
            "two objects",
            r#"{"patient_id":"p0","observed_at":1795507204000} {"patient_id":"p1"}"#,
        ),
        ("empty", ""),
    ];
    // Each poison message sits between good readings on every partition, so a
    // decoder left failed or joining a truncated payload onto the next would
    // show in the output.
    let mut messages = Vec::new();
    for (i, good) in readings().into_iter().enumerate() {
        messages.push(good.clone());
        if i % 37 == 0 {
            let (_, payload) = poison[(i / 37) % poison.len()];
            messages.push((good.0, good.1.clone(), payload.to_owned()));
        }
    }
    let poisoned = messages.len() - readings().len();
    produce(&broker, &input, &messages);
    let stop = Arc::new(AtomicBool::new(false));
    let registry = prometheus::Registry::new();
    let handle = spawn_reporting(
        Arc::new(pipeline(&input, &output)),
        config(&broker, "poison"),
        Arc::clone(&stop),
        &registry,
    );
    let expected = expected();
    let received = broker.consume(&output, Duration::from_secs(60), |r| {
        r.len() >= expected.len()
    });
    let letters = broker.consume(&dead_letter, Duration::from_secs(30), |r| {
        r.len() >= poisoned
    });
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().expect("run thread");
    assert_eq!(results(&received), expected);
    assert_eq!(stats.dead_lettered, poisoned as u64);
    assert_eq!(letters.len(), poisoned);
    // The same counts in the metrics, by topic and reason.
    let topic = [("topic", input.as_str())];
    let consumed = sample(&registry, "vigil_records_consumed_total", &topic);
    assert_eq!(consumed, messages.len() as f64);
    let malformed = [("topic", input.as_str()), ("reason", "malformed")];
    let errors = sample(&registry, "vigil_decode_errors_total", &malformed);
    assert_eq!(errors, poisoned as f64);
    let letters_counted = sample(&registry, "vigil_dead_letters_total", &topic);
    assert_eq!(letters_counted, poisoned as f64);
    let outputs = sample(
        &registry,
        "vigil_outputs_total",
        &[("topic", output.as_str())],
    );
    assert_eq!(outputs, stats.rows_out as f64);
    assert_eq!(
        sample(&registry, "vigil_assigned_partitions", &[]),
        0.0,
        "left the group"
    );
    assert!(sample(&registry, "vigil_step_duration_seconds_count", &[]) > 0.0);
    // Reported when the run stops, whenever its last commit was: the windows
    // of the readings at minute 20 are still open then.
    let jobs = sample(&registry, "vigil_state_groups", &[]);
    let bytes = sample(&registry, "vigil_state_bytes", &[]);
    assert!(
        jobs > 0.0 && bytes > 0.0,
        "state reported: {jobs} groups, {bytes} bytes"
    );
    for letter in &letters {
        let offset: i64 = letter
            .header("vigil.source.offset")
            .and_then(|o| o.parse().ok())
            .expect("offset header");
        let partition: i32 = letter
            .header("vigil.source.partition")
            .and_then(|p| p.parse().ok())
            .expect("partition header");
        assert_eq!(letter.header("vigil.source.topic"), Some(input.as_str()));
        assert!(letter.header("vigil.source.timestamp").is_some());
        assert!(!letter.header("vigil.error").unwrap_or_default().is_empty());
        // The dead letter is the poison message as it came, with its key.
        let index = messages
            .iter()
            .filter(|(p, _, _)| *p == partition)
            .nth(offset as usize)
            .expect("the source message");
        assert_eq!(letter.payload, index.2, "{letter:?}");
        assert_eq!(letter.key.as_deref(), Some(index.1.as_str()));
        assert_eq!(letter.header("vigil.reason"), Some("malformed"));
        let (kind, _) = poison
            .iter()
            .find(|(_, p)| *p == letter.payload)
            .expect("one of the poison messages");
        let error = letter.header("vigil.error").unwrap_or_default();
        let says = match *kind {
            "truncated" => "truncated JSON object",
            "wrong type" => "heart_rate: \"fast\" is not a number",
            "missing key field" => "patient_id is missing",
            "not JSON" => "not a JSON object",
            "two objects" => "more than one JSON value",
            _ => "empty message",
        };
        assert!(error.contains(says), "{kind}: {error}");
    }
}

#[test]
fn narrow_messages_are_widened_and_wrong_units_dead_lettered() {
    let broker = Broker::start();
    let (input, output) = topics(&broker, "narrow");
    let sql = sql(&input, &output).replacen("format = 'json'", "format = 'json-narrow'", 1);
    let pipeline = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan(&sql))
        .expect("plan");
    // Each reading as one measurement: {"patient_id", "observed_at", "code",
    // "value", "unit"}.
    let mut messages: Vec<(i32, String, String)> = readings()
        .into_iter()
        .map(|(partition, key, payload)| {
            let v: serde_json::Value = serde_json::from_str(&payload).expect("json");
            let narrow = serde_json::json!({
                "patient_id": v["patient_id"],
                "observed_at": v["observed_at"],
                "code": "8867-4",
                "value": v["heart_rate"],
                "unit": "/min",
            });
            (partition, key, narrow.to_string())
        })
        .collect();
    let poison = [
        (
            r#""code":"8867-4","value":72,"unit":"mm[Hg]""#,
            "mm[Hg] is not a unit of heart_rate",
        ),
        (
            r#""code":"8310-5","value":38.2,"unit":"Cel""#,
            "temperature, which this table does not declare",
        ),
        (
            r#""code":"29463-7","value":70,"unit":"kg""#,
            "not a vital sign vigil knows",
        ),
    ];
    for (i, (fields, _)) in poison.iter().enumerate() {
        let payload = format!(
            r#"{{"patient_id":"p0","observed_at":{},{fields}}}"#,
            vigil_tests::workload::BASE_MS + 1000 * i as i64 + 1
        );
        messages.insert(10 + 20 * i, (0, "p0".to_owned(), payload));
    }
    produce(&broker, &input, &messages);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn(
        Arc::new(pipeline),
        config(&broker, "narrow"),
        Arc::clone(&stop),
    );
    let expected = expected();
    let received = broker.consume(&output, Duration::from_secs(60), |r| {
        r.len() >= expected.len()
    });
    let letters = broker.consume(
        &format!("{input}.dead-letter"),
        Duration::from_secs(30),
        |r| r.len() >= poison.len(),
    );
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().expect("run thread");
    assert_eq!(results(&received), expected);
    assert_eq!(stats.dead_lettered, poison.len() as u64);
    assert_eq!(letters.len(), poison.len());
    for (letter, (_, says)) in letters.iter().zip(&poison) {
        assert_eq!(letter.header("vigil.reason"), Some("invalid_field"));
        let error = letter.header("vigil.error").unwrap_or_default();
        assert!(error.contains(says), "{error}");
    }
}

/// A 10 MiB message (an upload sent to the wrong topic, say) is dead-lettered
/// as oversized with its first 512 KiB and its size, a 100 KiB key with its
/// first 64 KiB: Kafka refuses messages over about 1 MB by default, and a dead
/// letter it refused would stop the stream. The readings around them pass.
#[test]
fn ten_megabyte_messages_are_dead_lettered_cut_to_size_while_the_good_ones_pass() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let broker = Broker::start();
    let (input, output) = topics(&broker, "huge");
    let all = readings();
    let half = all.len() / 2;
    produce(&broker, &input, &all[..half]);
    let filler = "x".repeat(10 * 1024 * 1024);
    let huge: Vec<(i32, String, String)> = (0..PARTITIONS)
        .map(|p| {
            let key = if p == 1 {
                "k".repeat(100 * 1024)
            } else {
                format!("p{p}")
            };
            let payload = format!(
                r#"{{"patient_id":"p{p}","observed_at":{},"heart_rate":80,"note":"{filler}"}}"#,
                vigil_tests::workload::BASE_MS + 150_500
            );
            (p, key, payload)
        })
        .collect();
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.max.bytes", "20000000")
        .create()
        .expect("producer");
    for (partition, key, payload) in &huge {
        producer
            .send(
                BaseRecord::to(&input)
                    .partition(*partition)
                    .key(key.as_str())
                    .payload(payload.as_str()),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    produce(&broker, &input, &all[half..]);

    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn(
        Arc::new(pipeline(&input, &output)),
        config(&broker, "huge"),
        Arc::clone(&stop),
    );
    let expected = expected();
    let received = broker.consume(&output, Duration::from_secs(60), |r| {
        r.len() >= expected.len()
    });
    let letters = broker.consume(
        &format!("{input}.dead-letter"),
        Duration::from_secs(30),
        |r| r.len() >= huge.len(),
    );
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().expect("run thread");
    assert_eq!(results(&received), expected, "the good readings pass");
    assert_eq!(stats.consumed, (all.len() + huge.len()) as u64);
    assert_eq!(stats.dead_lettered, huge.len() as u64);
    assert_eq!(letters.len(), huge.len());
    for letter in &letters {
        let (_, key, payload) = &huge[letter_partition(letter)];
        assert_eq!(letter.header("vigil.reason"), Some("oversized"));
        assert_eq!(
            letter.header("vigil.source.offset"),
            Some(
                half_on(&all[..half], letter_partition(letter))
                    .to_string()
                    .as_str()
            )
        );
        assert_eq!(
            letter.header("vigil.source.bytes"),
            Some(payload.len().to_string().as_str())
        );
        assert_eq!(letter.payload, payload[..512 * 1024]);
        if key.len() > 64 * 1024 {
            assert_eq!(letter.key.as_deref(), Some(&key[..64 * 1024]));
            assert_eq!(
                letter.header("vigil.source.key_bytes"),
                Some(key.len().to_string().as_str())
            );
        } else {
            assert_eq!(letter.key.as_deref(), Some(key.as_str()));
            assert_eq!(letter.header("vigil.source.key_bytes"), None);
        }
    }
}

/// The source partition a dead letter names.
fn letter_partition(letter: &vigil_tests::Received) -> usize {
    letter
        .header("vigil.source.partition")
        .and_then(|p| p.parse().ok())
        .expect("partition header")
}

/// How many of `messages` went to `partition`: the offset of the next one.
fn half_on(messages: &[(i32, String, String)], partition: usize) -> usize {
    messages
        .iter()
        .filter(|(p, _, _)| *p as usize == partition)
        .count()
}
