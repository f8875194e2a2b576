//! The command line: subcommands and their flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// vigil: streaming early-warning scores for medical IoT vitals.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML; see README "Configuration"); environment
    /// variables and flags override what it sets.
    #[arg(long, global = true, env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score vitals from JSON lines: NEWS2 (with band, sub-scores, missing and
    /// invalid parameters), qSOFA, MEWS and SIRS for every line.
    #[command(after_help = SCORE_EXAMPLES)]
    Score(ScoreArgs),
    /// Validate a pipeline file and print its streaming plan: sources with their
    /// watermarks, operators and windows, sinks and output schemas.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Run a pipeline over its file sources: windows close as event time passes and
    /// at end of input; results go to the sinks, late rows to the late output.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Simulate a hospital: patients across wards, their monitors, wearables, cuffs
    /// and nursing rounds, some deteriorating, with the faults real devices have;
    /// to a file or a Kafka topic, with the episodes (ground truth) beside it.
    #[command(after_help = SIMULATE_EXAMPLES)]
    Simulate(SimulateArgs),
    /// Watch vigil work on a simulated hospital: an embedded Kafka-protocol
    /// broker, the simulator feeding it, the shipped NEWS2 and ward pipelines,
    /// and a live view of alerts, wards, throughput and lag.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
    /// Score the NEWS2 alert pipelines (or your edited copies) against a simulated
    /// cohort's ground truth: sensitivity, lead time and alarm burden.
    #[command(after_help = EVALUATE_EXAMPLES)]
    Evaluate(EvaluateArgs),
}

const EVALUATE_EXAMPLES: &str = "\
Examples:
  vigil evaluate                                   200 patients, 24 h, the shipped pipelines
  vigil evaluate --patients 1000 --hours 48 --seed 3
  vigil evaluate --alerts my_alerts.sql --check    exit 1 if the aims are missed
  vigil evaluate --json > evaluation.json

The simulator (faults on unless --clean) streams a cohort with labelled deterioration
episodes through the scoring pipeline (--scores, default the shipped
news2_per_patient.sql) and its output through the alert pipeline (--alerts, default
news2_alerts.sql), in process. The alert events are scored against the episodes:
- sensitivity: episodes whose clinical event falls inside the run that had an alert
  (raised, escalated or repeated) from onset to the event;
- lead time: from that first alert to the event (median; an alert's time is the
  observation time of the score that caused it);
- alarm burden: alerts outside episodes (before onset, or after recovery, 6 h after
  the event) per patient-day outside episodes.
Aims for NEWS2: sensitivity 0.95 or more, median lead 30 min or more, at most 1
alert per patient-day outside episodes.

Exit status: 0 done (with --check: and every aim met); 1 failure, or an aim missed
with --check; 2 invalid flags; 78 a pipeline that is not valid or does not fit.";

/// Flags of `vigil evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Patients in the simulated cohort.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub patients: u32,

    /// Wards they are spread over.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub wards: u32,

    /// Hours of simulated time.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,

    /// Seed: the same seed and flags give the same figures.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Share of patients who deteriorate during the run (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    pub episodes: f64,

    /// No device faults (artefacts, dropouts, duplicates, late delivery, clocks off).
    #[arg(long)]
    pub clean: bool,

    /// The scoring pipeline: one source table (fed the simulated vitals) and one
    /// sink table [default: the shipped news2_per_patient.sql].
    #[arg(long, value_name = "PIPELINE")]
    pub scores: Option<PathBuf>,

    /// The alert pipeline: one source table (fed the scores) and a sink with an
    /// alert policy [default: the shipped news2_alerts.sql].
    #[arg(long, value_name = "PIPELINE")]
    pub alerts: Option<PathBuf>,

    /// Also write the alert events here, as JSON lines.
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,

    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Exit 1 when an aim is missed (sensitivity, median lead, burden).
    #[arg(long)]
    pub check: bool,
}

const DEMO_EXAMPLES: &str = "\
Examples:
  vigil demo                                   200 patients, 8 wards, 60x real time
  vigil demo --patients 1000 --speed 10
  vigil demo --plain --for 2m > demo.log        lines instead of the screen, 2 minutes
  vigil demo --brokers 127.0.0.1:9092           on a real Kafka (creates vigil-demo.* topics)

