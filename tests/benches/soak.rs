//! Soak: the shipped NEWS2 pipeline (`pipelines/news2_per_patient.sql`, its
//! tables made Kafka topics) fed for a long time at a fraction of the capacity
//! measured at the start of the same run, reporting the process's memory over
//! time, end-to-end latency percentiles and the counts in and out.
//!
//! `cargo bench -p vigil-tests --bench soak`. Everything runs in this process:
//! librdkafka's mock cluster as the broker (as in `vigil demo`), a feed
//! producing readings stamped with the wall clock, vigil's Kafka run, and a
//! reader of the output topic. The mock cluster keeps the newest 5 MB of each
//! partition, as retention would, so the broker's memory is bounded and counted
//! in the process's; it has [`PARTITIONS`] partitions per topic so that vigil
//! can fall seconds behind before a reading expires unread (which the counts
//! at the end would show). tansu, the broker of the other Kafka tests, keeps
//! everything in memory (DeleteRecords drops its connection): a soak there
//! runs out of memory in minutes. `VIGIL_TEST_BROKERS=host:port` soaks against
//! another Kafka instead (its topics must exist, [`PARTITIONS`] partitions).
//!
//! 1. Capacity: the highest rate vigil keeps up with while the feed and the
//!    broker share the machine, found in steps of `VIGIL_SOAK_STEP_S` seconds
//!    (default 15; see [`measure_capacity`]). A feed sending flat out would
//!    measure less: it takes the cores vigil needs.
//! 2. Soak: the feed sends at `VIGIL_SOAK_FRACTION` (default 0.5) of that
//!    capacity, or at `VIGIL_SOAK_RATE` readings/s, for `VIGIL_SOAK_MINUTES`
//!    (default 30), one line every `VIGIL_SOAK_SAMPLE_S` seconds (default 60).
//! 3. Drain: the feed stops, vigil takes in the rest, the run stops; the
//!    readings sent must all have been taken in, none dead-lettered or late,
//!    and every row vigil produced read back.
//!
//! Latency is measured per output row: when the reader got it, less when it
//! was due. A row for the window ending at `scored_at` is due once a reading
//! observed at `scored_at` plus the source's watermark delay (30 s) has been
//! sent, which the feed does at that wall-clock time: so the figure is what
//! vigil adds (batching, decoding, the window close, the sink, the broker and
//! the reader's fetch), not the watermark's wait.
//!
//! `VIGIL_SOAK_PATIENTS` (default 10,000) patients share the readings in turn.
//! `VIGIL_SOAK_EXACTLY_ONCE=1` runs vigil in exactly-once mode (the reader
//! reads committed). `VIGIL_SOAK_JSON=<file>` writes the report as JSON too.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{env_number, gauge_sum, memory_mib, news2_pipeline, quantile, time_ms, wall_clock_ms};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::json;
use vigil_kafka::{KafkaConfig, KafkaRun, RunMetrics};

mod common;

/// Partitions of the soak's topics.
const PARTITIONS: i32 = 12;
/// The feed's rate meaning "as fast as it can".
const FLAT_OUT: u64 = u64::MAX;
/// The first rate the capacity measurement offers (readings/s).
const FIRST_RATE: f64 = 10_000.0;
/// Most steps of the capacity measurement.
const CAPACITY_STEPS: usize = 10;
/// Readings vigil may be behind before a capacity step stops as fallen
/// behind: well inside what the mock cluster retains (5 MB per partition, some
/// 400,000 readings over [`PARTITIONS`]), so that none expires unread.
const LAG_LIMIT: u64 = 150_000;
/// Seconds' worth of readings vigil may be behind at the end of a step and
/// still count as keeping up (batching and commits take a fraction of that).
const KEPT_UP_S: f64 = 1.0;

