//! What a Kafka run reports to Prometheus: throughput, decode errors and dead
//! letters, late rows, outputs, commits, step duration, end-to-end latency,
//! watermark and consumer lag, assigned partitions, backpressure and state size.
//!
//! Metrics live in a registry the caller owns (the binary serves it at
//! `/metrics`); names follow Prometheus conventions (`vigil_` prefix, base units,
//! `_total` on counters). Every metric carries the constant label `pipeline`;
//! other labels are topics, partitions, reasons and job names: never a patient,
//! device or encounter identifier.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// The metrics of one run, registered in a caller's registry.
#[derive(Debug, Clone)]
pub struct RunMetrics {
    /// `vigil_records_consumed_total{topic}`: messages taken from source topics.
    pub consumed: IntCounterVec,
    /// `vigil_decode_errors_total{topic,reason}`: messages that did not decode,
    /// by reason (`malformed`, `oversized`, `invalid_field`, `bad_timestamp`).
    pub decode_errors: IntCounterVec,
    /// `vigil_dead_letters_total{topic}`: messages and late rows sent to the
    /// source topic's dead-letter topic.
    pub dead_letters: IntCounterVec,
    /// `vigil_late_rows_total{topic}`: rows behind the watermark.
    pub late_rows: IntCounterVec,
    /// `vigil_duplicate_rows_total{topic}`: rows dropped as copies of a reading
    /// already taken in (a source declaring a `PRIMARY KEY`).
    pub duplicate_rows: IntCounterVec,
    /// `vigil_future_rows_total{topic}`: rows whose event time is ahead of their
    /// message's timestamp by more than the source's `max_clock_skew` (a device
    /// clock running fast): kept, but not moving the watermark past the
    /// timestamp plus the tolerance.
    pub future_rows: IntCounterVec,
    /// `vigil_outputs_total{topic}`: rows sent to a sink topic and acknowledged.
    pub outputs: IntCounterVec,
    /// `vigil_alerts_total{rule,event,severity}`: alert events written by sinks
    /// with an alert policy (`raised`, `escalated`, `repeated`, `resolved`).
    pub alerts: IntCounterVec,
    /// `vigil_commits_total`: offset commits (one per partition and commit).
    pub commits: IntCounter,
    /// `vigil_commit_failures_total`: offset commits that failed (retried).
    pub commit_failures: IntCounter,
    /// `vigil_sink_pauses_total`: waits for the sink long enough to pause
    /// consumption.
    pub sink_pauses: IntCounter,
    /// `vigil_rewinds_total`: outputs that failed (a delivery, a transaction),
    /// after which every partition went on from its last commit.
    pub rewinds: IntCounter,
    /// `vigil_checkpoint_bytes_total`: state written to the progress topics in
    /// checkpoints (what checkpointing costs in bytes).
    pub checkpoint_bytes: IntCounter,
    /// `vigil_commit_duration_seconds`: how long one commit held the run loop
    /// (it takes no input meanwhile): state checkpoints and progress written,
    /// offsets sent to the group once the progress is acknowledged (at least
    /// once, that acknowledgement is awaited by the next step, alongside its
    /// predecessor's outputs, and the group's answer is read at a later step);
    /// exactly-once, the whole transaction.
    pub commit_duration: Histogram,
    /// `vigil_step_duration_seconds`: one step (poll and decode a batch, run the
    /// jobs, send and acknowledge their outputs).
    pub step_duration: Histogram,
    /// `vigil_end_to_end_latency_seconds`: from the event time of the newest row
    /// of a step to the moment its outputs are acknowledged, per step with
    /// outputs. Meaningful for live feeds, where event time is close to the wall
    /// clock; a replay of old data reports its age.
    pub end_to_end: Histogram,
    /// `vigil_watermark_lag_seconds{topic}`: wall clock minus the source's
    /// watermark.
    pub watermark_lag: GaugeVec,
    /// `vigil_consumer_lag_messages{topic,partition}`: messages between the
    /// application's position and the partition's end (librdkafka statistics;
    /// not from the committed offset, which trails open windows by design).
    pub consumer_lag: IntGaugeVec,
    /// `vigil_assigned_partitions`: source partitions this instance owns.
    pub assigned_partitions: IntGauge,
    /// `vigil_partitions_held_back`: source partitions not taken in for
    /// running more than the source's `max_drift` of event time ahead of the
    /// slowest while catching up.
    pub held_back_partitions: IntGauge,
    /// `vigil_state_groups{job}`: keys (groups) held in a job's state.
    pub state_groups: IntGaugeVec,
    /// `vigil_state_bytes{job}`: bytes held in a job's state.
    pub state_bytes: IntGaugeVec,
}

/// Where the metrics go and the constant label they carry.
struct Target<'a> {
    registry: &'a Registry,
    pipeline: &'a str,
}

impl Target<'_> {
    fn opts(&self, name: &str, help: &str) -> Opts {
        Opts::new(name, help).const_label("pipeline", self.pipeline)
    }
}