Nothing else is needed: without --brokers the topics live on librdkafka's mock
cluster inside the process. The simulator first delivers --warmup hours of history
as fast as it can, then carries on --speed times faster than real time. The NEWS2
pipeline scores every patient each simulated minute; a patient whose band rises to
low-medium, medium or high is shown as an alert, with the simulation's ground truth
(the patient's deterioration episode, or none); a fall back to low shows as
resolved. Metrics are served as by vigil run (--http). Ctrl-C stops.";

/// Flags of `vigil demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Patients in the simulated hospital.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub patients: u32,

    /// Wards they are spread over.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub wards: u32,

    /// Simulated seconds per second of real time, after the warm-up.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,

    /// Simulated hours of history delivered at once before pacing starts.
    #[arg(long, default_value_t = 4.0)]
    pub warmup: f64,

    /// Simulated hours in all, warm-up included.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,

    /// Share of patients who deteriorate during the simulation (0 to 1).
    #[arg(long, default_value_t = 0.2)]
    pub episodes: f64,

    /// Seed of the simulation: the same seed, the same hospital.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// A real Kafka's bootstrap servers instead of the embedded broker.
    #[arg(long, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    /// A librdkafka property for every Kafka client, KEY=VALUE (repeatable).
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = property)]
    pub kafka_properties: Vec<(String, String)>,

    /// Serve /metrics, /healthz and /readyz here (port 0: any free port, printed
    /// on stderr; `off`: no server) [default: 127.0.0.1:9464].
    #[arg(long, env = "VIGIL_HTTP", value_name = "HOST:PORT")]
    pub http: Option<String>,

    /// Stop after this long (such as 90s, 5m or 1h) instead of waiting for Ctrl-C.
    #[arg(long = "for", value_name = "DURATION", value_parser = wall_duration)]
    pub run_for: Option<std::time::Duration>,

    /// Print alerts and a status line every 5 s instead of drawing the screen
    /// (the default when standard output is not a terminal).
    #[arg(long)]
    pub plain: bool,
}

fn wall_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let seconds = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "expected a duration such as 90s, 5m or 1h, got '{text}'"
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n * seconds < 1e9 => {
            Ok(std::time::Duration::from_secs_f64(n * seconds))
        }
        _ => Err(format!(
            "expected a duration such as 90s, 5m or 1h, got '{text}'"
        )),
    }
}

const SIMULATE_EXAMPLES: &str = "\
Examples:
  vigil simulate -o vitals.jsonl                     100 patients, 24 h, as fast as possible
  vigil simulate --patients 2000 --hours 6 --shape narrow -o narrow.jsonl
  vigil simulate --realtime --topic vitals --brokers 127.0.0.1:9092
  vigil simulate --realtime --speed 60 | vigil run pipelines/news2_per_patient.sql --path vitals=-

Each reading is one JSON message in the vitals format (wide: every vital a device
took; narrow: one measurement per message with a LOINC code and unit), keyed by
patient_id on Kafka. Devices: bedside monitors (30 % of patients) every 5 s or
wearables every 15 s (heart rate, SpO2, respiration), blood-pressure cuffs every
15-60 min, nursing rounds every 4 h (temperature, consciousness, respiration).
About 10 % of patients deteriorate (sepsis, respiratory failure, haemorrhage); each
episode's onset and clinical event go to the --truth file (default beside -o:
OUT.episodes.jsonl). Faults, unless --clean: motion artefacts, dropouts, duplicates,
late and out-of-order delivery, device clocks off by minutes.
The same flags and --seed give the same output.

As fast as possible by default, with a progress bar on a terminal; --realtime
paces messages by their delivery time from --start (default now in real time),
--speed N times faster.

Exit status: 0 done (or stopped with Ctrl-C); 1 failure (unwritable output,
undeliverable messages); 2 invalid flags.";

/// How readings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShapeArg {
    /// One message per reading, every vital it took.
    Wide,
    /// One message per measurement: code, value, unit.
    Narrow,
}

