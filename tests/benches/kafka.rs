//! End to end through Kafka, on one broker in one run:
//!
//! 1. Throughput: a topic pre-filled with `VIGIL_BENCH_READINGS` simulated
//!    readings (default 1,000,000) of `VIGIL_BENCH_PATIENTS` patients (default
//!    2,000) is read by the NEWS2 pipeline (`pipelines/news2_per_patient.sql`,
//!    its tables made Kafka topics) into its output topic, next to the raw rate
//!    at which a bare rdkafka consumer reads the same topic (the ceiling: the
//!    fastest of three reads with a poll per message and three taking batches
//!    from a fetch queue, as vigil does) and the rate at which such a
//!    consumer, in batches, that also decodes every message with vigil's
//!    decoder reads it (what is left for a
//!    pipeline before it processes anything). Also the process's peak RSS
//!    while vigil runs and the state per patient.
//! 2. Latency: readings stamped with the wall clock are sent at a fixed
//!    `VIGIL_BENCH_RATE` per second (default 50,000) for `VIGIL_BENCH_LIVE_S`
//!    seconds (default 20) to the updating NEWS2 pipeline (a score per patient
//!    re-emitted whenever one of its readings arrives, no window); each score
//!    read back is timed from its patient's newest reading's time to when the
//!    reader got it. The first 3 s (group join, first fetches) are left out.
//!    Also how much of it passed before vigil handed the score to its producer
//!    (the score message's timestamp). The readings are sent as a gateway
//!    would, batched for up to 5 ms (`linger.ms`), and that wait counts.
//!    `VIGIL_BENCH_LINGER_MS` sets vigil's own producer's `linger.ms` in this
//!    phase (vigil's default is 5).
//!
//! Every consumer of both phases waits at most 10 ms for a fetch
//! (`fetch.wait.max.ms`, see [`FETCH_WAIT_MS`]; `VIGIL_BENCH_FETCH_WAIT_MS`
//! sets it for the throughput phase). `VIGIL_BENCH_MAX_DRIFT` sets the NEWS2
//! pipeline's `max_drift` source option (`off` to compare without holding
//! partitions back).
//!
//! `cargo bench -p vigil-tests --bench kafka` (tansu with in-memory storage on a
//! loopback port, started by the harness; `VIGIL_TEST_BROKERS` for another
//! Kafka). Prints a table, and writes the figures as JSON to
//! `VIGIL_BENCH_JSON` (default `target/bench-kafka.json`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::json;
use vigil_engine::plan::Pipeline;
use vigil_kafka::source::GroupContext;
use vigil_kafka::{KafkaConfig, KafkaRun, RunMetrics};
use vigil_tests::Broker;

use common::{
    PARTITIONS, env_number, gauge_sum, memory_mib, news2_pipeline, quantile, time_ms, wall_clock_ms,
};

mod common;
mod scale;

const BASE_MS: i64 = 1_795_507_200_000;

/// `fetch.wait.max.ms` of the bench's consumers (vigil's, the bare readers'
/// and the latency phase's reader). tansu sleeps half the remaining wait
/// after every fetch, even one that found data, where Kafka answers as soon
/// as `fetch.min.bytes` (1) is there; at librdkafka's default of 500 ms
/// each fetch took some 250 ms (measured: vigil idle for 200-300 ms, then
/// 14,000 readings at once, and scores 0.3-1 s late). A short wait makes
/// tansu answer as Kafka would.
const FETCH_WAIT_MS: &str = "10";

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
    common::fill(broker.bootstrap(), topic, readings, |n| {
        reading(n, patients)
    })
}

/// How often the raw read is repeated: the ceiling is the fastest (one read
/// varies by a fifth from run to run on the 2-core machine, and the ratio
/// with it).
const RAW_READS: usize = 3;

/// What the bare readers set as vigil's consumer does: a reader slower than
/// the broker must not sit out librdkafka's default 1 s backoff each time a
/// partition's prefetch queue fills (see `KafkaConfig::consumer`).
const READER: &[(&str, &str)] = &[("fetch.queue.backoff.ms", "20")];

/// `fetch.wait.max.ms` for every consumer of the throughput phase (the bare
/// readers' and vigil's): `VIGIL_BENCH_FETCH_WAIT_MS`, else [`FETCH_WAIT_MS`]
/// as in the latency phase. At librdkafka's default (500 ms) tansu's held
/// fetches left vigil idle for 100 ms steps whenever the partition it
/// waited for had drained its prefetch (measured 2026-12-06: 645 k msgs/s
/// against 849 k at 20 ms, the bare batched reader 1.53 M against 1.97 M).
fn throughput_fetch_wait() -> String {
    std::env::var("VIGIL_BENCH_FETCH_WAIT_MS").unwrap_or_else(|_| FETCH_WAIT_MS.to_owned())
}

