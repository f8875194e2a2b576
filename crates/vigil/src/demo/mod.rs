//! `vigil demo`: a simulated hospital streamed through the shipped pipelines, on
//! an embedded Kafka-protocol broker (librdkafka's mock cluster, in process) or
//! on a real Kafka with `--brokers`, with a live view of alerts, wards,
//! throughput and lag, and the usual `/metrics`, `/healthz` and `/readyz`.
//!
//! Everything a deployment runs, in one process: the simulator produces to the
//! vitals topic (history first, as fast as it goes, then real time times
//! `--speed`); `news2_per_patient.sql`, `news2_alerts.sql` (a second stage over
//! the scores) and `ward_summary.sql`, compiled into the binary, run as three
//! consumer groups; the view reads their output topics.

mod view;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use vigil_engine::plan::{Binding, Pipeline};
use vigil_kafka::{KafkaConfig, KafkaRun, LiveCounters, RunMetrics};
use vigil_sim::json::Shape;
use vigil_sim::{CohortConfig, Faults, Simulation};

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::exit;
use crate::http::Endpoints;
use crate::simulate::{Output, Pace, emit};
use view::{Flow, View};

/// The shipped NEWS2 pipeline, as compiled in.
const NEWS2_SQL: &str = include_str!("../../../../pipelines/news2_per_patient.sql");
/// The shipped NEWS2 alert pipeline, as compiled in.
const ALERTS_SQL: &str = include_str!("../../../../pipelines/news2_alerts.sql");
/// The shipped ward summary pipeline, as compiled in.
const WARDS_SQL: &str = include_str!("../../../../pipelines/ward_summary.sql");
/// Partitions of the demo's topics (dead letters: one).
const PARTITIONS: i32 = 3;
/// How often the screen is drawn, and (times five) a status line printed.
const REFRESH: Duration = Duration::from_secs(1);

/// The demo's topics: plain names on the embedded broker, `vigil-demo.*` on a
/// real Kafka.
struct Topics {
    vitals: String,
    news2: String,
    alerts: String,
    wards: String,
}

/// Where the topics live.
enum Broker {
    /// librdkafka's mock cluster, in this process.
    Embedded(MockCluster<'static, DefaultProducerContext>),
    /// A Kafka the user runs, at these bootstrap servers.
    External(String),
}

impl Broker {
    fn start(brokers: Option<&str>) -> anyhow::Result<Broker> {
        Ok(match brokers {
            Some(brokers) => Broker::External(brokers.to_owned()),
            None => Broker::Embedded(MockCluster::new(1).context("starting the embedded broker")?),
        })
    }

    fn bootstrap(&self) -> String {
        match self {
            Broker::Embedded(mock) => mock.bootstrap_servers(),
            Broker::External(brokers) => brokers.clone(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Broker::Embedded(mock) => format!(
                "embedded broker (librdkafka mock cluster) at {}",
                mock.bootstrap_servers()
            ),
            Broker::External(brokers) => format!("Kafka at {brokers}"),
        }
    }

    /// Creates `topics` (those that exist are left alone): progress topics
    /// compacted, dead-letter topics with one partition, the others with
    /// [`PARTITIONS`].
    fn create(&self, topics: &[String], properties: &[(String, String)]) -> anyhow::Result<()> {
        let partitions = |t: &str| {
            if t.ends_with(".dead-letter") {
                1
            } else {
                PARTITIONS
            }
        };
        match self {
            Broker::Embedded(mock) => {
                for topic in topics {
                    mock.create_topic(topic, partitions(topic), 1)
                        .with_context(|| format!("creating topic {topic}"))?;
                }
                Ok(())
            }
            Broker::External(brokers) => {
                let mut config = ClientConfig::new();
                config.set("bootstrap.servers", brokers);
                for (key, value) in properties {
                    config.set(key, value);
                }
                let admin: AdminClient<DefaultClientContext> = config.create()?;
                let new: Vec<NewTopic<'_>> = topics
                    .iter()
                    .map(|t| {
                        let topic = NewTopic::new(t, partitions(t), TopicReplication::Fixed(1));
                        if t.ends_with(".progress") {
                            topic.set("cleanup.policy", "compact")
                        } else {
                            topic
                        }
                    })
                    .collect();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let options = AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(15)))
                    .request_timeout(Some(Duration::from_secs(15)));
                let results = runtime
                    .block_on(admin.create_topics(&new, &options))
                    .with_context(|| format!("creating the demo's topics on {brokers}"))?;
                for result in results {
                    match result {
                        Ok(_) => {}
                        Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
                    }
                }
                Ok(())
            }
        }
    }
}