/// What the environment asks for.
struct Settings {
    minutes: f64,
    patients: usize,
    fraction: f64,
    rate: Option<f64>,
    step_s: u64,
    sample_s: u64,
    exactly_once: bool,
    json: Option<String>,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            minutes: env_number("VIGIL_SOAK_MINUTES", 30.0),
            patients: env_number("VIGIL_SOAK_PATIENTS", 10_000),
            fraction: env_number("VIGIL_SOAK_FRACTION", 0.5),
            rate: std::env::var("VIGIL_SOAK_RATE")
                .ok()
                .and_then(|v| v.parse().ok()),
            step_s: env_number("VIGIL_SOAK_STEP_S", 15_u64).max(2),
            sample_s: env_number("VIGIL_SOAK_SAMPLE_S", 60_u64).max(1),
            exactly_once: std::env::var("VIGIL_SOAK_EXACTLY_ONCE").is_ok_and(|v| v == "1"),
            json: std::env::var("VIGIL_SOAK_JSON").ok(),
        }
    }
}

/// The feed's controls and counts, shared with its thread.
#[derive(Default)]
struct Feed {
    /// Readings per second to send: 0 pauses, [`FLAT_OUT`] sends as fast as
    /// the producer takes them.
    rate: AtomicU64,
    /// Readings handed to the producer.
    sent: AtomicU64,
    /// Bytes of their payloads.
    bytes: AtomicU64,
    /// Readings the broker refused (never expected).
    failed: AtomicU64,
    stop: AtomicBool,
}

/// Sends readings of `patients` to `topic` at the rate `feed` says, each
/// observed at the wall-clock time it is sent.
fn run_feed(bootstrap: &str, topic: &str, patients: usize, feed: &Feed) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .expect("producer");
    let mut n = 0_usize;
    let (mut rate, mut since, mut sent) = (0, Instant::now(), 0_u64);
    while !feed.stop.load(Ordering::Relaxed) {
        let now = feed.rate.load(Ordering::Relaxed);
        if now != rate {
            (rate, since, sent) = (now, Instant::now(), 0);
        }
        let due = match rate {
            FLAT_OUT => sent + 1_000,
            rate => (rate as f64 * since.elapsed().as_secs_f64()) as u64,
        };
        if sent >= due {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let at = wall_clock_ms();
        while sent < due && !feed.stop.load(Ordering::Relaxed) {
            let (_, key, payload) = common::reading(n, patients, at);
            let partition = ((n % patients) % PARTITIONS as usize) as i32;
            if !common::send(&producer, topic, partition, &key, &payload) {
                feed.failed.fetch_add(1, Ordering::Relaxed);
            }
            n += 1;
            sent += 1;
            feed.sent.fetch_add(1, Ordering::Relaxed);
            feed.bytes
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// What the reader of the output topic saw.
#[derive(Default)]
struct Output {
    rows: AtomicU64,
    /// Rows whose payload had no `scored_at` (never expected).
    unreadable: AtomicU64,
    /// Per partition, the offset after the last row read.
    positions: Mutex<BTreeMap<i32, i64>>,
    /// Latencies (ms) of the rows read since the last sample.
    latencies: Mutex<Vec<i64>>,
    stop: AtomicBool,
}

/// Reads `topic` from the beginning until told to stop, timing each row.
fn run_reader(bootstrap: &str, topic: &str, delay_ms: i64, output: &Output) {
    let consumer = common::reader(
        bootstrap,
        "soak-reader",
        topic,
        PARTITIONS,
        &[
            ("isolation.level", "read_committed"),
            ("fetch.wait.max.ms", "10"),
        ],
    );
    while !output.stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let received = wall_clock_ms();
        let scored = m
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .and_then(|v| v["scored_at"].as_str().and_then(time_ms));
        match scored {
            Some(at) => output
                .latencies
                .lock()
                .expect("latencies")
                .push(received - (at + delay_ms)),
            None => {
                output.unreadable.fetch_add(1, Ordering::Relaxed);
            }
        }
        output
            .positions
            .lock()
            .expect("positions")
            .insert(m.partition(), m.offset() + 1);
        output.rows.fetch_add(1, Ordering::Relaxed);
    }
}

/// One line of the report.
struct Sample {
    seconds: f64,
    sent: u64,
    consumed: u64,
    rows_out: u64,
    rows_read: u64,
    rss_mib: f64,
    state_mib: f64,
    p50_ms: Option<i64>,
    p99_ms: Option<i64>,
    max_ms: Option<i64>,
}

impl Sample {
    fn print(&self) {
        let ms = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
        println!(
            "{:>7.0} {:>11} {:>11} {:>9} {:>9} {:>8.1} {:>8.1} {:>7} {:>7} {:>7}",
            self.seconds,
            self.sent,
            self.consumed,
            self.rows_out,
            self.rows_read,
            self.rss_mib,
            self.state_mib,
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.max_ms)
        );
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "seconds": self.seconds, "sent": self.sent, "consumed": self.consumed,
            "rows_out": self.rows_out, "rows_read": self.rows_read,
            "rss_mib": self.rss_mib,
            "state_mib": self.state_mib,
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms,
        })
    }
}

