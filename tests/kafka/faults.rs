//! Faults injected through librdkafka's mock cluster: the broker goes down and
//! comes back mid-stream, and requests fail (transactional ones in
//! exactly-once mode too); the sink's broker answers slowly, for a minute;
//! device clocks run minutes fast; devices resend readings. Nothing is lost,
//! nothing counts twice and nothing crashes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use vigil_kafka::{KafkaConfig, KafkaRun, RunMetrics, RunStats};
use vigil_tests::workload::{
    BASE_MS, PARTITIONS, PATIENTS, Windows, expected, produce, readings, results, sql,
};
use vigil_tests::{Broker, Received};

const INPUT: &str = "mock-vitals";
const OUTPUT: &str = "mock-out";

/// A mock cluster of `brokers` with the workload's topics, and a pipeline run
/// against it on its own thread.
struct MockRun {
    mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    broker: Broker,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<RunStats>>,
    /// Whether the run is started in exactly-once mode (as `transactional.id`
    /// [`TRANSACTIONAL_ID`]).
    exactly_once: bool,
    /// librdkafka properties of the run's clients.
    properties: Vec<(String, String)>,
    /// How often the run commits (200 ms unless a test says otherwise).
    commit_interval: Duration,
}

/// The run's `transactional.id` in exactly-once mode.
const TRANSACTIONAL_ID: &str = "mock-txn";

impl MockRun {
    fn new(brokers: i32) -> MockRun {
        crate::log_if_asked();
        let mock = MockCluster::new(brokers).expect("mock cluster");
        let broker = Broker::at(mock.bootstrap_servers());
        for (topic, partitions) in [
            (INPUT.to_owned(), PARTITIONS),
            (format!("{INPUT}.dead-letter"), 1),
            (format!("{INPUT}.progress"), PARTITIONS),
            (OUTPUT.to_owned(), PARTITIONS),
        ] {
            mock.create_topic(&topic, partitions, 1).expect("topic");
        }
        MockRun {
            mock,
            broker,
            stop: Arc::new(AtomicBool::new(false)),
            handle: None,
            exactly_once: false,
            // librdkafka's own debug contexts, when asked (`consumer,cgrp`...).
            properties: std::env::var("VIGIL_TEST_RDKAFKA_DEBUG")
                .map(|contexts| vec![("debug".to_owned(), contexts)])
                .unwrap_or_default(),
            commit_interval: Duration::from_millis(200),
        }
    }

    /// Starts the pipeline (offsets committed every `commit_interval`).
    fn start(&mut self) {
        self.start_reporting(None);
    }

    /// Starts the pipeline, reporting to `registry` if given.
    fn start_reporting(&mut self, registry: Option<prometheus::Registry>) {
        self.start_with(&sql(INPUT, OUTPUT), registry);
    }

    /// Starts the pipeline `sql`, reporting to `registry` if given.
    fn start_with(&mut self, sql: &str, registry: Option<prometheus::Registry>) {
        let pipeline = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(vigil_engine::plan::Pipeline::plan(sql))
            .expect("plan");
        let mut config = KafkaConfig::new(self.broker.bootstrap(), "mock");
        config.commit_interval = self.commit_interval;
        config.exactly_once = self.exactly_once;
        config.transactional_id = Some(TRANSACTIONAL_ID.to_owned());
        config.properties.extend(self.properties.iter().cloned());
        let stop = Arc::clone(&self.stop);
        self.handle = Some(std::thread::spawn(move || {
            let mut run = KafkaRun::new(&pipeline, config).expect("run");
            if let Some(registry) = registry {
                run = run.with_metrics(RunMetrics::new(&registry, "test").expect("metrics"));
            }
            run.run(&stop).expect("the run survives the fault")
        }));
    }

    /// Produces the first half of the readings, starts the pipeline and waits
    /// until its first windows are out; returns every reading and where the
    /// second half starts.
    fn start_on_first_half(&mut self) -> (Vec<vigil_tests::workload::Message>, usize) {
        let all = readings();
        let half = 15 * PATIENTS;
        produce(&self.broker, INPUT, &all[..half]);
        self.start();
        let first = self
            .broker
            .consume(OUTPUT, Duration::from_secs(60), |r| r.len() >= 2 * PATIENTS);
        assert_eq!(first.len(), 2 * PATIENTS);
        (all, half)
    }