/// How a bare reader takes messages from librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// One `BaseConsumer::poll` per message.
    Poll,
    /// Batches from a fetch queue, as vigil does.
    Batch,
}

/// The fastest of [`RAW_READS`] reads of the whole topic with a bare
/// consumer taking its messages as `take` says; seconds from the first
/// message to the last.
fn raw_consume(broker: &Broker, topic: &str, readings: usize, take: Take) -> f64 {
    (0..RAW_READS)
        .map(|i| {
            let mut bytes = 0_usize;
            let group = format!("bench-raw-{take:?}-{i}");
            let seconds = read_all(broker, topic, readings, &group, take, |_, payload| {
                bytes += payload.len();
            });
            std::hint::black_box(bytes);
            seconds
        })
        .fold(f64::INFINITY, f64::min)
}

/// Reads `readings` messages of `topic` from its beginning, handing each
/// message's partition and payload to `each`; seconds from the first message
/// to the last.
fn read_all(
    broker: &Broker,
    topic: &str,
    readings: usize,
    group: &str,
    take: Take,
    mut each: impl FnMut(i32, &[u8]),
) -> f64 {
    let (mut seen, mut first) = (0, None);
    let wait = throughput_fetch_wait();
    let mut settings = READER.to_vec();
    settings.push(("fetch.wait.max.ms", &wait));
    match take {
        Take::Poll => {
            let consumer = common::reader(broker.bootstrap(), group, topic, PARTITIONS, &settings);
            while seen < readings {
                if let Some(Ok(m)) = consumer.poll(Duration::from_secs(10)) {
                    first.get_or_insert_with(Instant::now);
                    each(m.partition(), m.payload().unwrap_or_default());
                    seen += 1;
                }
            }
        }
        Take::Batch => {
            let consumer: BaseConsumer<GroupContext> =
                common::reader_config(broker.bootstrap(), group, &settings)
                    .create_with_context(GroupContext::default())
                    .expect("consumer");
            let mut fetch = common::batch_reader(&consumer, topic, PARTITIONS);
            while seen < readings {
                let _ = consumer.poll(Duration::ZERO);
                let batch = fetch.next_batch(readings - seen, Duration::from_secs(10));
                for m in batch.iter().flatten() {
                    first.get_or_insert_with(Instant::now);
                    each(m.partition, m.payload);
                    seen += 1;
                }
            }
        }
    }
    first.map_or(0.0, |f| f.elapsed().as_secs_f64())
}

/// The fastest of [`RAW_READS`] reads of the whole topic, in batches as vigil
/// takes them, that also decode every message into Arrow with the decoder
/// vigil builds for `pipeline`'s source, flushing every partition's batch
/// after each step's worth of messages as vigil does: what taking and
/// decoding alone leave of the raw rate, before any processing, output or
/// commit.
fn decode_consume(broker: &Broker, topic: &str, readings: usize, pipeline: &Pipeline) -> f64 {
    (0..RAW_READS)
        .map(|i| {
            decode_read(
                broker,
                topic,
                readings,
                pipeline,
                &format!("bench-decode-{i}"),
            )
        })
        .fold(f64::INFINITY, f64::min)
}

fn decode_read(
    broker: &Broker,
    topic: &str,
    readings: usize,
    pipeline: &Pipeline,
    group: &str,
) -> f64 {
    let source = &pipeline.jobs[0].source;
    let config = KafkaConfig::new(broker.bootstrap(), group);
    let batch = config.batch_messages;
    let mut decoders: Vec<_> = (0..PARTITIONS)
        .map(|_| {
            vigil_engine::files::decoder(
                source,
                vigil_engine::files::decode_schema(source),
                config.max_message_bytes,
                batch,
            )
            .expect("decoder")
        })
        .collect();
    let (mut seen, mut rows) = (0, 0_usize);
    let seconds = read_all(
        broker,
        topic,
        readings,
        group,
        Take::Batch,
        |partition, payload| {
            decoders[partition as usize]
                .decode(payload)
                .expect("decodes");
            seen += 1;
            if seen % batch == 0 || seen == readings {
                for decoder in &mut decoders {
                    rows += decoder
                        .flush()
                        .expect("flush")
                        .batch
                        .map_or(0, |b| b.num_rows());
                }
            }
        },
    );
    assert_eq!(rows, readings);
    seconds
}

