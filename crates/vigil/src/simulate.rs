//! `vigil simulate`: a simulated hospital's device messages to a file or a Kafka
//! topic, as fast as possible or in (scaled) real time, and its ground truth.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use vigil_sim::json::{self, Shape};
use vigil_sim::{CohortConfig, Faults, Simulation};

use crate::cli::{ShapeArg, SimulateArgs};
use crate::config::Config;
use crate::exit;

/// The default start of simulated time when not in real time: 2026-11-24T00:00Z.
pub(crate) const DEFAULT_START_MS: i64 = 1_795_478_400_000;

/// Runs the simulation to its end or until Ctrl-C / SIGTERM.
pub fn run(args: &SimulateArgs, file: &Config) -> anyhow::Result<ExitCode> {
    let config = match cohort(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("vigil simulate: {message}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    if args.topic.is_some() && args.brokers.is_none() && file.kafka.brokers.is_none() {
        eprintln!(
            "vigil simulate: --topic needs --brokers (or VIGIL_BROKERS, or [kafka] brokers in the configuration)"
        );
        return Ok(ExitCode::from(exit::USAGE));
    }
    let sim = Simulation::new(config.clone());
    if let Some(path) = truth_path(args) {
        write_truth(&path, &sim)?;
    }
    let mut out = match Output::open(args, file)? {
        Ok(out) => out,
        Err(message) => {
            eprintln!("vigil simulate: {message}");
            return Ok(ExitCode::from(exit::INVALID_PIPELINE));
        }
    };
    let shape = match args.shape {
        ShapeArg::Wide => Shape::Wide,
        ShapeArg::Narrow => Shape::Narrow,
    };
    let pace = args.realtime.then_some(Pace {
        speed: args.speed,
        from_ms: config.start_ms,
    });
    let started = Instant::now();
    let counts = crate::signals::run_until_stopped("vigil simulate", |stop| {
        emit(sim, &config, shape, pace, &mut out, stop)
    })??;
    out.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "vigil simulate: {} readings of {} patients as {} messages in {seconds:.1} s ({:.0} messages/s)",
        counts.readings,
        config.patients,
        counts.messages,
        counts.messages as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// The cohort the flags describe, or what is wrong with them.
fn cohort(args: &SimulateArgs) -> Result<CohortConfig, String> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(format!("--speed must be above 0, not {}", args.speed));
    }
    let start_ms = match &args.start {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("--start {text}: not an RFC 3339 time ({e})"))?
            .timestamp_millis(),
        None if args.realtime => chrono::Utc::now().timestamp_millis(),
        None => DEFAULT_START_MS,
    };
    let shape = CohortShape {
        patients: args.patients,
        wards: args.wards,
        hours: args.hours,
        seed: args.seed,
        episodes: args.episodes,
        clean: args.clean,
    };
    shape.config(start_ms)
}

/// The flags that shape a cohort, shared by `vigil simulate` and `vigil evaluate`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CohortShape {
    /// Patients.
    pub patients: u32,
    /// Wards.
    pub wards: u32,
    /// Simulated hours.
    pub hours: f64,
    /// Seed.
    pub seed: u64,
    /// Share of patients who deteriorate.
    pub episodes: f64,
    /// No faults.
    pub clean: bool,
}

impl CohortShape {
    /// The cohort, starting at `start_ms`, or what is wrong with the flags.
    pub(crate) fn config(self, start_ms: i64) -> Result<CohortConfig, String> {
        if !(self.hours.is_finite() && self.hours > 0.0 && self.hours <= 24.0 * 366.0) {
            return Err(format!(
                "--hours must be above 0 and at most a year, not {}",
                self.hours
            ));
        }
        if !(0.0..=1.0).contains(&self.episodes) {
            return Err(format!(
                "--episodes is a share from 0 to 1, not {}",
                self.episodes
            ));
        }
        Ok(CohortConfig {
            seed: self.seed,
            patients: self.patients as usize,
            wards: self.wards as usize,
            start_ms,
            duration_ms: (self.hours * 3_600_000.0) as i64,
            episode_share: self.episodes,
            faults: if self.clean {
                Faults::none()
            } else {
                Faults::default()
            },
            ..CohortConfig::default()
        })
    }
}

/// Where the ground truth goes: `--truth`, else beside a file output.
fn truth_path(args: &SimulateArgs) -> Option<PathBuf> {
    if let Some(path) = &args.truth {
        return Some(path.clone());
    }
    let output = args.output.as_ref().filter(|p| p.as_os_str() != "-")?;
    let stem = output.file_stem()?.to_string_lossy().into_owned();
    Some(output.with_file_name(format!("{stem}.episodes.jsonl")))
}

fn write_truth(path: &Path, sim: &Simulation) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut file = BufWriter::new(file);
    for episode in sim.episodes() {
        writeln!(file, "{}", json::episode(&episode))?;
    }
    file.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// How to pace a simulation: readings delivered before `from_ms` (simulated
/// time) go at once, later ones `speed` times faster than real time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Simulated seconds per second of wall clock.
    pub speed: f64,
    /// Where pacing starts, in simulated time (ms since the epoch).
    pub from_ms: i64,
}

/// What was emitted.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    readings: u64,
    messages: u64,
}