    /// Waits (at most `timeout`) until the output topic holds every window of
    /// `want`, then stops the run; returns what was read and the run's counts.
    fn collect(&mut self, want: &Windows, timeout: Duration) -> (Vec<Received>, RunStats) {
        let received = self
            .broker
            .consume(OUTPUT, timeout, |r| results(r).len() >= want.len());
        std::thread::sleep(Duration::from_millis(500));
        self.stop.store(true, Ordering::Relaxed);
        let stats = self
            .handle
            .take()
            .expect("started")
            .join()
            .expect("run thread");
        (received, stats)
    }

    /// Waits for every expected window in the output topic, stops the run and
    /// checks that nothing was lost; returns the run's counts.
    fn finish(mut self, consumed: usize) -> RunStats {
        let expected = expected();
        let (received, stats) = self.collect(&expected, Duration::from_secs(90));
        assert_eq!(results(&received), expected, "nothing lost");
        assert_eq!(stats.consumed, consumed as u64, "{stats:?}");
        assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
        eprintln!(
            "{} results for {} windows; {stats:?}",
            received.len(),
            expected.len()
        );
        stats
    }
}

#[test]
fn the_broker_going_down_and_coming_back_mid_stream_loses_nothing() {
    let mut run = MockRun::new(1);
    let (all, half) = run.start_on_first_half();

    // Down while the rest is produced (the producer retries until it is back),
    // then up; and a few produce and commit requests fail afterwards.
    run.mock.broker_down(-1).expect("down");
    let rest = all[half..].to_vec();
    let producer = {
        let bootstrap = run.broker.bootstrap().to_owned();
        std::thread::spawn(move || produce(&Broker::at(bootstrap), INPUT, &rest))
    };
    std::thread::sleep(Duration::from_secs(3));
    run.mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3],
    );
    run.mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 2],
    );
    run.mock.broker_up(-1).expect("up");
    producer.join().expect("producer");
    run.finish(all.len());
}

/// The group's coordinator down while readings come in (two brokers: the
/// other leads every topic): offset commits cannot be made, and the stream
/// goes on without them. A commit that waited for the coordinator would hold
/// the run loop, and no window would come out until it was back. Once it is,
/// the commits go through and reach the end of the input.
#[test]
fn the_group_coordinator_down_holds_commits_not_the_stream() {
    let mut run = MockRun::new(2);
    run.place(1, 2);
    let (all, half) = run.start_on_first_half();

    run.mock.broker_down(2).expect("down");
    // One reading per patient, and time for a commit of them to begin (the
    // commit interval is 200 ms), before the rest. librdkafka gives a commit
    // up after about 45 s without a coordinator: a run loop waiting for it
    // would not have the windows out in 30 s.
    produce(&run.broker, INPUT, &all[half..half + PATIENTS]);
    std::thread::sleep(Duration::from_secs(2));
    produce(&run.broker, INPUT, &all[half + PATIENTS..]);
    let expected = expected();
    let received = run.broker.consume(OUTPUT, Duration::from_secs(30), |r| {
        results(r).len() >= expected.len()
    });
    assert_eq!(
        results(&received),
        expected,
        "every window while the coordinator is down"
    );

    run.mock.broker_up(2).expect("up");
    let per_partition = (all.len() / PARTITIONS as usize) as i64;
    let committed = committed_offsets(&run.broker, "mock", |offsets| {
        offsets.iter().all(|&o| o == per_partition)
    });
    assert_eq!(committed, vec![per_partition; PARTITIONS as usize]);
    let (_, stats) = run.collect(&expected, Duration::from_secs(1));
    assert_eq!(stats.consumed, all.len() as u64, "{stats:?}");
    assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
}