fn counter_vec(
    registry: &Target<'_>,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(registry.opts(name, help), labels)?;
    registry.registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(registry: &Target<'_>, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let metric = IntCounter::with_opts(registry.opts(name, help))?;
    registry.registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge_vec(
    registry: &Target<'_>,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let metric = IntGaugeVec::new(registry.opts(name, help), labels)?;
    registry.registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(registry: &Target<'_>, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let metric = IntGauge::with_opts(registry.opts(name, help))?;
    registry.registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(
    registry: &Target<'_>,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    let metric =
        Histogram::with_opts(HistogramOpts::from(registry.opts(name, help)).buckets(buckets))?;
    registry.registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl RunMetrics {
    /// Creates the metrics of pipeline `pipeline` (every metric's constant
    /// `pipeline` label, so that one registry can hold several runs' metrics) and
    /// registers them in `registry`; fails if they are registered there already.
    pub fn new(registry: &Registry, pipeline: &str) -> prometheus::Result<RunMetrics> {
        let registry = &Target { registry, pipeline };
        let watermark_lag = GaugeVec::new(
            registry.opts(
                "vigil_watermark_lag_seconds",
                "Wall clock minus the source's event-time watermark.",
            ),
            &["topic"],
        )?;
        registry
            .registry
            .register(Box::new(watermark_lag.clone()))?;
        Ok(RunMetrics {
            consumed: counter_vec(
                registry,
                "vigil_records_consumed_total",
                "Messages taken from source topics.",
                &["topic"],
            )?,
            decode_errors: counter_vec(
                registry,
                "vigil_decode_errors_total",
                "Messages that could not be decoded, by reason.",
                &["topic", "reason"],
            )?,
            dead_letters: counter_vec(
                registry,
                "vigil_dead_letters_total",
                "Messages and late rows sent to the source's dead-letter topic.",
                &["topic"],
            )?,
            late_rows: counter_vec(
                registry,
                "vigil_late_rows_total",
                "Rows behind the watermark and the allowed lateness.",
                &["topic"],
            )?,
            duplicate_rows: counter_vec(
                registry,
                "vigil_duplicate_rows_total",
                "Rows dropped as copies of a reading already taken in (sources with a PRIMARY KEY).",
                &["topic"],
            )?,
            future_rows: counter_vec(
                registry,
                "vigil_future_rows_total",
                "Rows whose event time is ahead of their message timestamp by more than max_clock_skew.",
                &["topic"],
            )?,
            outputs: counter_vec(
                registry,
                "vigil_outputs_total",
                "Rows sent to a sink topic and acknowledged by the broker.",
                &["topic"],
            )?,
            alerts: counter_vec(
                registry,
                "vigil_alerts_total",
                "Alert events written, by rule, event and severity.",
                &["rule", "event", "severity"],
            )?,
            commits: counter(
                registry,
                "vigil_commits_total",
                "Offset commits, one per partition and commit.",
            )?,
            commit_failures: counter(
                registry,
                "vigil_commit_failures_total",
                "Offset commits that failed (retried at the next commit).",
            )?,
            sink_pauses: counter(
                registry,
                "vigil_sink_pauses_total",
                "Waits for the sink long enough to pause consumption.",
            )?,
            rewinds: counter(
                registry,
                "vigil_rewinds_total",
                "Failed outputs (a delivery, a transaction) after which every partition went on from its last commit.",
            )?,
            checkpoint_bytes: counter(
                registry,
                "vigil_checkpoint_bytes_total",
                "State written to the progress topics in checkpoints, in bytes.",
            )?,
            commit_duration: histogram(
                registry,
                "vigil_commit_duration_seconds",
                "How long one commit held the run loop: checkpoints and progress written, offsets sent or the transaction committed.",
                prometheus::exponential_buckets(0.001, 2.0, 14)?,
            )?,
            step_duration: histogram(
                registry,
                "vigil_step_duration_seconds",
                "One step: poll and decode a batch, run the jobs, send and acknowledge the outputs.",
                prometheus::exponential_buckets(0.001, 2.0, 14)?,
            )?,
            end_to_end: histogram(
                registry,
                "vigil_end_to_end_latency_seconds",
                "Event time of a step's newest row to the acknowledgement of its outputs.",
                prometheus::exponential_buckets(0.01, 2.0, 16)?,
            )?,
            watermark_lag,
            consumer_lag: gauge_vec(
                registry,
                "vigil_consumer_lag_messages",
                "Messages between the consumer's position and the end of the partition.",
                &["topic", "partition"],
            )?,
            assigned_partitions: gauge(
                registry,
                "vigil_assigned_partitions",
                "Source partitions this instance owns.",
            )?,
            held_back_partitions: gauge(
                registry,
                "vigil_partitions_held_back",
                "Source partitions not taken in for running more than max_drift of event time ahead of the slowest while catching up.",
            )?,
            state_groups: gauge_vec(
                registry,
                "vigil_state_groups",
                "Keys (groups) held in a job's state.",
                &["job"],
            )?,
            state_bytes: gauge_vec(
                registry,
                "vigil_state_bytes",
                "Bytes held in a job's state.",
                &["job"],
            )?,
        })
    }
}