/// The highest rate (readings/s) vigil keeps up with: steps of
/// `settings.step_s` seconds, from [`FIRST_RATE`] doubling until vigil falls
/// behind (more than [`KEPT_UP_S`] seconds of readings not yet taken in at the
/// end of the step, or [`LAG_LIMIT`] at any time in it), then halving the gap between the highest rate kept up
/// with and the lowest not, each step starting caught up. Stops early when the
/// feed cannot send at the rate asked (the capacity is then at least that).
fn measure_capacity(feed: &Feed, consumed: &AtomicU64, settings: &Settings) -> f64 {
    let step = Duration::from_secs(settings.step_s);
    let (mut good, mut bad, mut rate) = (0.0_f64, None::<f64>, FIRST_RATE);
    println!("capacity, {} s per step:", settings.step_s);
    for _ in 0..CAPACITY_STEPS {
        assert!(
            wait_caught_up(feed, consumed, Duration::from_secs(600)),
            "vigil did not catch up between capacity steps"
        );
        let sent_before = feed.sent.load(Ordering::Relaxed);
        feed.rate.store(rate as u64, Ordering::Relaxed);
        let started = Instant::now();
        let mut overflowed = false;
        while started.elapsed() < step && !overflowed {
            std::thread::sleep(Duration::from_millis(20));
            overflowed =
                feed.sent.load(Ordering::Relaxed) > consumed.load(Ordering::Relaxed) + LAG_LIMIT;
        }
        let sent = feed.sent.load(Ordering::Relaxed);
        let behind = sent.saturating_sub(consumed.load(Ordering::Relaxed));
        feed.rate.store(0, Ordering::Relaxed);
        let achieved = (sent - sent_before) as f64 / started.elapsed().as_secs_f64();
        let kept_up = !overflowed && behind as f64 <= rate * KEPT_UP_S;
        println!(
            "  {rate:>9.0}/s offered, {achieved:>9.0}/s sent, {behind:>9} behind at the end: {}",
            if kept_up { "kept up" } else { "fell behind" }
        );
        if achieved < 0.9 * rate {
            println!(
                "  the feed cannot send faster on this machine: capacity at least {achieved:.0}/s"
            );
            return if kept_up {
                achieved
            } else {
                good.max(achieved / 2.0)
            };
        }
        if kept_up {
            good = rate;
        } else {
            bad = Some(rate);
        }
        rate = match bad {
            None => rate * 2.0,
            Some(bad) if bad <= good * 1.1 => break,
            Some(bad) => (good.max(FIRST_RATE / 2.0) + bad) / 2.0,
        };
    }
    println!("capacity: {good:.0} readings/s");
    good
}