/// Flags of `vigil simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Patients in the cohort.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub patients: u32,

    /// Wards they are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub wards: u32,

    /// Hours of simulated time.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,

    /// Seed: the same seed and flags give the same output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Start of simulated time, RFC 3339 [default: 2026-11-24T00:00:00Z, or now with
    /// --realtime].
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,

    /// Share of patients who deteriorate during the run.
    #[arg(long, default_value_t = 0.1)]
    pub episodes: f64,

    /// Message shape.
    #[arg(long, value_enum, default_value_t = ShapeArg::Wide)]
    pub shape: ShapeArg,

    /// No faults: every reading delivered once, in time, by a device with a right
    /// clock.
    #[arg(long)]
    pub clean: bool,

    /// Pace messages by their delivery time instead of as fast as possible.
    #[arg(long)]
    pub realtime: bool,

    /// With --realtime: simulated seconds per real second.
    #[arg(long, default_value_t = 1.0, requires = "realtime")]
    pub speed: f64,

    /// Write JSON lines here ('-' for standard output) [default: standard output].
    #[arg(short, long, conflicts_with = "topic")]
    pub output: Option<PathBuf>,

    /// Send to this Kafka topic instead (needs --brokers, VIGIL_BROKERS or
    /// `[kafka] brokers`).
    #[arg(long)]
    pub topic: Option<String>,

    /// Kafka bootstrap servers, with --topic.
    #[arg(long, env = "VIGIL_BROKERS", value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    /// A librdkafka property for the producer, KEY=VALUE (repeatable).
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = property)]
    pub kafka_properties: Vec<(String, String)>,

    /// Write the episodes (ground truth) here, one JSON object per line.
    #[arg(long, value_name = "PATH")]
    pub truth: Option<PathBuf>,
}

const RUN_EXAMPLES: &str = "\
Examples:
  vigil run pipelines/news2_per_patient.sql
  vigil run pipelines/ward_summary.sql --path vitals=export.jsonl --path ward_summary=out.jsonl
  zcat day.jsonl.gz | vigil run pipelines/news2_per_patient.sql --path vitals=-

Tables with connector = 'file' read and write JSON lines; path '-' is standard input
for a source and standard output for a sink. --path TABLE=PATH replaces a table's
path, for replays and backfills. Rejected lines are reported on stderr with their
line number and reason; late rows (older than the watermark) go to the source's
late_path option, or stderr. A summary of counts goes to stderr at the end.

Tables with connector = 'kafka' are topics: the instance joins the consumer group
(--group), reads its share of the source partitions and runs until Ctrl-C or
SIGTERM; start another instance with the same group to share the work.
  vigil run pipelines/news2_kafka.sql --brokers 127.0.0.1:9092 --group wards
  vigil run pipelines/news2_per_patient.sql --brokers 127.0.0.1:9092 \\
      --topic vitals=vitals --topic news2_scores=news2-scores \\
      --with news2_scores.key=patient_id
  VIGIL_BROKERS=kafka:9093 vigil run alerts.sql --kafka security.protocol=SSL \\
      --kafka ssl.ca.location=/etc/ssl/ca.pem
Messages that cannot be decoded, and late rows, go to the source's dead-letter topic
(option dead_letter_topic, default <topic>.dead-letter) with the reason in headers.

Exit status: 0 all input used (files) or stopped on request (Kafka); 65 some lines
rejected (the rest were processed); 78 the pipeline or its Kafka setup is invalid
(a missing topic, unreachable brokers at start); 1 failure (unreadable input,
unwritable output, undeliverable results).";

/// Flags of `vigil run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline SQL file.
    pub pipeline: PathBuf,

    /// Replace a table's path: TABLE=PATH (repeatable; `-` is stdin/stdout).
    #[arg(long = "path", value_name = "TABLE=PATH", value_parser = table_path)]
    pub paths: Vec<(String, String)>,

    #[command(flatten)]
    pub tables: TableFlags,

    /// Lines (or Kafka messages) read per Arrow batch [default: 8192].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,

    /// Kafka bootstrap servers, for pipelines whose tables are Kafka topics.
    #[arg(long, env = "VIGIL_BROKERS", value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    /// Consumer group of the instances sharing the work [default: vigil-<file stem>].
    #[arg(long, env = "VIGIL_GROUP", value_name = "ID")]
    pub group: Option<String>,

    /// A librdkafka property for every Kafka client, KEY=VALUE (repeatable; TLS,
    /// SASL, timeouts as librdkafka documents them).
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = property)]
    pub kafka_properties: Vec<(String, String)>,

    /// Commit without writing the state to the progress log: a partition's
    /// next owner replays the input its windows still hold instead of
    /// restoring their state.
    #[arg(long)]
    pub no_checkpoints: bool,

    /// Exactly-once: each commit is one Kafka transaction holding the outputs,
    /// state and source offsets since the last one (readers use
    /// isolation.level=read_committed).
    #[arg(long, conflicts_with = "no_checkpoints")]
    pub exactly_once: bool,

    /// The transactional.id of this instance in exactly-once mode [default:
    /// <group>.<pid>.<time>, unique per run].
    #[arg(long, env = "VIGIL_TRANSACTIONAL_ID", value_name = "ID")]
    pub transactional_id: Option<String>,

    /// Serve /metrics, /healthz and /readyz here while running over Kafka
    /// (port 0: any free port, printed on stderr; `off`: no server)
    /// [default: 127.0.0.1:9464].
    #[arg(long, env = "VIGIL_HTTP", value_name = "HOST:PORT")]
    pub http: Option<String>,
}