/// What is wrong with the flags, if anything.
fn check(args: &DemoArgs) -> Result<(), String> {
    if !(args.speed.is_finite() && args.speed > 0.0 && args.speed <= 100_000.0) {
        return Err(format!(
            "--speed must be above 0 and at most 100000, not {}",
            args.speed
        ));
    }
    if !(args.hours.is_finite() && args.hours > 0.0 && args.hours <= 24.0 * 366.0) {
        return Err(format!(
            "--hours must be above 0 and at most a year, not {}",
            args.hours
        ));
    }
    if !(args.warmup.is_finite() && args.warmup >= 0.0 && args.warmup < args.hours) {
        return Err(format!(
            "--warmup must be at least 0 and less than --hours ({}), not {}",
            args.hours, args.warmup
        ));
    }
    if !(0.0..=1.0).contains(&args.episodes) {
        return Err(format!(
            "--episodes is a share from 0 to 1, not {}",
            args.episodes
        ));
    }
    Ok(())
}

/// Plans a compiled-in pipeline with its tables made the demo's topics.
fn plan(name: &str, sql: &str, bindings: &[Binding]) -> anyhow::Result<Pipeline> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the planner")?
        .block_on(Pipeline::plan_named(name, sql, bindings))
        .context("planning a shipped pipeline")
}