/// The offsets group `group` has committed for the input's partitions, read
/// until `done` says they are what is wanted (at most a minute).
fn committed_offsets(broker: &Broker, group: &str, done: impl Fn(&[i64]) -> bool) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let reader: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .create()
        .expect("reader");
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition(INPUT, partition);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let offsets: Vec<i64> = reader
            .committed_offsets(list.clone(), Duration::from_secs(5))
            .map(|l| {
                l.elements()
                    .iter()
                    .map(|e| e.offset().to_raw().unwrap_or(-1))
                    .collect()
            })
            .unwrap_or_default();
        if done(&offsets) || std::time::Instant::now() > deadline {
            return offsets;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Exactly-once while the transaction protocol's requests fail (adding
/// partitions and offsets to a transaction, committing offsets in it, ending
/// it, producing into it) with the errors a broker returns while its
/// coordinator moves or loads: librdkafka retries them, the run goes on, and
/// the read-committed output holds every window exactly once.
#[test]
fn request_errors_during_transactions_lose_nothing_and_repeat_nothing() {
    use RDKafkaRespErr::*;
    let mut run = MockRun::new(1);
    run.exactly_once = true;
    let (all, half) = run.start_on_first_half();

    let injected: [(RDKafkaApiKey, &[RDKafkaRespErr]); 5] = [
        (
            RDKafkaApiKey::AddPartitionsToTxn,
            &[
                RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
                RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            ],
        ),
        (
            RDKafkaApiKey::AddOffsetsToTxn,
            &[
                RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
            ],
        ),
        (
            RDKafkaApiKey::TxnOffsetCommit,
            &[
                RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            ],
        ),
        (
            RDKafkaApiKey::EndTxn,
            &[
                RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
            ],
        ),
        (
            RDKafkaApiKey::Produce,
            &[RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3],
        ),
    ];
    for (api, errors) in injected {
        run.mock.request_errors(api, errors);
    }
    produce(&run.broker, INPUT, &all[half..]);
    let expected = expected();
    let (received, stats) = run.collect(&expected, Duration::from_secs(90));
    assert_eq!(results(&received), expected, "nothing lost");
    assert_eq!(
        received.len(),
        expected.len(),
        "each window once in the read-committed output"
    );
    assert_eq!(stats.consumed, all.len() as u64, "{stats:?}");
    assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
    assert!(stats.transactions > 2, "{stats:?}");
}

impl MockRun {
    /// Broker 1 leads the input, progress and dead-letter topics; broker
    /// `output` leads the output topic and broker `coordinator` coordinates
    /// the group.
    fn place(&self, output: i32, coordinator: i32) {
        for partition in 0..PARTITIONS {
            for (topic, leader) in [
                (INPUT.to_owned(), 1),
                (format!("{INPUT}.progress"), 1),
                (OUTPUT.to_owned(), output),
            ] {
                self.mock
                    .partition_leader(&topic, partition, Some(leader))
                    .expect("leader");
            }
        }
        self.mock
            .partition_leader(&format!("{INPUT}.dead-letter"), 0, Some(1))
            .expect("leader");
        self.mock
            .coordinator(MockCoordinator::Group("mock".to_owned()), coordinator)
            .expect("coordinator");
    }

    /// Two brokers: broker 1 leads the input, the progress and dead-letter
    /// topics and coordinates the group; broker 2 leads the output topic (the
    /// sink), and answers `round_trip` late.
    fn with_slow_sink(round_trip: Duration) -> MockRun {
        let run = MockRun::new(2);
        run.place(2, 1);
        run.mock
            .coordinator(MockCoordinator::Transaction(TRANSACTIONAL_ID.to_owned()), 1)
            .expect("coordinator");
        run.mock
            .broker_round_trip_time(2, round_trip)
            .expect("round trip time");
        run
    }
}

/// The sink's broker down for longer than the producer tries to deliver
/// (`message.timeout.ms`): outputs fail for good, and the run goes on from its
/// last commit instead of stopping (every partition's state restored, the
/// consumer sought back). In exactly-once mode the open transaction is aborted
/// and a read-committed reader sees each window once; at least once, every
/// window comes out. Committing at every step too: then each step that sends
/// outputs also writes progress past them (to another broker, which answers),
/// and the run must not go on from progress whose outputs never arrived.
#[test]
fn outputs_that_fail_for_good_rewind_the_run_to_its_last_commit_and_it_goes_on() {
    for (exactly_once, commit_interval) in [
        (false, Duration::from_millis(200)),
        (false, Duration::ZERO),
        (true, Duration::from_millis(200)),
    ] {
        let mut run = MockRun::with_slow_sink(Duration::ZERO);
        run.exactly_once = exactly_once;
        run.commit_interval = commit_interval;
        run.properties
            .push(("message.timeout.ms".to_owned(), "1000".to_owned()));
        let (all, half) = run.start_on_first_half();

        run.mock.broker_down(2).expect("down");
        produce(&run.broker, INPUT, &all[half..]);
        std::thread::sleep(Duration::from_secs(3));
        run.mock.broker_up(2).expect("up");

        let expected = expected();
        let (received, stats) = run.collect(&expected, Duration::from_secs(90));
        eprintln!(
            "exactly once: {exactly_once}, commits every {commit_interval:?}: {} results for {} windows; {stats:?}",
            received.len(),
            expected.len()
        );
        assert_eq!(results(&received), expected, "nothing lost");
        assert!(stats.rewinds >= 1, "{stats:?}");
        assert!(stats.consumed > all.len() as u64, "input again: {stats:?}");
        assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
        if exactly_once {
            assert_eq!(
                received.len(),
                expected.len(),
                "each window once in the read-committed output"
            );
        }
    }
}

#[test]
fn a_slow_sink_pauses_consumption_and_loses_nothing() {
    // Every request to the sink's broker 400 ms late, longer than the loop
    // waits for acknowledgements before it pauses its partitions.
    let mut run = MockRun::with_slow_sink(Duration::from_millis(400));
    let all = readings();
    produce(&run.broker, INPUT, &all);
    run.start();
    let stats = run.finish(all.len());
    assert!(
        stats.paused > 0,
        "the slow sink paused consumption: {stats:?}"
    );
}

/// The sink's broker answers a second late for a whole minute while readings
/// keep arriving (one per patient and second of event time, ten such seconds
/// each second: ten minutes of event time):
/// the loop waits for each step's acknowledgements instead of piling outputs
/// up, so the messages awaiting acknowledgement stay a handful (not the
/// minute's hundreds of outputs and commits), it pauses its partitions, and
/// every window comes out right once the sink is fast again.
#[test]
fn a_sink_slow_for_a_minute_holds_little_and_loses_nothing() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let mut run = MockRun::with_slow_sink(Duration::from_secs(1));
    run.start();
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", run.broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let send = |patient: usize, second: i64, hr: f64| {
        let payload = format!(
            r#"{{"patient_id":"p{patient}","observed_at":{},"heart_rate":{hr}}}"#,
            BASE_MS + second * 1000
        );
        producer
            .send(
                BaseRecord::to(INPUT)
                    .partition((patient % PARTITIONS as usize) as i32)
                    .key(&format!("p{patient}"))
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    };
    let mut want = Windows::new();
    let started = std::time::Instant::now();
    let mut second = 0_i64;
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(60) {
        for patient in 0..PATIENTS {
            let hr = 60.0 + (second % 47) as f64 + patient as f64;
            send(patient, second, hr);
            sent += 1;
            let minute = second / 60 + 1;
            let end = format!("2026-11-24T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60);
            let window = want.entry((format!("p{patient}"), end)).or_insert((0, 0.0));
            window.0 += 1;
            window.1 = f64::max(window.1, hr);
        }
        second += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // The sink is fast again; one reading each far ahead closes every window.
    run.mock
        .broker_round_trip_time(2, Duration::ZERO)
        .expect("round trip time");
    for patient in 0..PATIENTS {
        send(patient, second + 3600, 50.0);
        sent += 1;
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let (received, stats) = run.collect(&want, Duration::from_secs(120));
    assert_eq!(results(&received), want, "nothing lost");
    assert_eq!(stats.consumed, sent as u64, "{stats:?}");
    assert_eq!(stats.dead_lettered + stats.late, 0, "{stats:?}");
    assert!(
        stats.paused > 0,
        "the slow sink paused consumption: {stats:?}"
    );
    // A step's outputs are acknowledged while the next runs: at most two
    // steps' closed windows (at most one per patient and minute of event time
    // taken in), with a progress message and a state chunk per partition.
    // Unbounded, the minute's outputs and commits (five a second, three
    // partitions) would be hundreds.
    assert!(
        stats.peak_unacknowledged <= 64,
        "at most two steps' messages awaiting acknowledgement: {stats:?}"
    );
    eprintln!("{} windows, {sent} readings; {stats:?}", want.len());
}

#[test]
fn a_device_clock_minutes_fast_does_not_make_other_readings_late() {
    // Every reading arrives 100 ms after it was taken (its message timestamp),
    // except that one device per partition reports a reading 5 minutes in the
    // future by its clock. Were the watermark to follow that clock, every
    // partition's honest readings of the next 5 minutes would be late.
    let mut run = MockRun::new(1);
    let timed = |messages: &[(i32, String, String)]| -> Vec<(i32, String, String, i64)> {
        messages
            .iter()
            .map(|(p, k, v)| {
                let observed: serde_json::Value = serde_json::from_str(v).expect("json");
                let at = observed["observed_at"].as_i64().expect("epoch ms");
                (*p, k.clone(), v.clone(), at + 100)
            })
            .collect()
    };
    let all = readings();
    let split = 8 * PATIENTS; // seconds 0 to 70
    let mut first = timed(&all[..split]);
    for p in 0..PARTITIONS as usize {
        let arrived = BASE_MS + 35_000 + 100;
        let payload = format!(
            r#"{{"patient_id":"p{p}","observed_at":{},"heart_rate":99}}"#,
            BASE_MS + 335_000
        );
        first.push((p as i32, format!("p{p}"), payload, arrived));
    }
    let send = |broker: &Broker, messages: &[(i32, String, String, i64)]| {
        let refs: Vec<_> = messages
            .iter()
            .map(|(p, k, v, t)| (*p, Some(k.as_str()), v.as_str(), Some(*t)))
            .collect();
        broker.produce_timed(INPUT, &refs);
    };
    send(&run.broker, &first);
    let registry = prometheus::Registry::new();
    run.start_reporting(Some(registry.clone()));
    // The first minute closes (at 70 s of honest time) before the rest comes.
    run.broker
        .consume(OUTPUT, Duration::from_secs(60), |r| r.len() >= PATIENTS);
    send(&run.broker, &timed(&all[split..]));

    let mut want = expected();
    for p in 0..PARTITIONS {
        want.insert(
            (format!("p{p}"), "2026-11-24T08:06:00Z".to_owned()),
            (1, 99.0),
        );
    }
    let (received, stats) = run.collect(&want, Duration::from_secs(60));
    assert_eq!(
        results(&received),
        want,
        "every window, the fast clocks' included"
    );
    assert_eq!(stats.late, 0, "{stats:?}");
    let future = crate::pipeline::sample(&registry, "vigil_future_rows_total", &[("topic", INPUT)]);
    assert_eq!(
        future,
        f64::from(PARTITIONS),
        "the fast readings are counted"
    );
}

#[test]
fn resent_readings_are_taken_in_once_where_the_source_declares_a_key() {
    // Every reading of the first five minutes is resent: right after itself
    // (half of those with another heart rate), or ahead of itself by a few
    // messages (a resend overtaking its original), within the watermark delay.
    let mut run = MockRun::new(1);
    let all = readings();
    let (timed, movers) = all.split_at(all.len() - PATIENTS);
    let mut sent = Vec::new();
    for (i, (p, k, v)) in timed.iter().enumerate() {
        sent.push((*p, k.clone(), v.clone()));
        // Altered copies come after their original: the first to arrive wins.
        let copy = if i % 6 == 0 {
            v.replace(r#""heart_rate":"#, r#""heart_rate":1"#)
        } else {
            v.clone()
        };
        if i % 3 == 0 {
            sent.push((*p, k.clone(), copy));
        } else {
            let at = sent.len().saturating_sub(PATIENTS);
            sent.insert(at, (*p, k.clone(), copy));
        }
    }
    sent.extend(movers.iter().cloned());
    produce(&run.broker, INPUT, &sent);
    let keyed = sql(INPUT, OUTPUT).replace(
        "  WATERMARK FOR",
        "  PRIMARY KEY (patient_id, observed_at),\n  WATERMARK FOR",
    );
    assert!(keyed.contains("PRIMARY KEY"));
    let registry = prometheus::Registry::new();
    run.start_with(&keyed, Some(registry.clone()));
    let want = expected();
    let (received, stats) = run.collect(&want, Duration::from_secs(60));
    assert_eq!(results(&received), want, "each reading counted once");
    assert_eq!(stats.consumed, sent.len() as u64, "{stats:?}");
    assert_eq!(stats.duplicates, timed.len() as u64, "{stats:?}");
    assert_eq!(stats.late + stats.dead_lettered, 0, "{stats:?}");
    let counted =
        crate::pipeline::sample(&registry, "vigil_duplicate_rows_total", &[("topic", INPUT)]);
    assert_eq!(counted, timed.len() as f64);
}