/// Waits until vigil has taken in every reading sent (or `limit` passes);
/// whether it did.
fn wait_caught_up(feed: &Feed, consumed: &AtomicU64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if consumed.load(Ordering::Relaxed) >= feed.sent.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn main() {
    if let Ok(filter) = std::env::var("VIGIL_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let settings = Settings::from_env();
    let (input, output_topic) = ("soak-vitals", "soak-news2");
    let mock = match std::env::var("VIGIL_TEST_BROKERS") {
        Ok(_) => None,
        Err(_) => Some(MockCluster::new(1).expect("mock cluster")),
    };
    let bootstrap = match &mock {
        Some(mock) => {
            for (topic, partitions) in [
                (input.to_owned(), PARTITIONS),
                (format!("{input}.dead-letter"), 1),
                (format!("{input}.progress"), PARTITIONS),
                (output_topic.to_owned(), PARTITIONS),
            ] {
                mock.create_topic(&topic, partitions, 1).expect("topic");
            }
            mock.bootstrap_servers()
        }
        None => std::env::var("VIGIL_TEST_BROKERS").unwrap_or_default(),
    };
    let bootstrap = bootstrap.as_str();

    let pipeline = news2_pipeline(input, output_topic);
    let delay_ms = pipeline.jobs[0]
        .source
        .event_time
        .as_ref()
        .map_or(0, |t| t.delay_ms);
    let registry = prometheus::Registry::new();
    let mut config = KafkaConfig::new(bootstrap, "soak-vigil");
    config.exactly_once = settings.exactly_once;
    let mut run = KafkaRun::new(&pipeline, config)
        .expect("run")
        .with_metrics(RunMetrics::new(&registry, "soak").expect("metrics"));
    let live = run.live();
    let (feed, output) = (Feed::default(), Output::default());
    let stop = AtomicBool::new(false);
    println!(
        "soak: NEWS2 per patient, {} patients, {} mode, broker {}",
        settings.patients,
        if settings.exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        },
        if mock.is_some() {
            "librdkafka mock cluster"
        } else {
            bootstrap
        }
    );

    let report = std::thread::scope(|scope| {
        let worker = scope.spawn(|| run.run(&stop));
        scope.spawn(|| run_feed(bootstrap, input, settings.patients, &feed));
        scope.spawn(|| run_reader(bootstrap, output_topic, delay_ms, &output));

        // 1. Capacity.
        while live.assigned_partitions.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let capacity = measure_capacity(&feed, &live.consumed, &settings);
        assert!(
            wait_caught_up(&feed, &live.consumed, Duration::from_secs(600)),
            "vigil did not catch up after the capacity steps"
        );

        // 2. Soak.
        let rate = settings
            .rate
            .unwrap_or(capacity * settings.fraction)
            .max(1.0);
        println!(
            "soak: {rate:.0} readings/s for {} min ({:.2} of capacity)",
            settings.minutes,
            rate / capacity
        );
        println!(
            "{:>7} {:>11} {:>11} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7}",
            "s",
            "sent",
            "taken in",
            "rows out",
            "rows read",
            "RSS MiB",
            "state",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        output.latencies.lock().expect("latencies").clear();
        let (sent_before, consumed_before) = (
            feed.sent.load(Ordering::Relaxed),
            live.consumed.load(Ordering::Relaxed),
        );
        let started = Instant::now();
        let length = Duration::from_secs_f64(settings.minutes * 60.0);
        feed.rate.store(rate as u64, Ordering::Relaxed);
        let (mut samples, mut all) = (Vec::new(), Vec::new());
        let mut next = Duration::from_secs(settings.sample_s);
        loop {
            let elapsed = started.elapsed();
            let last = elapsed >= length;
            if elapsed < next && !last {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            next += Duration::from_secs(settings.sample_s);
            let mut latencies = std::mem::take(&mut *output.latencies.lock().expect("latencies"));
            latencies.sort_unstable();
            let (rss_mib, _) = memory_mib();
            let sample = Sample {
                seconds: elapsed.as_secs_f64(),
                sent: feed.sent.load(Ordering::Relaxed) - sent_before,
                consumed: live.consumed.load(Ordering::Relaxed) - consumed_before,
                rows_out: live.rows_out.load(Ordering::Relaxed),
                rows_read: output.rows.load(Ordering::Relaxed),
                rss_mib,
                state_mib: gauge_sum(&registry, "vigil_state_bytes") / (1024.0 * 1024.0),
                p50_ms: quantile(&latencies, 0.5),
                p99_ms: quantile(&latencies, 0.99),
                max_ms: latencies.last().copied(),
            };
            sample.print();
            samples.push(sample);
            all.extend(latencies);
            if last {
                break;
            }
        }
        let soak_seconds = started.elapsed().as_secs_f64();

        // 3. Drain.
        feed.rate.store(0, Ordering::Relaxed);
        let drained = wait_caught_up(&feed, &live.consumed, Duration::from_secs(600));
        let rows_out = live.rows_out.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(60);
        while output.rows.load(Ordering::Relaxed) < rows_out && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        feed.stop.store(true, Ordering::Relaxed);
        output.stop.store(true, Ordering::Relaxed);
        let stats = worker.join().expect("run thread").expect("run");
        all.extend(std::mem::take(
            &mut *output.latencies.lock().expect("latencies"),
        ));
        all.sort_unstable();
        (capacity, rate, soak_seconds, samples, all, stats, drained)
    });
    let (capacity, rate, soak_seconds, samples, latencies, stats, drained) = report;

    let sent = feed.sent.load(Ordering::Relaxed);
    let rows_read = output.rows.load(Ordering::Relaxed);
    let (_, peak_mib) = memory_mib();
    let soak_sent = samples.last().map_or(0, |s| s.sent);
    println!();
    println!(
        "counts: {sent} readings sent ({} failed), {} taken in, {} dead-lettered, {} late, {} rows out, {rows_read} read ({} unreadable), {} checkpoints, {} commits",
        feed.failed.load(Ordering::Relaxed),
        stats.consumed,
        stats.dead_lettered,
        stats.late,
        stats.rows_out,
        output.unreadable.load(Ordering::Relaxed),
        stats.checkpoints,
        stats.commits,
    );
    println!(
        "soak rate: {:.0} readings/s offered ({soak_sent} in {soak_seconds:.0} s), {:.1} MB in all",
        soak_sent as f64 / soak_seconds,
        feed.bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    let rss: Vec<f64> = samples.iter().map(|s| s.rss_mib).collect();
    let half = rss.len() / 2;
    let (at_half, at_end) = (
        rss.get(half).copied().unwrap_or(0.0),
        rss.last().copied().unwrap_or(0.0),
    );
    let max = rss.iter().copied().fold(0.0, f64::max);
    println!(
        "RSS: {:.1} MiB at the first sample, {at_half:.1} at half time, {at_end:.1} at the end ({:+.1} over the second half), max {max:.1}, process peak {peak_mib:.1}",
        rss.first().copied().unwrap_or(0.0),
        at_end - at_half
    );
    let per_checkpoint = stats.checkpoint_bytes / stats.checkpoints.max(1);
    let commit_ms = stats.commit_time.as_secs_f64() * 1e3 / stats.commit_rounds.max(1) as f64;
    println!(
        "commits: {} rounds ({} transactions), {commit_ms:.1} ms each on average (one a second), {} checkpoints of {per_checkpoint} bytes on average ({:.1} MB in all)",
        stats.commit_rounds,
        stats.transactions,
        stats.checkpoints,
        stats.checkpoint_bytes as f64 / 1e6
    );
    let q = |p| quantile(&latencies, p).map_or("-".to_owned(), |v| v.to_string());
    println!(
        "latency (ms, {} rows): p50 {}, p99 {}, p99.9 {}, max {}",
        latencies.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        latencies.last().map_or("-".to_owned(), |v| v.to_string())
    );
    if let Some(path) = &settings.json {
        let report = json!({
            "patients": settings.patients,
            "exactly_once": settings.exactly_once,
            "capacity_per_s": capacity,
            "rate_per_s": rate,
            "soak_seconds": soak_seconds,
            "sent": sent,
            "taken_in": stats.consumed,
            "dead_lettered": stats.dead_lettered,
            "late": stats.late,
            "rows_out": stats.rows_out,
            "rows_read": rows_read,
            "checkpoints": stats.checkpoints,
            "checkpoint_bytes": stats.checkpoint_bytes,
            "commit_rounds": stats.commit_rounds,
            "transactions": stats.transactions,
            "commit_ms_mean": commit_ms,
            "latency_ms": {
                "rows": latencies.len(),
                "p50": quantile(&latencies, 0.5), "p99": quantile(&latencies, 0.99),
                "p99_9": quantile(&latencies, 0.999), "max": latencies.last(),
            },
            "peak_rss_mib": peak_mib,
            "samples": samples.iter().map(Sample::json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report).expect("json"))
            .expect("write the JSON report");
    }
    assert!(drained, "vigil did not take in every reading sent");
    assert_eq!(stats.consumed, sent, "every reading sent taken in");
    assert_eq!(feed.failed.load(Ordering::Relaxed), 0, "no reading refused");
    assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
    assert_eq!(rows_read, stats.rows_out, "every row produced read back");
}