/// Runs the demo until Ctrl-C, SIGTERM or `--for`.
pub fn run(args: &DemoArgs, file: &Config) -> anyhow::Result<ExitCode> {
    if let Err(message) = check(args) {
        eprintln!("vigil demo: {message}");
        return Ok(ExitCode::from(exit::USAGE));
    }
    let prefix = if args.brokers.is_some() {
        "vigil-demo."
    } else {
        ""
    };
    let topics = Topics {
        vitals: format!("{prefix}vitals"),
        news2: format!("{prefix}news2-scores"),
        alerts: format!("{prefix}news2-alerts"),
        wards: format!("{prefix}ward-summary"),
    };
    let news2 = plan(
        "news2_per_patient",
        NEWS2_SQL,
        &[
            Binding::topic("vitals", &topics.vitals),
            Binding::topic("news2_scores", &topics.news2),
            Binding::option("news2_scores", "key", "patient_id"),
        ],
    )?;
    let alerts = plan(
        "news2_alerts",
        ALERTS_SQL,
        &[
            Binding::topic("news2_scores", &topics.news2),
            Binding::topic("news2_alerts", &topics.alerts),
            Binding::option("news2_alerts", "key", "patient_id"),
        ],
    )?;
    let wards = plan(
        "ward_summary",
        WARDS_SQL,
        &[
            Binding::topic("vitals", &topics.vitals),
            Binding::topic("ward_summary", &topics.wards),
            Binding::option("ward_summary", "key", "ward"),
        ],
    )?;

    let broker = Broker::start(args.brokers.as_deref())?;
    let bootstrap = broker.bootstrap();
    let properties = args.kafka_properties.clone();
    let config = |group: &str| {
        let mut config = KafkaConfig::new(bootstrap.clone(), group);
        config.properties.extend(properties.iter().cloned());
        config
    };
    let registry = prometheus::Registry::new();
    let mut news2_run = KafkaRun::new(&news2, config("vigil-demo-news2"))?
        .with_metrics(RunMetrics::new(&registry, "news2_per_patient")?);
    let mut alerts_run = KafkaRun::new(&alerts, config("vigil-demo-alerts"))?
        .with_metrics(RunMetrics::new(&registry, "news2_alerts")?);
    let mut wards_run = KafkaRun::new(&wards, config("vigil-demo-wards"))?
        .with_metrics(RunMetrics::new(&registry, "ward_summary")?);
    let mut needed = news2_run.topics();
    needed.extend(alerts_run.topics());
    needed.extend(wards_run.topics());
    needed.sort();
    needed.dedup();
    broker.create(&needed, &properties)?;
    let lives = vec![news2_run.live(), alerts_run.live(), wards_run.live()];
    let endpoints = Endpoints::new(registry, lives.clone())?;
    let http = args.http.as_deref().unwrap_or(&file.http.listen);
    let server = crate::http::serve("vigil demo", http, endpoints)?;

    let now = chrono::Utc::now().timestamp_millis();
    let cohort = CohortConfig {
        seed: args.seed,
        patients: args.patients as usize,
        wards: args.wards as usize,
        start_ms: now - (args.warmup * 3_600_000.0) as i64,
        duration_ms: (args.hours * 3_600_000.0) as i64,
        episode_share: args.episodes,
        faults: Faults::default(),
        ..CohortConfig::default()
    };
    let sim = Simulation::new(cohort.clone());
    let mut view = View::new(&sim.episodes());
    let mut output = match Output::kafka(&bootstrap, &topics.vitals, &properties)? {
        Ok(output) => output,
        Err(message) => {
            eprintln!("vigil demo: {message}");
            return Ok(ExitCode::from(exit::INVALID_PIPELINE));
        }
    };
    let pace = Pace {
        speed: args.speed,
        from_ms: now,
    };
    let header = vec![
        format!(
            "vigil demo: {} patients in {} wards, {} h of history then {}x real time; {}",
            args.patients,
            args.wards,
            args.warmup,
            args.speed,
            broker.describe()
        ),
        format!(
            "pipelines news2_per_patient.sql -> {}, news2_alerts.sql -> {}, ward_summary.sql -> {}; Ctrl-C stops",
            topics.news2, topics.alerts, topics.wards
        ),
    ];
    let screen = !args.plain && std::io::stdout().is_terminal();
    if !screen {
        for line in &header {
            println!("{line}");
        }
    }
    let deadline = args.run_for.map(|d| Instant::now() + d);
    let from_start = matches!(broker, Broker::Embedded(_));

    let outcome = crate::signals::run_serving_until_stopped("vigil demo", server, |stop| {
        std::thread::scope(|s| -> anyhow::Result<()> {
            let feeder = s.spawn(|| -> anyhow::Result<()> {
                emit(sim, &cohort, Shape::Wide, Some(pace), &mut output, stop)?;
                Ok(())
            });
            let runs = [
                s.spawn(|| news2_run.run(stop)),
                s.spawn(|| alerts_run.run(stop)),
                s.spawn(|| wards_run.run(stop)),
            ];
            let watched = watch(
                &mut view,
                &Watch {
                    bootstrap: &bootstrap,
                    properties: &properties,
                    topics: &topics,
                    lives: &lives,
                    header: &header,
                    screen,
                    deadline,
                    from_start,
                },
                stop,
                || runs.iter().any(|r| r.is_finished()),
            );
            stop.store(true, Ordering::Relaxed);
            let fed = feeder
                .join()
                .map_err(|_| anyhow::anyhow!("the simulator panicked"))?;
            for run in runs {
                run.join()
                    .map_err(|_| anyhow::anyhow!("a pipeline run panicked"))?
                    .context("running a shipped pipeline")?;
            }
            fed.context("feeding the simulated readings")?;
            watched
        })
    })?;
    outcome?;
    output.finish()?;
    println!(
        "vigil demo: stopped. {}",
        view.status(&flow(&lives, 0, 0.0))
    );
    Ok(ExitCode::SUCCESS)
}