/// The updating NEWS2 pipeline: each patient's latest value of every
/// parameter and the time of its newest reading, scored again whenever a
/// reading of the patient arrives.
fn updating_news2(input: &str, output: &str) -> Pipeline {
    let sql = format!(
        "CREATE TABLE vitals (
  patient_id TEXT NOT NULL, ward TEXT, observed_at TIMESTAMP NOT NULL,
  resp_rate DOUBLE, spo2 DOUBLE, spo2_scale DOUBLE, on_oxygen BOOLEAN,
  systolic_bp DOUBLE, diastolic_bp DOUBLE, heart_rate DOUBLE, consciousness TEXT,
  temperature DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '30' SECOND
) WITH (connector = 'kafka', topic = '{input}', format = 'json');
CREATE TABLE scores WITH (connector = 'kafka', topic = '{output}', format = 'json');
CREATE VIEW latest AS SELECT patient_id,
  max(observed_at) AS latest_at,
  last_value(resp_rate ORDER BY observed_at) IGNORE NULLS AS resp_rate,
  last_value(spo2 ORDER BY observed_at) IGNORE NULLS AS spo2,
  last_value(spo2_scale ORDER BY observed_at) IGNORE NULLS AS spo2_scale,
  last_value(on_oxygen ORDER BY observed_at) IGNORE NULLS AS on_oxygen,
  last_value(systolic_bp ORDER BY observed_at) IGNORE NULLS AS systolic_bp,
  last_value(heart_rate ORDER BY observed_at) IGNORE NULLS AS heart_rate,
  last_value(consciousness ORDER BY observed_at) IGNORE NULLS AS consciousness,
  last_value(temperature ORDER BY observed_at) IGNORE NULLS AS temperature
FROM vitals GROUP BY patient_id;
INSERT INTO scores SELECT patient_id, latest_at,
  news2(resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, heart_rate, consciousness, temperature) AS news2
FROM latest;"
    );
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan_with(&sql, &[]))
        .expect("plan")
}

/// What the throughput phase measured.
struct Throughput {
    seconds: f64,
    rows_out: u64,
    peak_rss_mib: f64,
    state_bytes: f64,
}

/// Runs `pipeline` until it has taken `readings` messages in.
fn vigil_throughput(broker: &Broker, pipeline: &Pipeline, readings: usize) -> Throughput {
    let registry = prometheus::Registry::new();
    let mut config = KafkaConfig::new(broker.bootstrap(), "bench-vigil");
    config
        .properties
        .insert("fetch.wait.max.ms".into(), throughput_fetch_wait());
    let mut run = KafkaRun::new(pipeline, config)
        .expect("run")
        .with_metrics(RunMetrics::new(&registry, "bench").expect("metrics"));
    let live = run.live();
    let stop = AtomicBool::new(false);
    // The peak from here on: vigil's, over what this process already holds.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| run.run(&stop));
        let (mut first, mut state_bytes) = (None, 0.0_f64);
        loop {
            let consumed = live.consumed.load(Ordering::Relaxed);
            if consumed > 0 {
                first.get_or_insert_with(Instant::now);
            }
            state_bytes = state_bytes.max(gauge_sum(&registry, "vigil_state_bytes"));
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
        Throughput {
            seconds,
            rows_out,
            peak_rss_mib: memory_mib().1,
            state_bytes,
        }
    })
}

/// Latencies (ms, sorted) of the scores of the updating NEWS2 pipeline.
struct Latencies {
    /// From the reading's time to the reader having the score.
    total: Vec<i64>,
    /// From the reading's time to vigil handing the score to its producer (the
    /// score message's timestamp); the rest is the broker and the reader.
    in_vigil: Vec<i64>,
}

