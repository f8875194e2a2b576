//! `vigil evaluate`: a simulated cohort through the scoring and alert pipelines,
//! in process, and the alert events scored against the simulation's ground truth
//! (see [`vigil_sim::evaluation`] for the definitions).
//!
//! Three threads joined by OS pipes, so nothing is written to disk and memory
//! stays flat however long the run: the simulator writes JSON lines into the
//! scoring pipeline, whose sink writes into the alert pipeline, whose events
//! are kept (they are few) and scored at the end. The pipelines run exactly as
//! `vigil run` runs them over files.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde_json::{Value, json};
use vigil_engine::EngineError;
use vigil_engine::files::JsonLinesSource;
use vigil_engine::plan::{Job, Pipeline, name_of};
use vigil_engine::run::{Outputs, RunReport, run_sources};
use vigil_sim::evaluation::{AlertEvent, Evaluation, EventKind, evaluate};
use vigil_sim::json::{self as sim_json, Shape};
use vigil_sim::{CohortConfig, Simulation};

use crate::cli::EvaluateArgs;
use crate::exit;
use crate::simulate::{CohortShape, DEFAULT_START_MS};

/// The shipped scoring pipeline.
const SCORES_SQL: &str = include_str!("../../../pipelines/news2_per_patient.sql");
/// The shipped alert pipeline.
const ALERTS_SQL: &str = include_str!("../../../pipelines/news2_alerts.sql");

/// The aims of the NEWS2 alert pipeline (issue 6): sensitivity, median lead time
/// in minutes, alerts per patient-day outside episodes.
const AIM_SENSITIVITY: f64 = 0.95;
const AIM_LEAD_MIN: f64 = 30.0;
const AIM_BURDEN: f64 = 1.0;

/// Lines per batch through both pipelines.
const BATCH: usize = 8192;