/// Writes every reading's messages in delivery order, pacing them if asked;
/// stops early when `stop` is set.
pub(crate) fn emit(
    sim: Simulation,
    config: &CohortConfig,
    shape: Shape,
    pace: Option<Pace>,
    out: &mut Output,
    stop: &AtomicBool,
) -> anyhow::Result<Counts> {
    let progress = match pace {
        None => {
            let bar = ProgressBar::new(config.duration_ms.max(1) as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {percent:>3}% of simulated time, {msg} [{elapsed_precise}, ETA {eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        Some(_) => ProgressBar::hidden(),
    };
    let wall = Instant::now();
    let mut counts = Counts::default();
    for reading in sim {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(Pace { speed, from_ms }) = pace {
            let due = (reading.delivered_at_ms - from_ms).max(0) as f64 / speed;
            loop {
                let ahead = due - wall.elapsed().as_secs_f64() * 1000.0;
                if ahead <= 0.0 || stop.load(Ordering::Relaxed) {
                    break;
                }
                out.flush()?;
                std::thread::sleep(Duration::from_secs_f64((ahead / 1000.0).min(0.2)));
            }
        }
        let key = vigil_sim::cohort::patient_id(reading.patient);
        for message in json::messages(&reading, shape) {
            out.send(&key, &message, reading.delivered_at_ms)?;
            counts.messages += 1;
        }
        counts.readings += 1;
        if counts.readings % 4096 == 0 {
            progress.set_position((reading.true_at_ms - config.start_ms).max(0) as u64);
            progress.set_message(format!("{} messages", counts.messages));
        }
    }
    progress.finish_and_clear();
    Ok(counts)
}

/// Where messages go.
pub(crate) enum Output {
    Lines(BufWriter<Box<dyn Write + Send>>),
    Kafka {
        producer: ThreadedProducer<Deliveries>,
        topic: String,
    },
}

impl Output {
    /// Opens the output the flags name; `Ok(Err(message))` for a Kafka setup that
    /// cannot work (unreachable brokers, a missing topic).
    fn open(args: &SimulateArgs, file: &Config) -> anyhow::Result<Result<Output, String>> {
        if let Some(topic) = &args.topic {
            let brokers = args
                .brokers
                .clone()
                .or_else(|| file.kafka.brokers.clone())
                .unwrap_or_default();
            let properties: Vec<(String, String)> = file
                .kafka
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(args.kafka_properties.iter().cloned())
                .collect();
            return Output::kafka(&brokers, topic, &properties);
        }
        let writer: Box<dyn Write + Send> = match &args.output {
            Some(path) if path.as_os_str() != "-" => Box::new(
                File::create(path).with_context(|| format!("creating {}", path.display()))?,
            ),
            _ => Box::new(std::io::stdout()),
        };
        Ok(Ok(Output::Lines(BufWriter::with_capacity(1 << 16, writer))))
    }

    /// An idempotent producer to `topic` on `brokers` (with librdkafka
    /// `properties`); `Ok(Err(message))` if the brokers cannot be reached or the
    /// topic does not exist.
    pub(crate) fn kafka(
        brokers: &str,
        topic: &str,
        properties: &[(String, String)],
    ) -> anyhow::Result<Result<Output, String>> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            // A producer's metadata requests create missing topics on brokers
            // that allow it; a typo must be an error instead.
            .set("allow.auto.create.topics", "false");
        for (key, value) in properties {
            config.set(key, value);
        }
        let producer: ThreadedProducer<Deliveries> =
            config.create_with_context(Deliveries::default())?;
        let metadata = match producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(15))
        {
            Ok(metadata) => metadata,
            Err(e) => {
                return Ok(Err(format!(
                    "cannot reach Kafka at {brokers} within 15 s: {e}"
                )));
            }
        };
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Ok(Err(format!(
                "topic {topic} does not exist on {brokers} (create it first)"
            )));
        }
        Ok(Ok(Output::Kafka {
            producer,
            topic: topic.to_owned(),
        }))
    }

    /// Writes one message; a Kafka message is stamped with `delivered_at_ms`,
    /// when it reached the gateway in simulated time (so that a consumer can
    /// tell a device clock running fast from a reading on time).
    fn send(&mut self, key: &str, message: &str, delivered_at_ms: i64) -> anyhow::Result<()> {
        match self {
            Output::Lines(writer) => {
                writer.write_all(message.as_bytes())?;
                writer.write_all(b"\n")?;
            }
            Output::Kafka { producer, topic } => {
                producer.context().check()?;
                let mut record = BaseRecord::to(topic)
                    .key(key)
                    .payload(message)
                    .timestamp(delivered_at_ms);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((e, back))
                            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                        {
                            record = back;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err((e, _)) => anyhow::bail!("sending to {topic}: {e}"),
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes what was sent visible downstream (a file reader, a consumer).
    fn flush(&mut self) -> anyhow::Result<()> {
        if let Output::Lines(writer) = self {
            writer.flush()?;
        }
        Ok(())
    }

    /// Flushes everything, and for Kafka waits until the broker has it all.
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Lines(mut writer) => writer.flush()?,
            Output::Kafka { producer, topic } => {
                producer
                    .flush(Duration::from_secs(60))
                    .with_context(|| format!("delivering to {topic}"))?;
                producer.context().check()?;
            }
        }
        Ok(())
    }
}

/// The producer's delivery reports: the first failure, kept to stop the run.
#[derive(Default)]
pub(crate) struct Deliveries {
    failed: Mutex<Option<String>>,
    count: AtomicU64,
}

impl Deliveries {
    fn check(&self) -> anyhow::Result<()> {
        match self.failed.lock() {
            Ok(failed) => match failed.as_ref() {
                Some(reason) => anyhow::bail!(
                    "a message could not be delivered ({reason}); {} delivered",
                    self.count.load(Ordering::Relaxed)
                ),
                None => Ok(()),
            },
            Err(_) => anyhow::bail!("delivery reports poisoned"),
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if let Ok(mut failed) = self.failed.lock() {
                    failed.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}