/// Latencies of the updating NEWS2 pipeline at `rate` readings per second for
/// `seconds`.
fn live_latency(broker: &Broker, rate: u64, seconds: u64, patients: usize) -> Latencies {
    let (input, output) = ("bench-live-vitals", "bench-live-news2");
    broker.create_topic(input, PARTITIONS);
    broker.create_topic(&format!("{input}.dead-letter"), 1);
    broker.create_topic(&format!("{input}.progress"), PARTITIONS);
    broker.create_topic(output, PARTITIONS);
    let pipeline = updating_news2(input, output);
    let mut config = KafkaConfig::new(broker.bootstrap(), "bench-live");
    config
        .properties
        .insert("fetch.wait.max.ms".into(), FETCH_WAIT_MS.into());
    if let Ok(linger) = std::env::var("VIGIL_BENCH_LINGER_MS") {
        config.properties.insert("linger.ms".into(), linger);
    }
    let mut run = KafkaRun::new(&pipeline, config).expect("run");
    let live = run.live();
    let stop = AtomicBool::new(false);
    let latencies = Mutex::new(Vec::new());
    let reading_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| run.run(&stop));
        // Readings sent before vigil has its partitions would wait for it.
        while live.assigned_partitions.load(Ordering::Relaxed) < PARTITIONS as u64 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let counted_from = wall_clock_ms() + 3_000;
        let (latencies, reading_done) = (&latencies, &reading_done);
        let reader = scope.spawn(move || {
            let consumer = common::reader(
                broker.bootstrap(),
                "bench-live-reader",
                output,
                PARTITIONS,
                &[("fetch.wait.max.ms", FETCH_WAIT_MS)],
            );
            while !reading_done.load(Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let received = wall_clock_ms();
                let at = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                    .and_then(|v| v["latest_at"].as_str().and_then(time_ms))
                    .expect("a score with latest_at");
                if at >= counted_from {
                    // The score's message timestamp: when vigil handed it to
                    // its producer.
                    let produced = m.timestamp().to_millis().unwrap_or(received);
                    latencies
                        .lock()
                        .expect("latencies")
                        .push((received - at, produced - at));
                }
            }
        });
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let began = Instant::now();
        let total = rate * seconds;
        let mut sent = 0u64;
        while sent < total {
            let due = (began.elapsed().as_secs_f64() * rate as f64) as u64;
            let at = wall_clock_ms();
            while sent < due.min(total) {
                let (partition, key, payload) = common::reading(sent as usize, patients, at);
                assert!(common::send(&producer, input, partition, &key, &payload));
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        // Until vigil has taken everything in and its last scores are read.
        while live.consumed.load(Ordering::Relaxed) < total {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_secs(2));
        reading_done.store(true, Ordering::Relaxed);
        reader.join().expect("reader");
        stop.store(true, Ordering::Relaxed);
        let stats = worker.join().expect("run thread").expect("run");
        assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
    });
    let pairs = latencies.into_inner().expect("latencies");
    let (mut total, mut in_vigil): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
    total.sort_unstable();
    in_vigil.sort_unstable();
    Latencies { total, in_vigil }
}