/// What the watching loop reads and where it writes.
struct Watch<'a> {
    bootstrap: &'a str,
    properties: &'a [(String, String)],
    topics: &'a Topics,
    lives: &'a [Arc<LiveCounters>],
    header: &'a [String],
    screen: bool,
    deadline: Option<Instant>,
    /// Read the output topics from their beginning (fresh topics on the
    /// embedded broker), not from their end (a real Kafka's, which may hold an
    /// earlier demo's).
    from_start: bool,
}

/// Reads the pipelines' output topics into `view` and shows it, until `stop`,
/// the deadline, or `ended` says a run has ended.
fn watch(
    view: &mut View,
    watch: &Watch<'_>,
    stop: &AtomicBool,
    ended: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", watch.bootstrap)
        .set("group.id", "vigil-demo-view")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false");
    for (key, value) in watch.properties {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config.create().context("the view's consumer")?;
    let mut assignment = TopicPartitionList::new();
    for topic in [
        &watch.topics.news2,
        &watch.topics.alerts,
        &watch.topics.wards,
    ] {
        for partition in 0..PARTITIONS {
            let offset = if watch.from_start {
                Offset::Beginning
            } else {
                Offset::End
            };
            assignment.add_partition_offset(topic, partition, offset)?;
        }
    }
    consumer.assign(&assignment)?;

    let mut last_draw = Instant::now();
    let mut last_status = Instant::now();
    let mut last_consumed = 0;
    let mut out = std::io::stdout().lock();
    while !stop.load(Ordering::Relaxed)
        && !ended()
        && watch.deadline.is_none_or(|d| Instant::now() < d)
    {
        if let Some(polled) = consumer.poll(Duration::from_millis(100)) {
            let message = polled.context("reading the pipelines' output")?;
            let Some(row) = message
                .payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            else {
                continue;
            };
            let topic = message.topic();
            if topic == watch.topics.wards {
                view.ward(&row);
            } else if topic == watch.topics.news2 {
                view.score(&row);
            } else if let Some(alert) = view.alert(&row)
                && !watch.screen
            {
                writeln!(out, "{}", alert.line())?;
            }
        }
        let elapsed = last_draw.elapsed();
        if elapsed >= REFRESH {
            let flow = flow(watch.lives, last_consumed, elapsed.as_secs_f64());
            last_consumed = flow.consumed;
            last_draw = Instant::now();
            if watch.screen {
                // Clear the screen, cursor home, then the whole view.
                write!(out, "\x1b[2J\x1b[H{}", view.screen(watch.header, &flow))?;
            } else if last_status.elapsed() >= REFRESH * 5 {
                writeln!(out, "{}", view.status(&flow))?;
                last_status = Instant::now();
            }
            out.flush()?;
        }
    }
    Ok(())
}

/// The runs' counts now, and the reading rate since `before` readings
/// `seconds` ago.
fn flow(lives: &[Arc<LiveCounters>], before: u64, seconds: f64) -> Flow {
    let consumed = lives
        .first()
        .map_or(0, |l| l.consumed.load(Ordering::Relaxed));
    let lag = lives
        .iter()
        .map(|l| {
            l.lag_known
                .load(Ordering::Relaxed)
                .then(|| l.lag.load(Ordering::Relaxed))
        })
        .collect::<Option<Vec<u64>>>()
        .and_then(|lags| lags.into_iter().max());
    Flow {
        consumed,
        per_second: if seconds > 0.0 {
            consumed.saturating_sub(before) as f64 / seconds
        } else {
            0.0
        },
        lag,
        dead_lettered: lives
            .iter()
            .map(|l| l.dead_lettered.load(Ordering::Relaxed))
            .sum(),
    }
}