fn property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

fn table_path(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((table, path)) if !table.is_empty() && !path.is_empty() => {
            Ok((table.to_owned(), path.to_owned()))
        }
        _ => Err(format!("expected TABLE=PATH, got '{text}'")),
    }
}

fn table_topic(text: &str) -> Result<(String, String), String> {
    table_path(text).map_err(|_| format!("expected TABLE=TOPIC, got '{text}'"))
}

fn table_option(text: &str) -> Result<(String, String, String), String> {
    let parsed = text.split_once('=').and_then(|(name, value)| {
        let (table, option) = name.split_once('.')?;
        (!table.is_empty() && !option.is_empty())
            .then(|| (table.to_owned(), option.to_owned(), value.to_owned()))
    });
    parsed.ok_or_else(|| format!("expected TABLE.OPTION=VALUE, got '{text}'"))
}

/// Flags that rebind a pipeline's tables (of `vigil run` and `vigil check`).
#[derive(Debug, Args)]
pub struct TableFlags {
    /// Make a table a Kafka topic: TABLE=TOPIC (repeatable); the table keeps its
    /// columns, watermark and format, and loses its file options.
    #[arg(long = "topic", value_name = "TABLE=TOPIC", value_parser = table_topic)]
    pub topics: Vec<(String, String)>,

    /// Set one of a table's WITH options: TABLE.OPTION=VALUE (repeatable), such
    /// as news2_scores.key=patient_id or vitals.idle_timeout='5 minutes'.
    #[arg(long = "with", value_name = "TABLE.OPTION=VALUE", value_parser = table_option)]
    pub options: Vec<(String, String, String)>,
}

impl TableFlags {
    /// The table bindings the flags ask for: `--topic` first, then `--with`.
    pub fn bindings(&self) -> Vec<vigil_engine::plan::Binding> {
        use vigil_engine::plan::Binding;
        let topics = self
            .topics
            .iter()
            .map(|(t, topic)| Binding::topic(t, topic));
        let options = self
            .options
            .iter()
            .map(|(t, key, value)| Binding::option(t, key, value));
        topics.chain(options).collect()
    }
}

const CHECK_EXAMPLES: &str = "\
Examples:
  vigil check pipelines/news2_per_patient.sql

An error names the line of the pipeline file and the construct the streaming engine
cannot run (ORDER BY or LIMIT over a stream, joins, undeclared tables, windows on a
column without a WATERMARK, ...).

Exit status: 0 the pipeline is valid; 78 it is not; 1 the file cannot be read.";

/// Flags of `vigil check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The pipeline SQL file.
    pub pipeline: PathBuf,

    #[command(flatten)]
    pub tables: TableFlags,
}

const SCORE_EXAMPLES: &str = "\
Examples:
  vigil score samples/vitals.jsonl              score a file, results on stdout
  vigil score export.jsonl -o scored.jsonl      write results to a file
  cat export.jsonl | vigil score -              read standard input

Each input line is one JSON object with patient_id, observed_at (RFC 3339 or epoch
milliseconds) and any of resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp,
diastolic_bp, heart_rate, consciousness (ACVPU letter or word), temperature (Celsius).
Each output line is the input row plus news2, news2_band, news2_partial,
news2_subscores, news2_missing, news2_invalid, qsofa, mews and sirs.
A line that cannot be read is reported on stderr with its line number and skipped.

Exit status: 0 every line scored; 65 some lines rejected (the rest were scored);
1 failure (unreadable input, unwritable output).";

/// Flags of `vigil score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// JSON-lines file to score; `-` for standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,

    /// Write results here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,

    /// Rows scored per Arrow batch.
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Reject readings observed more than this many hours in the future (device clocks
    /// set ahead).
    #[arg(long, default_value_t = 24)]
    pub max_future_hours: u32,
}