fn main() {
    if let Ok(filter) = std::env::var("VIGIL_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let scale_patients = env_number("VIGIL_BENCH_SCALE_PATIENTS", 1_000_000usize);
    let scale_rounds = env_number("VIGIL_BENCH_SCALE_ROUNDS", 4usize);
    if let Ok(bootstrap) = std::env::var(scale::CHILD) {
        scale::child(&bootstrap, scale_patients, scale_rounds);
        return;
    }
    let readings = env_number("VIGIL_BENCH_READINGS", 1_000_000);
    let patients = env_number("VIGIL_BENCH_PATIENTS", 2_000);
    let rate = env_number("VIGIL_BENCH_RATE", 50_000u64);
    let live_seconds = env_number("VIGIL_BENCH_LIVE_S", 20u64);
    let broker = Broker::start();
    let (input, output) = ("bench-vitals", "bench-news2");
    broker.create_topic(input, PARTITIONS);
    broker.create_topic(&format!("{input}.dead-letter"), 1);
    broker.create_topic(&format!("{input}.progress"), PARTITIONS);
    broker.create_topic(output, PARTITIONS);

    let started = Instant::now();
    let bytes = fill(&broker, input, readings, patients);
    let mb = bytes as f64 / 1e6;
    println!(
        "filled: {readings} readings of {patients} patients, {mb:.1} MB, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let polled = raw_consume(&broker, input, readings, Take::Poll);
    let batched = raw_consume(&broker, input, readings, Take::Batch);
    // The ceiling is the faster bare consumer.
    let raw = polled.min(batched);
    let raw_rate = readings as f64 / raw;
    let pipeline = news2_pipeline(input, output);
    let decode = decode_consume(&broker, input, readings, &pipeline);
    let decode_rate = readings as f64 / decode;
    let vigil = vigil_throughput(&broker, &pipeline, readings);
    let rate_out = readings as f64 / vigil.seconds;
    let latencies = live_latency(&broker, rate, live_seconds, patients);
    let scaled = scale::run(&broker, scale_patients, scale_rounds);
    let scores = latencies.total.len();
    let p = |q| quantile(&latencies.total, q).unwrap_or(-1);
    let v = |q| quantile(&latencies.in_vigil, q).unwrap_or(-1);

    println!();
    println!("| | msgs/s | MB/s | seconds |");
    println!("|---|---:|---:|---:|");
    for (how, seconds) in [("a poll per message", polled), ("in batches", batched)] {
        println!(
            "| raw consume (bare rdkafka consumer, {how}) | {:.0} | {:.1} | {seconds:.2} |",
            readings as f64 / seconds,
            mb / seconds
        );
    }
    println!(
        "| bare consumer in batches decoding into Arrow (vigil's decoder) | {decode_rate:.0} | {:.1} | {decode:.2} |",
        mb / decode
    );
    println!(
        "| vigil, NEWS2 per patient end to end | {rate_out:.0} | {:.1} | {:.2} |",
        mb / vigil.seconds,
        vigil.seconds
    );
    println!(
        "| ratio to the faster raw consume: decoding alone {:.2}, vigil {:.2} | | | |",
        decode_rate / raw_rate,
        rate_out / raw_rate
    );
    println!();
    println!(
        "scores produced and acknowledged: {}; peak RSS while vigil ran: {:.0} MiB; state: {:.0} B per patient",
        vigil.rows_out,
        vigil.peak_rss_mib,
        vigil.state_bytes / patients as f64
    );
    println!(
        "updating NEWS2 at {rate} readings/s for {live_seconds} s: latency p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms ({scores} scores)",
        p(0.5),
        p(0.99),
        p(0.999),
        latencies.total.last().copied().unwrap_or(-1)
    );
    println!(
        "  of which until vigil handed the score to its producer: p50 {} ms, p99 {} ms, p99.9 {} ms (the rest: the broker and the reader)",
        v(0.5),
        v(0.99),
        v(0.999),
    );
    if let Some(s) = &scaled {
        let f = |k: &str| s[k].as_f64().unwrap_or(-1.0);
        println!(
            "scale, 1-hour hop NEWS2: {} patients, {} readings in {:.1} s ({:.0} msgs/s), {} scores; peak RSS {:.0} MiB (baseline {:.0}); state {:.0} MiB ({:.0} B per patient); {} checkpoints, {:.0} MiB, {} commits of {:.1} ms on average",
            f("patients"),
            f("readings"),
            f("seconds"),
            f("msgs_per_s"),
            f("scores"),
            f("peak_rss_mib"),
            f("rss_baseline_mib"),
            f("state_mib"),
            f("state_bytes_per_patient"),
            f("checkpoints"),
            f("checkpoint_mib"),
            f("commit_rounds"),
            f("commit_ms_mean"),
        );
    }
    let report = json!({
        "scale": scaled,
        "readings": readings,
        "patients": patients,
        "bytes": bytes,
        "raw_consume": {
            "msgs_per_s": raw_rate,
            "mb_per_s": mb / raw,
            "seconds": raw,
            "polled_msgs_per_s": readings as f64 / polled,
            "batched_msgs_per_s": readings as f64 / batched,
        },
        "decode_consume": {
            "msgs_per_s": decode_rate,
            "mb_per_s": mb / decode,
            "seconds": decode,
            "ratio": decode_rate / raw_rate,
        },
        "vigil": {
            "msgs_per_s": rate_out,
            "mb_per_s": mb / vigil.seconds,
            "seconds": vigil.seconds,
            "scores": vigil.rows_out,
            "peak_rss_mib": vigil.peak_rss_mib,
            "state_bytes_per_patient": vigil.state_bytes / patients as f64,
        },
        "ratio": rate_out / raw_rate,
        "updating_latency_ms": {
            "rate": rate,
            "seconds": live_seconds,
            "scores": scores,
            "p50": p(0.5),
            "p99": p(0.99),
            "p99_9": p(0.999),
            "max": latencies.total.last().copied(),
            "to_producer": { "p50": v(0.5), "p99": v(0.99), "p99_9": v(0.999) },
        },
    });
    let path = std::env::var("VIGIL_BENCH_JSON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-kafka.json").to_owned()
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json"))
        .expect("write the JSON report");
    println!("JSON: {path}");
}