/// Runs the evaluation and prints its report.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    let shape = CohortShape {
        patients: args.patients,
        wards: args.wards,
        hours: args.hours,
        seed: args.seed,
        episodes: args.episodes,
        clean: args.clean,
    };
    let config = match shape.config(DEFAULT_START_MS) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("vigil evaluate: {message}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let scores_file = load(args.scores.as_deref(), "news2_per_patient.sql", SCORES_SQL)?;
    let alerts_file = load(args.alerts.as_deref(), "news2_alerts.sql", ALERTS_SQL)?;
    let stages = match plan(&scores_file, &alerts_file) {
        Ok(stages) => stages,
        Err(message) => {
            eprintln!("vigil evaluate: {message}");
            return Ok(ExitCode::from(exit::INVALID_PIPELINE));
        }
    };
    let outcome = run_stages(&config, &stages)?;
    if let Some(path) = &args.events {
        std::fs::write(path, &outcome.events)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let alerts = parse_events(&outcome.events, &stages.key_column)?;
    let end_ms = config.start_ms + config.duration_ms;
    let evaluation = evaluate(
        config.start_ms,
        end_ms,
        config.patients,
        &outcome.episodes,
        &alerts,
    );
    let aims = Aims::of(&evaluation);
    let context = Report {
        config: &config,
        scores: &scores_file.label,
        alerts: &alerts_file.label,
        outcome: &outcome,
        events: alerts.len(),
    };
    if args.json {
        println!("{}", report_json(&context, &evaluation, &aims));
    } else {
        print!("{}", report_text(&context, &evaluation, &aims));
    }
    Ok(if args.check && !aims.all_met() {
        ExitCode::from(exit::FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// A pipeline's name and text: the file given, or the shipped one.
fn load(path: Option<&Path>, shipped: &str, text: &str) -> anyhow::Result<Source> {
    match path {
        Some(path) => Ok(Source {
            label: path.display().to_string(),
            name: name_of(path),
            sql: std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        }),
        None => Ok(Source {
            label: format!("{shipped} (shipped)"),
            name: name_of(Path::new(shipped)),
            sql: text.to_owned(),
        }),
    }
}

/// A pipeline file to evaluate.
struct Source {
    /// How messages name it: its path, or the shipped file's name.
    label: String,
    /// The pipeline's name (its file's stem), in the alerts it raises.
    name: String,
    /// Its text.
    sql: String,
}

/// The two planned stages and how they join.
struct Stages {
    scores: Pipeline,
    alerts: Pipeline,
    /// The alert sink's key column (the patient).
    key_column: String,
}

/// Plans both pipelines and checks that they fit: the scoring pipeline reads
/// one source and writes one sink; the alert pipeline reads one source and
/// writes alert events.
fn plan(scores: &Source, alerts: &Source) -> Result<Stages, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("starting the planner: {e}"))?;
    let planned = |source: &Source| {
        runtime
            .block_on(Pipeline::plan_named(&source.name, &source.sql, &[]))
            .map_err(|e| format!("{}: {e}", source.label))
    };
    let (scores_name, alerts_name) = (&scores.label, &alerts.label);
    let scores = planned(scores)?;
    let alerts = planned(alerts)?;
    one(&scores, |j| &j.source.name, scores_name, "source table")?;
    one(&scores, |j| &j.sink.name, scores_name, "sink table")?;
    one(&alerts, |j| &j.source.name, alerts_name, "source table")?;
    let (alert_job, settings) = alerts
        .jobs
        .iter()
        .find_map(|j| j.alerts.as_ref().map(|a| (j, a)))
        .ok_or_else(|| {
            format!("{alerts_name}: no sink with an alert policy (alert_key, alert_severity, alert_time)")
        })?;
    let key_column = alert_job
        .logical_plan
        .schema()
        .fields()
        .get(settings.key)
        .map(|f| f.name().clone())
        .ok_or_else(|| format!("{alerts_name}: the alert key column is missing"))?;
    Ok(Stages {
        scores,
        alerts,
        key_column,
    })
}

/// Checks that every job of `pipeline` names the same table through `name`.
fn one(
    pipeline: &Pipeline,
    name: impl Fn(&Job) -> &String,
    file: &str,
    what: &str,
) -> Result<(), String> {
    let mut names: Vec<&String> = pipeline.jobs.iter().map(name).collect();
    names.sort();
    names.dedup();
    match names.as_slice() {
        [_] => Ok(()),
        [] => Err(format!("{file}: no INSERT")),
        more => Err(format!(
            "{file}: evaluation needs one {what}, not {} ({})",
            more.len(),
            more.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// What the run produced.
struct Outcome {
    episodes: Vec<vigil_sim::Episode>,
    readings: u64,
    scores: RunReport,
    alerts: RunReport,
    events: Vec<u8>,
}

/// Streams the simulation through both stages.
fn run_stages(config: &CohortConfig, stages: &Stages) -> anyhow::Result<Outcome> {
    let sim = Simulation::new(config.clone());
    let episodes = sim.episodes();
    let (vitals_in, vitals_out) = io::pipe().context("opening a pipe")?;
    let (scores_in, scores_out) = io::pipe().context("opening a pipe")?;
    let events = SharedBuffer::default();
    let (readings, scores, alerts) = std::thread::scope(|scope| {
        let feed = scope.spawn(move || feed(sim, vitals_out));
        let scoring = scope.spawn(move || stage(&stages.scores, vitals_in, Box::new(scores_out)));
        let alerting = stage(&stages.alerts, scores_in, Box::new(events.clone()));
        let scoring = scoring
            .join()
            .map_err(|_| anyhow::anyhow!("the scoring stage panicked"))?;
        let readings = feed
            .join()
            .map_err(|_| anyhow::anyhow!("the simulator panicked"))?;
        // The first error in stream order is the one worth reporting: a stage
        // downstream of a failure only sees its input end early.
        let readings = readings.context("simulating")?;
        let scores = scoring.context("running the scoring pipeline")?;
        let alerts = alerting.context("running the alert pipeline")?;
        anyhow::Ok((readings, scores, alerts))
    })?;
    Ok(Outcome {
        episodes,
        readings,
        scores,
        alerts,
        events: events.take(),
    })
}

/// Writes every reading of `sim` as a JSON line.
fn feed(sim: Simulation, out: impl Write) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut readings = 0;
    for reading in sim {
        for message in sim_json::messages(&reading, Shape::Wide) {
            out.write_all(message.as_bytes())?;
            out.write_all(b"\n")?;
        }
        readings += 1;
    }
    out.flush()?;
    Ok(readings)
}

/// Runs `pipeline` over the JSON lines of `input`, its one sink written to
/// `output` and late rows dropped (they are counted in the report).
fn stage(
    pipeline: &Pipeline,
    input: impl Read + Send + 'static,
    output: Box<dyn Write + Send>,
) -> Result<RunReport, EngineError> {
    let sink = pipeline
        .jobs
        .iter()
        .find(|j| j.alerts.is_some())
        .or_else(|| pipeline.jobs.first())
        .map(|j| j.sink.name.clone())
        .unwrap_or_default();
    let mut outputs = Outputs::to_writers(
        pipeline,
        [(
            sink,
            Box::new(BufWriter::with_capacity(1 << 16, output)) as Box<dyn Write + Send>,
        )]
        .into_iter()
        .collect(),
        |_| Box::new(io::sink()),
    )?;
    let mut input = Some(input);
    let open = |table: &vigil_engine::sql::ddl::TableDecl| {
        let reader = input
            .take()
            .ok_or_else(|| EngineError::Internal("a second source table".to_owned()))?;
        JsonLinesSource::from_reader(
            table,
            Box::new(BufReader::with_capacity(1 << 16, reader)),
            BATCH,
            vigil_formats::json::DEFAULT_MAX_MESSAGE_BYTES,
            format!("table {} (simulated)", table.name),
        )
    };
    let report = run_sources(pipeline, open, &mut outputs, |_, _| {})?;
    drop(outputs);
    Ok(report)
}

/// A writer into memory that several owners share.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("buffer poisoned"))?
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The alert events of the alert sink's JSON lines.
fn parse_events(lines: &[u8], key_column: &str) -> anyhow::Result<Vec<AlertEvent>> {
    let text = std::str::from_utf8(lines).context("alert events are not UTF-8")?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let row: Value = serde_json::from_str(line)
                .with_context(|| format!("alert event {}: not JSON", i + 1))?;
            let field = |name: &str| {
                row.get(name)
                    .and_then(Value::as_str)
                    .with_context(|| format!("alert event {}: no text {name}", i + 1))
            };
            let kind = field("event")?;
            let at = field("last_seen")?;
            Ok(AlertEvent {
                patient_id: field(key_column)?.to_owned(),
                kind: EventKind::parse(kind)
                    .with_context(|| format!("alert event {}: unknown event {kind}", i + 1))?,
                severity: field("severity")?.to_owned(),
                at_ms: chrono::DateTime::parse_from_rfc3339(at)
                    .with_context(|| format!("alert event {}: last_seen {at}", i + 1))?
                    .timestamp_millis(),
            })
        })
        .collect()
}

/// Whether each aim is met (`None`: no figure to judge).
struct Aims {
    sensitivity: Option<bool>,
    lead: Option<bool>,
    burden: Option<bool>,
}

impl Aims {
    fn of(e: &Evaluation) -> Aims {
        Aims {
            sensitivity: e.sensitivity().map(|s| s >= AIM_SENSITIVITY),
            lead: e
                .median_lead_ms()
                .map(|ms| ms as f64 / 60_000.0 >= AIM_LEAD_MIN),
            burden: e.burden.per_patient_day().map(|b| b <= AIM_BURDEN),
        }
    }

    /// Every aim met (a figure that cannot be computed is not met).
    fn all_met(&self) -> bool {
        [self.sensitivity, self.lead, self.burden]
            .iter()
            .all(|a| *a == Some(true))
    }
}

fn verdict(aim: Option<bool>) -> &'static str {
    match aim {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "no figure",
    }
}

/// What the report says besides the evaluation: the cohort, the pipelines and
/// the run's counts.
struct Report<'a> {
    config: &'a CohortConfig,
    scores: &'a str,
    alerts: &'a str,
    outcome: &'a Outcome,
    events: usize,
}

fn minutes(ms: i64) -> f64 {
    ms as f64 / 60_000.0
}

fn fmt_option(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn report_text(c: &Report<'_>, e: &Evaluation, aims: &Aims) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let hours = c.config.duration_ms as f64 / 3_600_000.0;
    let faults = if c.config.faults == vigil_sim::Faults::none() {
        "no faults"
    } else {
        "device faults on"
    };
    let _ = writeln!(
        s,
        "vigil evaluate: {} patients, {} wards, {hours} h simulated (seed {}, {faults})",
        c.config.patients, c.config.wards, c.config.seed
    );
    let _ = writeln!(s, "  pipelines: {} -> {}", c.scores, c.alerts);
    let late: u64 = c.outcome.scores.jobs.iter().map(|j| j.rows_late).sum();
    let rejected: u64 = c.outcome.scores.sources.iter().map(|s| s.rejected).sum();
    let scores: u64 = c.outcome.scores.jobs.iter().map(|j| j.rows_out).sum();
    let _ = writeln!(
        s,
        "  {} readings ({rejected} rejected, {late} late), {scores} scores, {} alert events\n",
        c.outcome.readings, c.events
    );
    let leads = e.leads_ms();
    let _ = writeln!(
        s,
        "episodes: {} ({} with their clinical event inside the run)",
        e.episodes.len(),
        e.judged()
    );
    let _ = writeln!(
        s,
        "  sensitivity    {} of {} alerted before the event = {}   aim >= {AIM_SENSITIVITY}: {}",
        e.detected(),
        e.judged(),
        fmt_option(e.sensitivity(), 2),
        verdict(aims.sensitivity)
    );
    let _ = writeln!(
        s,
        "  lead time      median {} min (shortest {}, longest {})   aim >= {AIM_LEAD_MIN} min: {}",
        fmt_option(e.median_lead_ms().map(minutes), 0),
        fmt_option(leads.first().map(|&ms| minutes(ms)), 0),
        fmt_option(leads.last().map(|&ms| minutes(ms)), 0),
        verdict(aims.lead)
    );
    for kind in vigil_sim::EpisodeKind::ALL {
        let of_kind: Vec<_> = e
            .episodes
            .iter()
            .filter(|o| o.judged && o.episode.kind == kind)
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        let detected = of_kind.iter().filter(|o| o.first_alert.is_some()).count();
        let _ = writeln!(
            s,
            "  {:<20} {detected} of {} detected",
            kind.label(),
            of_kind.len()
        );
    }
    for missed in e
        .episodes
        .iter()
        .filter(|o| o.judged && o.first_alert.is_none())
    {
        let _ = writeln!(
            s,
            "  missed: {} {} (onset {}, event {})",
            missed.episode.patient_id,
            missed.episode.kind.label(),
            sim_json::timestamp(missed.episode.onset_ms),
            sim_json::timestamp(missed.episode.event_ms)
        );
    }
    let b = &e.burden;
    let _ = writeln!(s, "\nalarm burden outside episodes:");
    let _ = writeln!(
        s,
        "  {} alerts in {:.1} patient-days = {} per patient-day   aim <= {AIM_BURDEN}: {}",
        b.alerts(),
        b.patient_days,
        fmt_option(b.per_patient_day(), 2),
        verdict(aims.burden)
    );
    let kinds: Vec<String> = b
        .by_kind
        .iter()
        .map(|(k, n)| format!("{} {n}", k.label()))
        .collect();
    let severities: Vec<String> = b
        .by_severity
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        s,
        "  new alerts (no reminders) {} per patient-day; by event: {}; by severity: {}",
        fmt_option(b.new_per_patient_day(), 2),
        if kinds.is_empty() {
            "-".to_owned()
        } else {
            kinds.join(", ")
        },
        if severities.is_empty() {
            "-".to_owned()
        } else {
            severities.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "  patients alerted outside episodes: {} of {}; most for one patient: {}",
        b.patients, e.patients, b.most_for_one_patient
    );
    s
}

fn report_json(c: &Report<'_>, e: &Evaluation, aims: &Aims) -> Value {
    let b = &e.burden;
    let episodes: Vec<Value> = e
        .episodes
        .iter()
        .map(|o| {
            json!({
                "patient_id": o.episode.patient_id,
                "ward": o.episode.ward,
                "kind": o.episode.kind.label(),
                "onset_at": sim_json::timestamp(o.episode.onset_ms),
                "event_at": sim_json::timestamp(o.episode.event_ms),
                "judged": o.judged,
                "first_alert_at": o.first_alert.as_ref().map(|(at, _)| sim_json::timestamp(*at)),
                "first_alert_severity": o.first_alert.as_ref().map(|(_, s)| s),
                "lead_minutes": o.lead_ms().map(minutes),
            })
        })
        .collect();
    json!({
        "cohort": {
            "patients": c.config.patients,
            "wards": c.config.wards,
            "hours": c.config.duration_ms as f64 / 3_600_000.0,
            "seed": c.config.seed,
            "episode_share": c.config.episode_share,
            "faults": c.config.faults != vigil_sim::Faults::none(),
        },
        "pipelines": { "scores": c.scores, "alerts": c.alerts },
        "counts": {
            "readings": c.outcome.readings,
            "rejected": c.outcome.scores.sources.iter().map(|s| s.rejected).sum::<u64>(),
            "late": c.outcome.scores.jobs.iter().map(|j| j.rows_late).sum::<u64>(),
            "scores": c.outcome.scores.jobs.iter().map(|j| j.rows_out).sum::<u64>(),
            "scores_late": c.outcome.alerts.jobs.iter().map(|j| j.rows_late).sum::<u64>(),
            "alert_events": c.events,
        },
        "episodes_judged": e.judged(),
        "episodes_detected": e.detected(),
        "sensitivity": e.sensitivity(),
        "median_lead_minutes": e.median_lead_ms().map(minutes),
        "burden": {
            "alerts": b.alerts(),
            "patient_days": b.patient_days,
            "per_patient_day": b.per_patient_day(),
            "new_per_patient_day": b.new_per_patient_day(),
            "by_event": b.by_kind.iter().map(|(k, n)| (k.label().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "by_severity": b.by_severity,
            "patients": b.patients,
            "most_for_one_patient": b.most_for_one_patient,
        },
        "aims": {
            "sensitivity": { "aim": AIM_SENSITIVITY, "met": aims.sensitivity },
            "median_lead_minutes": { "aim": AIM_LEAD_MIN, "met": aims.lead },
            "per_patient_day": { "aim": AIM_BURDEN, "met": aims.burden },
        },
        "episodes": episodes,
    })
}
