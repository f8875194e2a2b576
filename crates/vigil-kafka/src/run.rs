//! Running a pipeline whose tables are Kafka topics, as one member of its consumer
//! group.
//!
//! One thread runs a loop of steps. A step takes up to
//! [`KafkaConfig::batch_messages`] messages (or what comes within
//! [`KafkaConfig::max_wait`]) in batches from the fetch queue its source
//! partitions are routed to (see [`fetch`](crate::fetch)), decodes each
//! partition's messages into one Arrow batch (a bad message goes to the
//! dead-letter topic alone), feeds the batches
//! to the jobs reading that topic, advances the watermark and sends every output
//! row. Its outputs are acknowledged by the broker while the next step runs: a
//! step ends by waiting for the previous step's. The step's offsets count as
//! processed; they become committable once the jobs' horizon has passed their
//! rows (see [`offsets`](crate::offsets)), and are committed every
//! [`KafkaConfig::commit_interval`] and when a partition is revoked, in both
//! cases only once the broker has acknowledged everything sent before. A
//! periodic commit checkpoints the state at the end of a step, writes the
//! progress at the next step, once that step's wait for the previous one's
//! messages has them (and the outputs) acknowledged, and commits the offsets
//! at the step after, once the progress is acknowledged too (the loop does not
//! stop for the round trips); a revoked partition's commit is the last offset
//! whose progress is acknowledged.
//!
//! Memory stays bounded: a step holds at most one batch of messages, at most two
//! steps' outputs await acknowledgement, and while a slow sink catches up every
//! assigned partition is paused (see [`intake`](crate::intake)): nothing more is
//! fetched, yet the consumer is polled, so it stays in its group and takes part
//! in rebalances.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use vigil_engine::files::{declared_rows, decode_schema};
use vigil_engine::plan::Pipeline;
use vigil_engine::runtime::watermark::Watermarks;
use vigil_engine::runtime::{Emitted, JobRunner, PartitionState, Progress};
use vigil_engine::sql::ddl::{TableDecl, event_time_type};
use vigil_formats::RowsJsonDecoder;

use crate::commits::CommitQueue;
use crate::config::{self, KafkaConfig};
use crate::error::{KafkaError, Result};
use crate::fetch::{FetchQueue, Incoming};
use crate::intake::Intake;
use crate::metrics::RunMetrics;
use crate::offsets::{OffsetTracker, decode_metadata, earliest_horizon, encode_metadata};
use crate::progress::{self, Found, ProgressReader};
use crate::sink::{DeadLetter, Sink};
use crate::source::{self, Assignment, GroupContext, TopicPartition};
use crate::state;
use crate::transaction;
use rdkafka::ClientConfig;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunStats {
    /// Messages taken from source topics.
    pub consumed: u64,
    /// Messages sent to a dead-letter topic because they could not be decoded.
    pub dead_lettered: u64,
    /// Rows behind the watermark, sent to the dead-letter topic as late.
    pub late: u64,
    /// Replayed rows a previous owner of their partition had already taken in.
    pub replayed_done: u64,
    /// Rows dropped as copies of a reading already taken in.
    pub duplicates: u64,
    /// Rows sent to sink topics.
    pub rows_out: u64,
    /// Successful offset commits (one per partition and commit).
    pub commits: u64,
    /// Offset commits that failed (retried at the next commit).
    pub commit_failures: u64,
    /// Partitions assigned to this instance over the run.
    pub assigned: u64,
    /// Partitions revoked from this instance over the run.
    pub revoked: u64,
    /// Waits for the sink long enough to pause consumption.
    pub paused: u64,
    /// Times a partition was held back (its messages left in librdkafka's
    /// queue of it) for running more than its source's `max_drift` of event
    /// time ahead of the slowest.
    pub held_back: u64,
    /// Partitions taken over from a state checkpoint (without replay).
    pub restored: u64,
    /// State checkpoints written (one per partition and commit).
    pub checkpoints: u64,
    /// Exactly-once: transactions committed.
    pub transactions: u64,
    /// Exactly-once: previous writers of taken-over partitions fenced.
    pub fenced: u64,
    /// The most messages (outputs, dead letters, progress) awaiting the
    /// broker's acknowledgement at once.
    pub peak_unacknowledged: u64,
    /// Failed outputs (a delivery, a transaction) after which every owned
    /// partition went on from its last commit.
    pub rewinds: u64,
    /// Bytes of state written in checkpoints (before chunking).
    pub checkpoint_bytes: u64,
    /// Commits made (each covering every owned partition that moved; in
    /// exactly-once mode, transactions and the skipped empty ones).
    pub commit_rounds: u64,
    /// Time the run loop spent in commits: checkpoints and progress written,
    /// offsets committed (the transaction, exactly-once); at least once, not
    /// the wait for the progress's acknowledgement, which the next step's wait
    /// for its predecessor's messages covers.
    pub commit_time: Duration,
}

/// A partition's next checkpoint at a periodic commit waits this many times
/// as long as its last one took, so checkpoints take at most a tenth of the
/// run loop's time: a small state is checkpointed at every commit, a large one
/// less often (1M patients over 3 partitions, measured: 19 checkpoints in 22 s
/// instead of 3 a second), trading more replay after a failover for a loop
/// that keeps up. The last
/// commit of a run, and every transaction in exactly-once mode, checkpoint
/// every partition that moved.
const CHECKPOINT_SPACING: u32 = 9;
/// Rewinds in a row, without a commit between them, before a run gives up
/// (the output keeps failing: a restart, or the operator, must look).
const MAX_REWINDS_IN_A_ROW: u32 = 5;
/// The longest a step waiting for its first message goes without serving the
/// consumer's events (rebalances, statistics): the wait is on the fetch queue.
const EVENT_SERVICE: Duration = Duration::from_millis(10);
/// The pause before a rewind, times the rewinds in a row.
const REWIND_BACKOFF: Duration = Duration::from_millis(500);

/// Counts of a run in progress, readable from other threads (updated after each
/// step; rows out once the broker has acknowledged them).
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Messages taken from source topics.
    pub consumed: AtomicU64,
    /// Rows sent to sink topics and acknowledged.
    pub rows_out: AtomicU64,
    /// Messages dead-lettered (undecodable, or late rows).
    pub dead_lettered: AtomicU64,
    /// Source partitions this instance owns.
    pub assigned_partitions: AtomicU64,
    /// Whether [`LiveCounters::lag`] has been measured (librdkafka statistics
    /// arrive every few seconds).
    pub lag_known: AtomicBool,
    /// Messages between the consumer's positions and the ends of its partitions,
    /// summed over the partitions it owns.
    pub lag: AtomicU64,
    /// Brokers the consumer is connected to, from the latest statistics.
    pub brokers_up: AtomicU64,
    /// Wall clock (ms since the epoch) at the end of the latest step; a loop
    /// that stops stepping is stuck.
    pub last_step_ms: AtomicI64,
}

/// A source topic and the jobs reading it.
struct Source {
    table: TableDecl,
    dead_letter: String,
    progress: String,
    schema: SchemaRef,
    event_time: Option<usize>,
    jobs: Vec<usize>,
    watermarks: Watermarks,
    /// Event time beyond a message's timestamp plus this does not move the
    /// watermark (source option `max_clock_skew`).
    max_clock_skew_ms: i64,
    /// A declared arrival-time column, used instead of message timestamps
    /// (source option `arrival_time`).
    arrival_time: Option<usize>,
    /// How far a partition may run ahead of the slowest in event time while
    /// catching up (source option `max_drift`; `None`: off).
    max_drift_ms: Option<i64>,
}

/// A sink topic and the column keying its messages.
struct SinkTopic {
    table: TableDecl,
    topic: String,
    key: Option<usize>,
    /// The rule of the sink's alert policy, if it has one (its rows are alerts).
    alert_rule: Option<String>,
}

/// One partition's messages of the current step.
struct Step {
    decoder: RowsJsonDecoder,
    /// Per accepted message: offset and Kafka timestamp.
    accepted: Vec<(i64, Option<i64>)>,
    /// Per accepted message: its key (for a dead letter at flush), kept only
    /// by a decoder that rejects messages at flush.
    keys: Vec<Option<Vec<u8>>>,
    /// The offset after the last message taken.
    end: i64,
    /// Messages taken (accepted or dead-lettered).
    taken: u64,
}

/// A step whose outputs may not all be acknowledged yet.
#[derive(Debug, Default)]
struct InFlight {
    /// [`RunStats::rows_out`] at its end.
    rows_out: u64,
    /// The newest event time of the readings it took in, if it sent rows.
    newest: Option<i64>,
}

/// A commit under way (at least once), in two halves so that the run loop
/// never waits for a round trip to the broker: the state is checkpointed and
/// the offsets chosen at one step; once the broker has acknowledged every
/// message of that step and the ones before (the outputs of the offsets'
/// readings among them), their progress is written; once that is acknowledged
/// too, the offsets go to the group. The progress log therefore never runs
/// ahead of an output: a new owner, or this run after an output failed, may go
/// on from the newest progress even where the group's commit is behind it.
/// A commit begun while another is under way is merged into it: the newer
/// offset of a partition replaces the older (see [`Loop::begin_commit`]).
#[derive(Debug, Default)]
struct PendingCommit {
    /// The step the newest of `chosen` were checkpointed in.
    chosen_step: usize,
    /// Per partition: the offset and metadata chosen, its progress not yet
    /// written (its outputs may still be in flight).
    chosen: BTreeMap<TopicPartition, (i64, String)>,
    /// The step the newest of `written` were sent in.
    written_step: usize,
    /// Per partition: the offset and metadata whose progress was sent, not yet
    /// acknowledged.
    written: BTreeMap<TopicPartition, (i64, String)>,
    /// How long the commit held the run loop so far.
    took: Duration,
}

impl PendingCommit {
    /// Forgets partition `tp` (revoked): nothing of it is committed.
    fn forget(&mut self, tp: &TopicPartition) {
        self.chosen.remove(tp);
        self.written.remove(tp);
    }

    /// Whether nothing is left to write or commit.
    fn is_empty(&self) -> bool {
        self.chosen.is_empty() && self.written.is_empty()
    }
}

/// A pipeline ready to run against Kafka.
pub struct KafkaRun<'p> {
    pipeline: &'p Pipeline,
    config: KafkaConfig,
    /// By topic.
    sources: BTreeMap<String, Source>,
    /// By job.
    sinks: Vec<SinkTopic>,
    live: Arc<LiveCounters>,
    metrics: RunMetrics,
}

impl std::fmt::Debug for KafkaRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRun")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field(
                "sinks",
                &self.sinks.iter().map(|s| &s.topic).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<'p> KafkaRun<'p> {
    /// Prepares `pipeline`, every table of which must be a Kafka table.
    pub fn new(pipeline: &'p Pipeline, mut config: KafkaConfig) -> Result<KafkaRun<'p>> {
        if config.exactly_once {
            if !config.checkpoints {
                return Err(KafkaError::Config(
                    "exactly-once needs state checkpoints (do not turn checkpoints off)".to_owned(),
                ));
            }
            if config.transactional_id.is_none() {
                config.transactional_id =
                    Some(transaction::default_transactional_id(&config.group_id));
            }
        }
        let mut sources: BTreeMap<String, Source> = BTreeMap::new();
        let mut sinks = Vec::with_capacity(pipeline.jobs.len());
        for (j, job) in pipeline.jobs.iter().enumerate() {
            for table in [&job.source, &job.sink] {
                if !config::is_kafka(table) {
                    return Err(KafkaError::Config(format!(
                        "line {}: table {} is not a Kafka table; a pipeline runs against Kafka or files, not both",
                        table.line, table.name
                    )));
                }
            }
            let topic = config::topic(&job.source)?;
            match sources.get_mut(&topic) {
                Some(source) => {
                    if source.table.name != job.source.name {
                        return Err(KafkaError::Config(format!(
                            "tables {} and {} both read topic {topic}",
                            source.table.name, job.source.name
                        )));
                    }
                    source.jobs.push(j);
                }
                None => {
                    let schema = decode_schema(&job.source);
                    let event_time = match &job.source.event_time {
                        Some(et) => Some(schema.index_of(&et.column)?),
                        None => None,
                    };
                    let delay = job.source.event_time.as_ref().map_or(0, |et| et.delay_ms);
                    let arrival_time = job
                        .source
                        .option("arrival_time")
                        .and_then(|c| schema.index_of(c).ok());
                    sources.insert(
                        topic,
                        Source {
                            table: job.source.clone(),
                            dead_letter: config::dead_letter_topic(&job.source)?,
                            progress: config::progress_topic(&job.source)?,
                            schema,
                            event_time,
                            jobs: vec![j],
                            watermarks: Watermarks::new(delay, job.time.idle_timeout_ms),
                            max_clock_skew_ms: job.time.max_clock_skew_ms,
                            arrival_time,
                            max_drift_ms: job.time.max_drift_ms,
                        },
                    );
                }
            }
            let key = match job.sink.option(config::KEY) {
                None => None,
                Some(name) => {
                    let schema = if job.sink.schema.fields().is_empty() {
                        &job.output_schema
                    } else {
                        &job.sink.schema
                    };
                    Some(schema.index_of(name).map_err(|_| {
                        KafkaError::Config(format!(
                            "line {}: table {}: key column {name} is not in its output",
                            job.sink.line, job.sink.name
                        ))
                    })?)
                }
            };
            sinks.push(SinkTopic {
                table: job.sink.clone(),
                topic: config::topic(&job.sink)?,
                key,
                alert_rule: job.alerts.as_ref().map(|a| a.rule.clone()),
            });
        }
        Ok(KafkaRun {
            pipeline,
            config,
            sources,
            sinks,
            live: Arc::default(),
            metrics: RunMetrics::new(&prometheus::Registry::new(), "")
                .map_err(|e| KafkaError::Config(format!("metrics: {e}")))?,
        })
    }

    /// Reports to `metrics` (registered in the registry the caller serves)
    /// instead of a private set nobody reads.
    pub fn with_metrics(mut self, metrics: RunMetrics) -> KafkaRun<'p> {
        self.metrics = metrics;
        self
    }

    /// The run's counts, updated as it goes.
    pub fn live(&self) -> Arc<LiveCounters> {
        Arc::clone(&self.live)
    }

    /// Every topic the run reads or writes.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .sources
            .iter()
            .flat_map(|(t, s)| [t.clone(), s.dead_letter.clone(), s.progress.clone()])
            .chain(self.sinks.iter().map(|s| s.topic.clone()))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// librdkafka properties of every table (`'kafka.*'` options).
    fn table_properties(&self) -> BTreeMap<String, String> {
        self.pipeline
            .def
            .tables
            .iter()
            .flat_map(config::table_properties)
            .collect()
    }

    /// Checks, within the startup timeout, that the brokers answer and every topic
    /// exists: a clear error at start instead of a hang or a silent auto-creation.
    fn check_topics(&self, consumer: &BaseConsumer<GroupContext>) -> Result<()> {
        let timeout = self.config.startup_timeout;
        let mut partitions = BTreeMap::new();
        for topic in self.topics() {
            let metadata = consumer
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| {
                    KafkaError::Config(format!(
                        "cannot reach Kafka at {} within {} s: {e}",
                        self.config.brokers,
                        timeout.as_secs()
                    ))
                })?;
            let found = metadata.topics().iter().find(|t| t.name() == topic);
            match found {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    partitions.insert(topic, t.partitions().len());
                }
                _ => {
                    return Err(KafkaError::Config(format!(
                        "topic {topic} does not exist on {} (create it first)",
                        self.config.brokers
                    )));
                }
            }
        }
        for (topic, source) in &self.sources {
            let (wanted, has) = (partitions.get(topic), partitions.get(&source.progress));
            if let (Some(wanted), Some(has)) = (wanted, has)
                && has < wanted
            {
                return Err(KafkaError::Config(format!(
                    "progress topic {} has {has} partitions, fewer than the {wanted} of {topic}",
                    source.progress
                )));
            }
        }
        Ok(())
    }

    /// Runs until `stop` is set (or an error), then commits what is safe and
    /// leaves the group.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<RunStats> {
        let properties = self.table_properties();
        let context = GroupContext::default();
        let consumer: BaseConsumer<GroupContext> = self
            .config
            .consumer(&properties)
            .create_with_context(context.clone())?;
        self.check_topics(&consumer)?;
        // Before the subscription: every partition assigned is routed to it.
        let fetch = FetchQueue::new(&consumer)?;
        // Group commits report back to it, not holding the loop; it outlives
        // the loop (revocations at the end commit through it) and is dropped
        // before the consumer.
        let _commits = CommitQueue::new(&consumer)?;
        let producer_config = self.config.producer(&properties);
        let sink = Sink::new(&producer_config)?;
        let exactly_once = self.config.exactly_once;
        if exactly_once {
            sink.init_transactions(self.config.startup_timeout)?;
            if let Ok(mut shared) = context.0.lock() {
                shared.defer_revocations = true;
            }
        }
        let reader = ProgressReader::new(
            &self.config.consumer(&properties),
            &self.config.group_id,
            self.config.startup_timeout,
        )?;
        let topics: Vec<String> = self.sources.keys().cloned().collect();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs)?;

        let mut runners = self
            .pipeline
            .jobs
            .iter()
            .map(|job| JobRunner::new(job, &self.pipeline.ctx))
            .collect::<vigil_engine::Result<Vec<_>>>()?;
        let mut loop_ = Loop {
            run: self,
            consumer: &consumer,
            context: &context,
            sink: &sink,
            intake: Intake::new(&consumer),
            fetch,
            reader: &reader,
            runners: &mut runners,
            producer_config: &producer_config,
            owned: BTreeMap::new(),
            checkpointed: BTreeMap::new(),
            checkpoint_due: BTreeMap::new(),
            last_progress: BTreeMap::new(),
            fenced: Vec::new(),
            pending_commit: None,
            transaction_began: sink.sent(),
            rewinds_in_a_row: 0,
            last_partition: None,
            stats: RunStats::default(),
            started: Instant::now(),
            reported: (0, 0),
            group_commit_sent: Instant::now(),
        };
        let result = loop_.run(stop);
        if exactly_once {
            if result.is_err()
                && let Err(e) = sink.abort(self.config.startup_timeout)
            {
                tracing::warn!(error = %e, "aborting the transaction failed");
            }
            // Committed and released: revocations from here on are served at
            // once, and any still waiting are given up.
            let pending = match context.0.lock() {
                Ok(mut shared) => {
                    shared.defer_revocations = false;
                    std::mem::take(&mut shared.changes)
                }
                Err(_) => Vec::new(),
            };
            for change in pending {
                if let Assignment::Revoked(partitions) = change {
                    source::unassign(&consumer, &partitions);
                }
            }
        }
        let mut stats = loop_.finish();
        // Leaving the group revokes every partition: its safe offset is committed
        // by the rebalance callback.
        consumer.unsubscribe();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
            && Instant::now() < deadline
        {
            let _ = consumer.poll(Duration::from_millis(50));
        }
        sink.flush(Duration::from_secs(10))?;
        self.metrics.assigned_partitions.set(0);
        self.live.assigned_partitions.store(0, Ordering::Relaxed);
        self.metrics.consumer_lag.reset();
        if let Ok(shared) = context.0.lock() {
            stats.commits += shared.committed.len() as u64;
            stats.commit_failures = shared.commit_failures;
        }
        result.map(|()| stats)
    }
}

/// The state of a running loop.
struct Loop<'a, 'p> {
    run: &'a KafkaRun<'p>,
    consumer: &'a BaseConsumer<GroupContext>,
    context: &'a GroupContext,
    sink: &'a Sink,
    intake: Intake<'a>,
    /// Where the source partitions' messages are taken from, in batches.
    fetch: FetchQueue<'a>,
    reader: &'a ProgressReader,
    runners: &'a mut Vec<JobRunner>,
    /// The sink's producer configuration (to fence a previous writer with).
    producer_config: &'a ClientConfig,
    owned: BTreeMap<TopicPartition, OffsetTracker>,
    /// Per partition, the offset and jobs' watermarks of its last state
    /// checkpoint.
    checkpointed: BTreeMap<TopicPartition, (i64, Vec<Option<i64>>)>,
    /// Per partition, when its next checkpoint may be written at a periodic
    /// commit (see [`CHECKPOINT_SPACING`]).
    checkpoint_due: BTreeMap<TopicPartition, Instant>,
    /// Per partition, the newest progress (offset and metadata) in its log:
    /// repeated, marked released, when a partition that has no new checkpoint
    /// to write is given up in exactly-once mode.
    last_progress: BTreeMap<TopicPartition, (i64, String)>,
    /// Exactly-once: previous writers already fenced.
    fenced: Vec<String>,
    /// At least once: the commit begun whose progress awaits acknowledgement.
    pending_commit: Option<PendingCommit>,
    /// Exactly-once: [`Sink::sent`] when the open transaction began.
    transaction_began: u64,
    /// Rewinds since the last successful commit.
    rewinds_in_a_row: u32,
    /// The partition of the message taken last.
    last_partition: Option<TopicPartition>,
    stats: RunStats,
    started: Instant,
    /// Pauses and commit failures already added to the metrics.
    reported: (u64, u64),
    /// At least once: when offsets were last sent to the group.
    group_commit_sent: Instant,
}

impl Loop<'_, '_> {
    fn now(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs steps until `stop`, going on from the last commit after an output
    /// that failed (see [`rewind`](Self::rewind)); commits on the way out.
    fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        let mut watermarks: BTreeMap<String, Watermarks> = self
            .run
            .sources
            .iter()
            .map(|(t, s)| (t.clone(), s.watermarks.clone()))
            .collect();
        loop {
            match self.steps(stop, &mut watermarks) {
                Ok(()) => break,
                Err(e)
                    if crate::error::is_recoverable(&e)
                        && self.rewinds_in_a_row < MAX_REWINDS_IN_A_ROW =>
                {
                    self.rewinds_in_a_row += 1;
                    tracing::warn!(error = %e, attempt = self.rewinds_in_a_row, "output failed: every partition goes on from its last commit");
                    std::thread::sleep(REWIND_BACKOFF * self.rewinds_in_a_row);
                    self.rewind(&mut watermarks)?;
                }
                Err(e) => return Err(e),
            }
        }
        if self.run.config.exactly_once {
            let all: Vec<TopicPartition> = self.owned.keys().cloned().collect();
            self.commit_transaction(&all, true)?;
        } else {
            self.commit()?;
        }
        // Every output is acknowledged.
        self.run
            .live
            .rows_out
            .store(self.stats.rows_out, Ordering::Relaxed);
        Ok(())
    }

    /// Goes on from the last commit after an output failed: the producer
    /// recovers (in exactly-once mode the open transaction, with every output
    /// since the last commit, is aborted), then every owned partition is taken
    /// over again as if just assigned: its state restored from the checkpoint
    /// at its commit (or rebuilt by replay), the consumer sought back there.
    /// What was processed since is processed again; in exactly-once mode a
    /// read-committed reader sees it once.
    fn rewind(&mut self, watermarks: &mut BTreeMap<String, Watermarks>) -> Result<()> {
        self.sink.recover(self.run.config.startup_timeout)?;
        self.transaction_began = self.sink.sent();
        // Its progress may not have reached the broker.
        self.pending_commit = None;
        let partitions: Vec<TopicPartition> = self.owned.keys().cloned().collect();
        self.intake.discard(&partitions);
        for tp in &partitions {
            self.let_go(tp, watermarks)?;
        }
        self.take_over(&partitions, watermarks, true)?;
        self.intake.release();
        self.stats.rewinds += 1;
        self.run.metrics.rewinds.inc();
        Ok(())
    }

    /// Forgets partition `tp` (revoked, or about to be taken over again): its
    /// offsets, its last checkpoint, the jobs' state of it and its watermark.
    fn let_go(
        &mut self,
        tp: &TopicPartition,
        watermarks: &mut BTreeMap<String, Watermarks>,
    ) -> Result<()> {
        let p = partition_number(tp.1)?;
        self.owned.remove(tp);
        self.checkpointed.remove(tp);
        self.checkpoint_due.remove(tp);
        if let Some(source) = self.run.sources.get(&tp.0) {
            for &j in &source.jobs {
                self.runners[j].release(p);
            }
        }
        if let Some(w) = watermarks.get_mut(&tp.0) {
            w.revoke(p);
        }
        Ok(())
    }

    /// Steps until `stop`.
    fn steps(
        &mut self,
        stop: &AtomicBool,
        watermarks: &mut BTreeMap<String, Watermarks>,
    ) -> Result<()> {
        let mut last_commit = Instant::now();
        // The previous step, whose outputs may still be in flight.
        let mut in_flight = InFlight::default();
        while !stop.load(Ordering::Relaxed) {
            let (began, consumed_before, rows_out_before) =
                (Instant::now(), self.stats.consumed, self.stats.rows_out);
            let step = self.sink.begin_step();
            let mut steps = self.collect(watermarks)?;
            let collected = Instant::now();
            let spans = self.process(&mut steps, watermarks)?;
            let processed = Instant::now();
            // This step's outputs are acknowledged while the next step is
            // taken in and processed; the previous step's must be in by now
            // (consumption pauses while the sink catches up). Offsets are
            // committed only once the broker has everything produced before
            // (see `commit`), so a step's span counts as processed here.
            self.sink
                .acknowledged_before(step, &|| self.intake.hold())?;
            self.acknowledged(&in_flight);
            // A commit begun at an earlier step moves on now that the steps
            // before this one are acknowledged: its progress is written, or
            // (written at an earlier step) its offsets go to the group.
            if self.pending_commit.is_some() {
                self.advance_commit(step)?;
            }
            self.settle_commits();
            in_flight = InFlight {
                rows_out: self.stats.rows_out,
                newest: (self.stats.rows_out > rows_out_before)
                    .then(|| spans.values().filter_map(|&(_, latest)| latest).max())
                    .flatten(),
            };
            tracing::debug!(
                messages = self.stats.consumed - consumed_before,
                collect = ?(collected - began),
                process = ?(processed - collected),
                acknowledge = ?processed.elapsed(),
                behind_ms = ?spans
                    .values()
                    .filter_map(|&(_, latest)| latest)
                    .max()
                    .map(|newest| wall_clock_ms() - newest),
                partitions = ?spans.iter().map(|(tp, (end, latest))| (tp.1, *end, *latest)).collect::<Vec<_>>(),
                "step"
            );
            self.intake.release();
            self.align(watermarks);
            if self.run.config.exactly_once {
                // Revocations wait for this loop: the step's spans are still
                // this instance's, and are committed before the partitions go.
                self.record(&spans, &[]);
                self.apply_changes(&mut BTreeMap::new(), watermarks)?;
            } else {
                // A rebalance served during the step: a revoked partition's span
                // is not this instance's to commit, even if the partition came
                // straight back (its new tracker starts at the committed offset,
                // and its state is rebuilt by replay from there).
                let revoked = self.apply_changes(&mut BTreeMap::new(), watermarks)?;
                self.record(&spans, &revoked);
            }
            self.mark_safe()?;
            self.report_step(began);
            let live = &self.run.live;
            live.consumed.store(self.stats.consumed, Ordering::Relaxed);
            live.dead_lettered.store(
                self.stats.dead_lettered + self.stats.late,
                Ordering::Relaxed,
            );
            if last_commit.elapsed() >= self.run.config.commit_interval {
                if self.run.config.exactly_once {
                    let began = Instant::now();
                    self.commit_transaction(&[], false)?;
                    self.committed_in(began.elapsed());
                    // The transaction waited for every output.
                    self.acknowledged(&in_flight);
                    in_flight = InFlight::default();
                } else {
                    // Finished at a later step, once the broker has the
                    // progress (and this step's outputs).
                    self.begin_commit(step, false)?;
                }
                self.report_state();
                last_commit = Instant::now();
            }
        }
        Ok(())
    }

    /// Holds back the partitions too far ahead of their source's slowest in
    /// event time (see [`Watermarks::ahead`]).
    fn align(&mut self, watermarks: &BTreeMap<String, Watermarks>) {
        let (now, wall) = (self.now(), wall_clock_ms());
        let mut ahead = std::collections::BTreeSet::new();
        for (topic, source) in &self.run.sources {
            let (Some(drift), Some(marks)) = (source.max_drift_ms, watermarks.get(topic)) else {
                continue;
            };
            let held: Vec<u32> = self
                .owned
                .keys()
                .filter(|tp| tp.0 == *topic && self.fetch.is_held_back(tp))
                .filter_map(|tp| u32::try_from(tp.1).ok())
                .collect();
            for p in marks.ahead(drift, now, wall, &held) {
                if let Ok(p) = i32::try_from(p) {
                    ahead.insert((topic.clone(), p));
                }
            }
        }
        self.fetch.hold_back(ahead);
        self.run
            .metrics
            .held_back_partitions
            .set(self.fetch.held_back() as i64);
    }

    /// A step's outputs are all acknowledged: the rows out counted, the latency
    /// of its newest reading's outputs observed.
    fn acknowledged(&self, step: &InFlight) {
        self.run.live.rows_out.store(
            step.rows_out
                .max(self.run.live.rows_out.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let wall = wall_clock_ms();
        if let Some(newest) = step.newest
            && wall >= newest
        {
            self.run
                .metrics
                .end_to_end
                .observe((wall - newest) as f64 / 1000.0);
        }
    }

    /// Records the step's processed spans in their partitions' trackers, except
    /// for partitions in `revoked`.
    fn record(
        &mut self,
        spans: &BTreeMap<TopicPartition, (i64, Option<i64>)>,
        revoked: &[TopicPartition],
    ) {
        for (tp, &(end, latest)) in spans {
            if revoked.contains(tp) {
                continue;
            }
            if let Some(tracker) = self.owned.get_mut(tp) {
                tracker.processed(end, latest);
            }
        }
    }

    /// Metrics of the step that just ended: its duration, backpressure,
    /// watermark and consumer lag, assigned partitions.
    fn report_step(&mut self, began: Instant) {
        let metrics = &self.run.metrics;
        metrics.step_duration.observe(began.elapsed().as_secs_f64());
        let wall = wall_clock_ms();
        let pauses = self.intake.pauses();
        metrics.sink_pauses.inc_by(pauses - self.reported.0);
        self.reported.0 = pauses;
        metrics.assigned_partitions.set(self.owned.len() as i64);
        for (topic, source) in &self.run.sources {
            let mark = source
                .jobs
                .iter()
                .filter_map(|&j| self.runners[j].watermark())
                .min();
            if let Some(mark) = mark {
                metrics
                    .watermark_lag
                    .with_label_values(&[topic.as_str()])
                    .set((wall - mark) as f64 / 1000.0);
            }
        }
        let (lags, brokers_up) = match self.context.0.lock() {
            Ok(mut shared) => (
                std::mem::take(&mut shared.consumer_lag),
                shared.brokers_up.take(),
            ),
            Err(_) => (BTreeMap::new(), None),
        };
        let live = &self.run.live;
        live.assigned_partitions
            .store(self.owned.len() as u64, Ordering::Relaxed);
        live.last_step_ms.store(wall, Ordering::Relaxed);
        if let Some(up) = brokers_up {
            live.brokers_up.store(up, Ordering::Relaxed);
        }
        if !lags.is_empty() {
            let owned: u64 = lags
                .iter()
                .filter(|(tp, _)| self.owned.contains_key(*tp))
                .map(|(_, lag)| u64::try_from(*lag).unwrap_or(0))
                .sum();
            live.lag.store(owned, Ordering::Relaxed);
            live.lag_known.store(true, Ordering::Relaxed);
        }
        for ((topic, partition), lag) in lags {
            let partition = partition.to_string();
            let labels = [topic.as_str(), partition.as_str()];
            if self
                .owned
                .contains_key(&(topic.clone(), partition.parse().unwrap_or(-1)))
            {
                metrics.consumer_lag.with_label_values(&labels).set(lag);
            } else {
                let _ = metrics.consumer_lag.remove_label_values(&labels);
            }
        }
    }

    /// Metrics of the jobs' state and the commits (every commit interval: state
    /// sizes are summed over every group).
    fn report_state(&mut self) {
        let metrics = &self.run.metrics;
        for (runner, job) in self.runners.iter().zip(&self.run.pipeline.jobs) {
            let name = [job.sink.name.as_str()];
            metrics
                .state_groups
                .with_label_values(&name)
                .set(runner.state_groups() as i64);
            metrics
                .state_bytes
                .with_label_values(&name)
                .set(runner.state_bytes() as i64);
        }
        if let Ok(shared) = self.context.0.lock() {
            metrics
                .commit_failures
                .inc_by(shared.commit_failures.saturating_sub(self.reported.1));
            self.reported.1 = shared.commit_failures;
        }
    }

    /// The run's totals. The state metrics are reported once more, so a run
    /// that stops between two commit intervals leaves them at the state it
    /// stopped with, not at that of its last commit.
    fn finish(&mut self) -> RunStats {
        self.report_state();
        self.stats.paused = self.intake.pauses();
        self.stats.held_back = self.fetch.holds_back();
        self.stats.peak_unacknowledged = self.sink.peak_unacknowledged();
        self.stats.replayed_done = self
            .runners
            .iter()
            .map(|r| r.counters().rows_replayed_done)
            .sum();
        std::mem::take(&mut self.stats)
    }

    /// Applies assignment changes seen by the rebalance callbacks; returns the
    /// partitions revoked (some may have been assigned again since).
    fn apply_changes(
        &mut self,
        steps: &mut BTreeMap<TopicPartition, Step>,
        watermarks: &mut BTreeMap<String, Watermarks>,
    ) -> Result<Vec<TopicPartition>> {
        let mut revoked = Vec::new();
        let changes = self
            .context
            .take_changes()
            .ok_or_else(|| KafkaError::Config("consumer state poisoned".to_owned()))?;
        for change in changes {
            match change {
                Assignment::Revoked(partitions) => {
                    // Exactly-once: deferred by the rebalance callback: commit
                    // everything processed, mark these released, then give them
                    // up. Given up even if the commit fails: the rebalance waits
                    // for it, and the next owner resumes from the last
                    // transaction committed.
                    let committed = self.run.config.exactly_once.then(|| {
                        let committed = self.commit_transaction(&partitions, false);
                        source::unassign(self.consumer, &partitions);
                        committed
                    });
                    for tp in partitions {
                        tracing::info!(topic = %tp.0, partition = tp.1, "partition revoked");
                        self.stats.revoked += 1;
                        self.fetch.forget(&tp);
                        steps.remove(&tp);
                        self.last_progress.remove(&tp);
                        if let Some(pending) = &mut self.pending_commit {
                            pending.forget(&tp);
                        }
                        self.let_go(&tp, watermarks)?;
                        revoked.push(tp);
                    }
                    // This instance holds nothing of them any more when the
                    // failure is dealt with (see `rewind`).
                    committed.transpose()?;
                }
                Assignment::Assigned(partitions) => {
                    self.take_over(&partitions, watermarks, false)?
                }
            }
        }
        Ok(revoked)
    }

    /// Takes partitions over: from the committed offset, resuming each job at the
    /// progress the commit's metadata records. `rewinding`: partitions this
    /// instance already consumed, sought back to where they resume.
    fn take_over(
        &mut self,
        partitions: &[TopicPartition],
        watermarks: &mut BTreeMap<String, Watermarks>,
        rewinding: bool,
    ) -> Result<()> {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition(topic, *partition);
        }
        let committed = self
            .consumer
            .committed_offsets(list, self.run.config.startup_timeout)?;
        let now = self.now();
        for elem in committed.elements() {
            let tp = (elem.topic().to_owned(), elem.partition());
            let offset = match elem.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            let Some(source) = self.run.sources.get(&tp.0) else {
                continue;
            };
            // The progress log is written before every commit, so it is at or
            // past the committed offset; a log behind the commit was not written
            // by this pipeline's commits, and the commit's own metadata is used.
            // Past the commit is safe to go on from: progress is written only
            // once every output before it is acknowledged (see `PendingCommit`;
            // in exactly-once mode, in the outputs' transaction).
            let found = self
                .reader
                .latest(&source.progress, tp.1)?
                .filter(|f| offset.is_none_or(|c| f.offset >= c));
            let p = partition_number(tp.1)?;
            for &j in &source.jobs {
                self.runners[j].release(p);
            }
            if self.run.config.exactly_once
                && let Some(found) = &found
                && !found.released
                && let Some(writer) = &found.writer
            {
                self.fence(writer)?;
            }
            match &found {
                Some(found) => {
                    self.last_progress
                        .insert(tp.clone(), (found.offset, found.metadata.clone()));
                }
                None => {
                    self.last_progress.remove(&tp);
                }
            }
            let mut start = offset;
            if let Some(found) = found.as_ref().filter(|_| self.run.config.checkpoints)
                && self.restore(source, &tp, found)?
            {
                start = Some(found.offset);
                if offset != start && !rewinding {
                    // The state was written, the commit was not: read on from
                    // the state's offset.
                    self.consumer.seek(
                        &tp.0,
                        tp.1,
                        Offset::Offset(found.offset),
                        self.run.config.startup_timeout,
                    )?;
                }
                self.stats.restored += 1;
            } else {
                let metadata = match &found {
                    Some(found) => found.metadata.clone(),
                    None => elem.metadata().to_owned(),
                };
                for &j in &source.jobs {
                    let runner = &mut self.runners[j];
                    let progress = decode_metadata(&metadata, runner.fingerprint());
                    if offset.is_some() && progress.is_none() {
                        tracing::warn!(
                            topic = %tp.0,
                            partition = tp.1,
                            "the committed offset has no progress of this pipeline in the progress log or the commit; windows open at the commit may be emitted again from part of their rows"
                        );
                    }
                    runner.resume(p, progress.unwrap_or_default())?;
                }
            }
            if let Some(w) = watermarks.get_mut(&tp.0) {
                w.assign(p, now);
            }
            if rewinding {
                let to = start.map_or(Offset::Beginning, Offset::Offset);
                self.consumer
                    .seek(&tp.0, tp.1, to, self.run.config.startup_timeout)?;
                tracing::info!(topic = %tp.0, partition = tp.1, offset = ?start, "partition rewound");
            } else {
                self.stats.assigned += 1;
                tracing::info!(topic = %tp.0, partition = tp.1, offset = ?start, "partition assigned");
            }
            self.owned.insert(tp, OffsetTracker::new(start));
        }
        Ok(())
    }

    /// Restores every job's state of partition `tp` from the checkpoint written
    /// with the progress `found`; false (and the jobs hold nothing of the
    /// partition) when the log has no complete checkpoint of these jobs there or
    /// it does not restore.
    fn restore(&mut self, source: &Source, tp: &TopicPartition, found: &Found) -> Result<bool> {
        let fingerprints: Vec<u64> = source
            .jobs
            .iter()
            .map(|&j| self.runners[j].fingerprint())
            .collect();
        let Some(states) = self
            .reader
            .checkpoint(&source.progress, tp.1, found, &fingerprints)?
        else {
            tracing::warn!(topic = %tp.0, partition = tp.1, "no state checkpoint of this pipeline at the committed offset; resuming by replay");
            return Ok(false);
        };
        let p = partition_number(tp.1)?;
        let restored = source.jobs.iter().try_for_each(|&j| {
            let runner = &mut self.runners[j];
            let bytes = states.get(&runner.fingerprint()).ok_or_else(|| {
                vigil_engine::EngineError::Checkpoint("a job's state is missing".to_owned())
            })?;
            let mut state = PartitionState::from_bytes(bytes)?;
            state.partition = p;
            runner.restore(state)
        });
        match restored {
            Ok(()) => {
                tracing::info!(topic = %tp.0, partition = tp.1, offset = found.offset, "state restored");
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "the state checkpoint does not restore; resuming by replay");
                for &j in &source.jobs {
                    self.runners[j].release(p);
                }
                Ok(false)
            }
        }
    }

    /// Polls one step's messages into per-partition decoders (first those held
    /// during the last wait): up to `batch_messages`, for at most `max_wait`,
    /// and no longer than the consumer has messages at hand once it has one;
    /// messages that do not decode are dead-lettered at once.
    fn collect(
        &mut self,
        watermarks: &mut BTreeMap<String, Watermarks>,
    ) -> Result<BTreeMap<TopicPartition, Step>> {
        let mut steps: BTreeMap<TopicPartition, Step> = BTreeMap::new();
        let _revoked_before_the_step = self.apply_changes(&mut steps, watermarks)?;
        let mut taken = 0;
        while let Some(message) = self.intake.next_held() {
            taken += usize::from(self.take(&Incoming::of(&message), &mut steps)?);
        }
        let deadline = Instant::now() + self.run.config.max_wait;
        while taken < self.run.config.batch_messages {
            // A step waits for its first message, not for more: once nothing
            // more is at hand, what it has is processed (under load the
            // prefetch queue fills whole steps anyway). The consumer's own
            // queue is polled between batches: it serves rebalances and
            // statistics, and holds any message of a partition not routed to
            // the fetch queue.
            let wait = if taken == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.min(EVENT_SERVICE)
            } else {
                if Instant::now() >= deadline {
                    break;
                }
                Duration::ZERO
            };
            let polled = self.consumer.poll(Duration::ZERO);
            let _revoked_before_the_step = self.apply_changes(&mut steps, watermarks)?;
            match polled {
                None => {}
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                Some(Ok(message)) => {
                    taken += usize::from(self.take(&Incoming::of(&message), &mut steps)?);
                    continue;
                }
            }
            let batch = self
                .fetch
                .next_batch(self.run.config.batch_messages - taken, wait);
            if batch.is_empty() && taken > 0 {
                break;
            }
            for message in batch.iter() {
                match message {
                    Ok(message) => taken += usize::from(self.take(&message, &mut steps)?),
                    Err(e) => tracing::warn!(error = %e, "consumer error"),
                }
            }
        }
        Ok(steps)
    }

    /// Adds one message to its partition's step, or dead-letters it; false if its
    /// partition is not (or no longer) this instance's.
    fn take(
        &mut self,
        message: &Incoming<'_>,
        steps: &mut BTreeMap<TopicPartition, Step>,
    ) -> Result<bool> {
        // Messages come in runs of one partition: its name is kept, not
        // allocated for each of them.
        let tp = match self.last_partition.take() {
            Some(tp) if tp.1 == message.partition && tp.0 == message.topic => tp,
            _ => (message.topic.to_owned(), message.partition),
        };
        let taken = self.take_from(&tp, message, steps);
        self.last_partition = Some(tp);
        taken
    }

    fn take_from(
        &mut self,
        tp: &TopicPartition,
        message: &Incoming<'_>,
        steps: &mut BTreeMap<TopicPartition, Step>,
    ) -> Result<bool> {
        let Some(tracker) = self.owned.get(tp) else {
            return Ok(false);
        };
        // Fetched before a seek to a restored checkpoint: already in its state.
        if tracker
            .last_commit()
            .is_some_and(|start| message.offset < start)
        {
            return Ok(false);
        }
        let Some(source) = self.run.sources.get(&tp.0) else {
            return Ok(false);
        };
        self.stats.consumed += 1;
        let step = match steps.get_mut(tp) {
            Some(step) => step,
            None => steps.entry(tp.clone()).or_insert(Step {
                decoder: vigil_engine::files::decoder(
                    &source.table,
                    source.schema.clone(),
                    self.run.config.max_message_bytes,
                    self.run.config.batch_messages,
                )?,
                accepted: Vec::new(),
                keys: Vec::new(),
                end: message.offset,
                taken: 0,
            }),
        };
        step.end = message.offset + 1;
        step.taken += 1;
        let timestamp = message.timestamp;
        let payload = message.payload;
        match step.decoder.decode(payload) {
            Ok(()) => {
                step.accepted.push((message.offset, timestamp));
                if step.decoder.rejects_at_flush() {
                    step.keys.push(message.key.map(<[u8]>::to_vec));
                }
            }
            Err(e) => {
                self.stats.dead_lettered += 1;
                self.count_decode_error(&tp.0, e.reason_label());
                self.sink.send_dead_letter(
                    &source.dead_letter,
                    message.key,
                    payload,
                    &DeadLetter {
                        reason: e.reason_label(),
                        error: e.to_string(),
                        topic: &tp.0,
                        partition: tp.1,
                        offset: Some(message.offset),
                        timestamp,
                    },
                    &|| self.intake.hold(),
                )?;
            }
        }
        Ok(true)
    }

    /// Decodes each partition's step into a batch, feeds it to the jobs, moves the
    /// watermarks and sends every output. Leaves in `steps` each partition's end
    /// offset and latest event time, as `(end, latest)` pairs.
    fn process(
        &mut self,
        steps: &mut BTreeMap<TopicPartition, Step>,
        watermarks: &mut BTreeMap<String, Watermarks>,
    ) -> Result<BTreeMap<TopicPartition, (i64, Option<i64>)>> {
        let mut spans = BTreeMap::new();
        let now = self.now();
        for (tp, step) in steps.iter_mut() {
            let Some(source) = self.run.sources.get(&tp.0) else {
                continue;
            };
            self.run
                .metrics
                .consumed
                .with_label_values(&[tp.0.as_str()])
                .inc_by(step.taken);
            let flushed = step.decoder.flush()?;
            for ((index, error), payload) in flushed.rejected.iter().zip(&flushed.rejected_messages)
            {
                let (offset, timestamp) = match step.accepted.get(*index) {
                    Some(&(offset, timestamp)) => (Some(offset), timestamp),
                    None => (None, None),
                };
                self.stats.dead_lettered += 1;
                self.count_decode_error(&tp.0, error.reason_label());
                self.sink.send_dead_letter(
                    &source.dead_letter,
                    step.keys.get(*index).and_then(|k| k.as_deref()),
                    payload,
                    &DeadLetter {
                        reason: error.reason_label(),
                        error: error.to_string(),
                        topic: &tp.0,
                        partition: tp.1,
                        offset,
                        timestamp,
                    },
                    &|| self.intake.hold(),
                )?;
            }
            let mut latest = None;
            if let Some(batch) = flushed.batch {
                let times = source
                    .event_time
                    .map(|i| batch.column(i).as_primitive::<TimestampMillisecondType>());
                latest = times.and_then(arrow::compute::max);
                // A declared arrival-time column (where the rows carry one),
                // else the message timestamps (0 or less: a producer that set
                // none).
                let arrived = source
                    .arrival_time
                    .and_then(|i| arrow::compute::cast(batch.column(i), &event_time_type()).ok())
                    .and_then(|a| arrow::compute::max(a.as_primitive::<TimestampMillisecondType>()))
                    .or_else(|| {
                        step.accepted
                            .iter()
                            .filter_map(|&(_, ts)| ts.filter(|&ts| ts > 0))
                            .max()
                    });
                let observed = match (times, latest, arrived) {
                    (Some(times), Some(t), Some(arrived)) => {
                        let bound = arrived.saturating_add(source.max_clock_skew_ms);
                        if t > bound {
                            let ahead = times.iter().flatten().filter(|&t| t > bound).count();
                            self.run
                                .metrics
                                .future_rows
                                .with_label_values(&[tp.0.as_str()])
                                .inc_by(ahead as u64);
                            tracing::debug!(
                                topic = %tp.0,
                                partition = tp.1,
                                rows = ahead,
                                ahead_ms = t - arrived,
                                "event times ahead of their messages' timestamps"
                            );
                        }
                        Some(t.min(bound))
                    }
                    _ => latest,
                };
                let p = partition_number(tp.1)?;
                if let Some(w) = watermarks.get_mut(&tp.0) {
                    w.observe(p, observed, now);
                }
                for &j in &source.jobs {
                    let mut emitted = Emitted::default();
                    self.runners[j].process_bounded(p, batch.clone(), observed, &mut emitted)?;
                    self.send(j, source, tp, emitted)?;
                }
            }
            spans.insert(tp.clone(), (step.end, latest));
        }
        for (topic, source) in &self.run.sources {
            let Some(mark) = watermarks.get_mut(topic).and_then(|w| w.watermark(now)) else {
                continue;
            };
            for &j in &source.jobs {
                let mut emitted = Emitted::default();
                self.runners[j].advance(mark, &mut emitted)?;
                self.send(j, source, &(topic.clone(), -1), emitted)?;
            }
        }
        Ok(spans)
    }

    fn count_decode_error(&self, topic: &str, reason: &str) {
        let metrics = &self.run.metrics;
        metrics
            .decode_errors
            .with_label_values(&[topic, reason])
            .inc();
        metrics.dead_letters.with_label_values(&[topic]).inc();
    }

    /// Sends a job's output rows to its sink topic and its late rows to the
    /// source's dead-letter topic.
    fn send(
        &mut self,
        job: usize,
        source: &Source,
        tp: &TopicPartition,
        emitted: Emitted,
    ) -> Result<()> {
        let sink = &self.run.sinks[job];
        for batch in &emitted.rows {
            let rows = declared_rows(&sink.table, batch)?;
            let sent = self
                .sink
                .send_rows(&sink.topic, sink.key, &rows, &|| self.intake.hold())?
                as u64;
            self.stats.rows_out += sent;
            self.run
                .metrics
                .outputs
                .with_label_values(&[sink.topic.as_str()])
                .inc_by(sent);
            if let Some(rule) = &sink.alert_rule {
                count_alerts(&self.run.metrics, rule, batch);
            }
        }
        if emitted.duplicates > 0 {
            self.stats.duplicates += emitted.duplicates;
            self.run
                .metrics
                .duplicate_rows
                .with_label_values(&[tp.0.as_str()])
                .inc_by(emitted.duplicates);
        }
        for batch in &emitted.late {
            self.stats.late += batch.num_rows() as u64;
            let metrics = &self.run.metrics;
            let late = batch.num_rows() as u64;
            metrics
                .late_rows
                .with_label_values(&[tp.0.as_str()])
                .inc_by(late);
            metrics
                .dead_letters
                .with_label_values(&[tp.0.as_str()])
                .inc_by(late);
            send_late(self.sink, source, tp, batch, &|| self.intake.hold())?;
        }
        Ok(())
    }

    /// Records each partition's committable offset, with the jobs' progress
    /// (with checkpoints, [`commit`](Self::commit) decides that instead).
    fn mark_safe(&mut self) -> Result<()> {
        if self.run.config.checkpoints {
            return Ok(());
        }
        let mut safe = Vec::new();
        for (tp, tracker) in self.owned.iter_mut() {
            let Some(source) = self.run.sources.get(&tp.0) else {
                continue;
            };
            let p = partition_number(tp.1)?;
            let jobs: Vec<(u64, Progress)> = source
                .jobs
                .iter()
                .map(|&j| (self.runners[j].fingerprint(), self.runners[j].progress(p)))
                .collect();
            let horizon = earliest_horizon(jobs.iter().map(|(_, p)| *p));
            let committable = tracker.committable(horizon);
            tracing::debug!(topic = %tp.0, partition = tp.1, ?horizon, ?committable, pending = tracker.pending(), "commit point");
            if let Some(offset) = committable {
                safe.push((tp.clone(), offset, encode_metadata(&jobs)));
            }
        }
        let mut shared = self
            .context
            .0
            .lock()
            .map_err(|_| KafkaError::Config("consumer state poisoned".to_owned()))?;
        for (tp, offset, metadata) in safe {
            shared.safe.insert(tp, (offset, metadata));
        }
        Ok(())
    }

    /// Writes each owned partition's state to its progress log (see
    /// [`state`](crate::state)), at the offset after everything processed (all
    /// of it acknowledged); returns those offsets with the jobs' progress, for
    /// [`commit`](Self::commit) to write after the state. A partition whose
    /// offset and jobs' watermarks have not moved since its last checkpoint is
    /// not written again; unless `force`, neither is one whose last checkpoint
    /// is recent for what it cost (see [`CHECKPOINT_SPACING`]).
    fn checkpoint(&mut self, force: bool) -> Result<BTreeMap<TopicPartition, (i64, String)>> {
        let mut safe = BTreeMap::new();
        let group = &self.run.config.group_id;
        for (tp, tracker) in self.owned.iter_mut() {
            let Some(source) = self.run.sources.get(&tp.0) else {
                continue;
            };
            let p = partition_number(tp.1)?;
            // Everything processed: the state holds the rows the windows need
            // (a partition taken over by replay carries the replay on: what the
            // previous owner took in and emitted stays skipped).
            let Some(offset) = tracker.checkpointable() else {
                continue; // nothing taken in yet
            };
            let watermarks: Vec<Option<i64>> = source
                .jobs
                .iter()
                .map(|&j| self.runners[j].watermark())
                .collect();
            if self.checkpointed.get(tp) == Some(&(offset, watermarks.clone())) {
                continue;
            }
            let began = Instant::now();
            if !force && self.checkpoint_due.get(tp).is_some_and(|&due| began < due) {
                continue;
            }
            let mut jobs = Vec::with_capacity(source.jobs.len());
            for &j in &source.jobs {
                let runner = &mut self.runners[j];
                let taken = Instant::now();
                // Read in place, the state is measured here and its parts built
                // again as they are written; otherwise it is taken out whole.
                let measured = runner.measure_in_place(p)?;
                let state = match &measured {
                    Some(_) => None,
                    None => Some(runner.checkpoint(p)?),
                };
                let exported = taken.elapsed();
                let encoding = state.as_ref().map(PartitionState::encoding).transpose()?;
                let (length, groups) = match (&measured, &encoding, &state) {
                    (Some(m), _, _) => (m.len(), m.rows()),
                    (None, Some(e), Some(s)) => (e.len(), s.rows() as u64),
                    _ => {
                        return Err(KafkaError::Config(
                            "a checkpoint neither measured nor taken out".to_owned(),
                        ));
                    }
                };
                let fingerprint = runner.fingerprint();
                // Streamed out in chunks as it is encoded: the state is not
                // held a second time, whole, as bytes.
                let (sink, intake) = (self.sink, &self.intake);
                let mut send = |index: u32, value: &[u8]| {
                    sink.send_progress(
                        &source.progress,
                        tp.1,
                        &state::chunk_key(group, fingerprint, index),
                        value,
                        &[],
                        &|| intake.hold(),
                    )
                };
                let mut writer = state::ChunkWriter::new(
                    offset,
                    length,
                    self.run.config.state_chunk_bytes,
                    &mut send,
                )?;
                let written = match (&measured, &encoding) {
                    (Some(m), _) => runner.write_in_place(m, &mut writer),
                    (None, Some(e)) => e.write_to(&mut writer),
                    (None, None) => Ok(()), // ruled out above
                };
                if let Err(e) = written {
                    // A failed send is the cause of a failed write.
                    return Err(writer.take_failure().unwrap_or_else(|| e.into()));
                }
                writer.finish()?;
                tracing::debug!(
                    partition = tp.1,
                    groups,
                    bytes = length,
                    in_place = measured.is_some(),
                    export = ?exported,
                    write = ?(taken.elapsed() - exported),
                    "checkpoint"
                );
                self.stats.checkpoint_bytes += length;
                self.run.metrics.checkpoint_bytes.inc_by(length);
                jobs.push((runner.fingerprint(), runner.progress(p)));
            }
            self.stats.checkpoints += 1;
            self.checkpointed.insert(tp.clone(), (offset, watermarks));
            let took = began.elapsed();
            self.checkpoint_due
                .insert(tp.clone(), Instant::now() + took * CHECKPOINT_SPACING);
            safe.insert(tp.clone(), (offset, encode_metadata(&jobs)));
        }
        Ok(safe)
    }

    /// Checkpoints the state and commits every safe offset: its progress
    /// written to the progress log once the broker has every output sent before,
    /// then, once it has the progress, the offset committed to the group. Waits
    /// for all of it (at the end of a run; steps use
    /// [`begin_commit`](Self::begin_commit) instead).
    fn commit(&mut self) -> Result<()> {
        if self.run.config.exactly_once {
            return self.commit_transaction(&[], false);
        }
        let step = self.sink.begin_step();
        self.begin_commit(step, true)?;
        // Twice: the outputs and state, then the progress.
        for _ in 0..2 {
            self.sink.acknowledged(&|| self.intake.hold())?;
            self.intake.release();
            let step = self.sink.begin_step();
            self.advance_commit(step)?;
        }
        Ok(())
    }

    /// The first half of a commit, at the end of `step`: checkpoints the state
    /// (with checkpoints) and chooses every safe offset, without waiting for
    /// the broker; [`advance_commit`](Self::advance_commit) writes their
    /// progress and commits them at later steps, as the broker acknowledges
    /// what came before (see [`PendingCommit`]). So a commit does not hold the
    /// readings behind it for a round trip to the broker.
    fn begin_commit(&mut self, step: usize, force: bool) -> Result<()> {
        let began = Instant::now();
        let safe = if self.run.config.checkpoints {
            self.checkpoint(force)?
        } else {
            match self.context.0.lock() {
                Ok(mut shared) => std::mem::take(&mut shared.safe),
                Err(_) => return Err(KafkaError::Config("consumer state poisoned".to_owned())),
            }
        };
        let pending = self
            .pending_commit
            .get_or_insert_with(PendingCommit::default);
        pending.chosen_step = step;
        pending.chosen.extend(safe);
        pending.took += began.elapsed();
        Ok(())
    }

    /// Counts a commit that held the run loop for `took`.
    fn committed_in(&mut self, took: Duration) {
        tracing::debug!(took = ?took, "commit");
        self.stats.commit_rounds += 1;
        self.stats.commit_time += took;
        self.run.metrics.commit_duration.observe(took.as_secs_f64());
    }

    /// Moves the commit under way on, in `step` (the step now open), without
    /// waiting: progress written at an earlier step and acknowledged has its
    /// offsets committed to the group; offsets chosen at an earlier step whose
    /// messages (and every one before) are acknowledged have their progress
    /// written, to be committed at a later call.
    fn advance_commit(&mut self, step: usize) -> Result<()> {
        let Some(pending) = self.pending_commit.as_ref() else {
            return Ok(());
        };
        let began = Instant::now();
        let (chosen_step, written_step) = (pending.chosen_step, pending.written_step);
        let written_in = !pending.written.is_empty()
            && written_step < step
            && self
                .sink
                .is_acknowledged_before(written_step.wrapping_add(1))?;
        if written_in {
            self.commit_written()?;
            // A round of the commit is done: count what it held the loop for.
            let took = self
                .pending_commit
                .as_mut()
                .map(|p| std::mem::take(&mut p.took) + began.elapsed())
                .unwrap_or_default();
            self.committed_in(took);
        }
        let chosen_out = self
            .pending_commit
            .as_ref()
            .is_some_and(|p| !p.chosen.is_empty() && chosen_step < step)
            && self
                .sink
                .is_acknowledged_before(chosen_step.wrapping_add(1))?;
        if chosen_out {
            self.write_progress(step)?;
        }
        if let Some(pending) = self.pending_commit.as_mut() {
            if !written_in {
                pending.took += began.elapsed();
            }
            if pending.is_empty() {
                self.pending_commit = None;
            }
        }
        Ok(())
    }

    /// Sends the progress of the offsets chosen, in `step`: every message
    /// before is acknowledged, so the progress log does not run ahead of them.
    fn write_progress(&mut self, step: usize) -> Result<()> {
        let Some(pending) = self.pending_commit.as_mut() else {
            return Ok(());
        };
        let mut chosen = std::mem::take(&mut pending.chosen);
        // A partition revoked meanwhile (by a rebalance served during this
        // step's polls) is not this instance's to write progress for.
        let owned = self.owned_now()?;
        chosen.retain(|tp, _| owned(tp));
        for ((topic, partition), (offset, metadata)) in &chosen {
            if let Some(source) = self.run.sources.get(topic) {
                self.sink.send_progress(
                    &source.progress,
                    *partition,
                    self.run.config.group_id.as_bytes(),
                    progress::encode(*offset, metadata).as_bytes(),
                    &[],
                    &|| self.intake.hold(),
                )?;
            }
        }
        self.intake.release();
        if let Some(pending) = self.pending_commit.as_mut() {
            pending.written_step = step;
            pending.written.extend(chosen);
        }
        Ok(())
    }

    /// Which partitions are still this instance's: assigned to the consumer
    /// and not revoked by a rebalance the loop has not handled yet (the
    /// rebalance callback runs on this thread, inside a poll).
    fn owned_now(&self) -> Result<impl Fn(&TopicPartition) -> bool + use<>> {
        let assigned = self.consumer.assignment()?;
        let revoked: Vec<TopicPartition> = match self.context.0.lock() {
            Ok(shared) => shared
                .changes
                .iter()
                .filter_map(|change| match change {
                    Assignment::Revoked(partitions) => Some(partitions.clone()),
                    Assignment::Assigned(_) => None,
                })
                .flatten()
                .collect(),
            Err(_) => return Err(KafkaError::Config("consumer state poisoned".to_owned())),
        };
        Ok(move |tp: &TopicPartition| {
            assigned.find_partition(&tp.0, tp.1).is_some() && !revoked.contains(tp)
        })
    }

    /// Commits to the group the offsets whose progress the broker has
    /// acknowledged, except for partitions revoked meanwhile.
    fn commit_written(&mut self) -> Result<()> {
        let Some(pending) = self.pending_commit.as_mut() else {
            return Ok(());
        };
        let written = std::mem::take(&mut pending.written);
        // A partition revoked meanwhile is not this instance's to commit, even
        // if it came back (it is taken over again from the group's offset).
        let owned = self.owned_now()?;
        if let Ok(mut shared) = self.context.0.lock() {
            for (tp, entry) in written {
                if owned(&tp) {
                    shared.written.insert(tp, entry);
                }
            }
        }
        self.context.commit_safe(self.consumer, None, None);
        self.group_commit_sent = Instant::now();
        self.settle_commits();
        Ok(())
    }

    /// Takes in the results of the group commits that came back: the trackers
    /// and counts of the offsets committed.
    ///
    /// What a commit left written (one was under way, or it failed) is sent
    /// again a commit interval after the last was, input or not.
    fn settle_commits(&mut self) {
        if !self.run.config.exactly_once
            && self.group_commit_sent.elapsed() >= self.run.config.commit_interval
        {
            self.context.commit_safe(self.consumer, None, None);
            self.group_commit_sent = Instant::now();
        } else {
            self.context.serve_commits();
        }
        let committed = match self.context.0.lock() {
            Ok(mut shared) => std::mem::take(&mut shared.committed),
            Err(_) => Vec::new(),
        };
        for (tp, offset) in committed {
            self.rewinds_in_a_row = 0;
            self.stats.commits += 1;
            self.run.metrics.commits.inc();
            if let Some(tracker) = self.owned.get_mut(&tp) {
                tracker.committed(offset);
            }
        }
    }
}

impl Loop<'_, '_> {
    /// Exactly-once: checkpoints every owned partition that moved (and every
    /// one in `releasing`), writes its progress naming this writer (marked
    /// released for `releasing`), and commits the transaction with the source
    /// offsets; opens the next one unless `last`. A transaction with nothing in
    /// it is left open.
    fn commit_transaction(&mut self, releasing: &[TopicPartition], last: bool) -> Result<()> {
        for tp in releasing {
            self.checkpointed.remove(tp);
        }
        let safe = self.checkpoint(true)?;
        let writer = self.sink.transactional_id().unwrap_or_default().to_owned();
        let mut progress = Vec::new();
        for (tp, entry) in &safe {
            progress.push((tp.clone(), entry.clone(), releasing.contains(tp)));
        }
        // Given up without a new checkpoint (nothing taken in yet): the newest
        // progress again, released, so the next owner does not fence this
        // instance.
        for tp in releasing {
            if !safe.contains_key(tp)
                && let Some(entry) = self.last_progress.get(tp)
            {
                progress.push((tp.clone(), entry.clone(), true));
            }
        }
        if progress.is_empty() && self.sink.sent() == self.transaction_began && !last {
            return Ok(());
        }
        for ((topic, partition), (offset, metadata), released) in &progress {
            let Some(source) = self.run.sources.get(topic) else {
                continue;
            };
            let mut headers = vec![(transaction::WRITER, writer.as_str())];
            if *released {
                headers.push((transaction::RELEASED, "1"));
            }
            self.sink.send_progress(
                &source.progress,
                *partition,
                self.run.config.group_id.as_bytes(),
                progress::encode(*offset, metadata).as_bytes(),
                &headers,
                &|| self.intake.hold(),
            )?;
        }
        self.sink.acknowledged(&|| self.intake.hold())?;
        self.intake.release();
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), (offset, metadata)) in &safe {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
            if let Some(mut elem) = offsets.find_partition(topic, *partition) {
                elem.set_metadata(metadata.as_str());
            }
        }
        let group = self.consumer.group_metadata();
        self.sink.commit_transaction(
            &offsets,
            group.as_ref(),
            last,
            self.run.config.startup_timeout,
        )?;
        self.transaction_began = self.sink.sent();
        self.stats.transactions += 1;
        self.rewinds_in_a_row = 0;
        for (tp, (offset, metadata)) in safe {
            self.stats.commits += 1;
            self.run.metrics.commits.inc();
            if let Some(tracker) = self.owned.get_mut(&tp) {
                tracker.committed(offset);
            }
            self.last_progress.insert(tp, (offset, metadata));
        }
        Ok(())
    }

    /// Exactly-once: fences `writer`, the previous writer of a partition being
    /// taken over that did not release it (see
    /// [`transaction`](crate::transaction)), unless it is this instance or was
    /// fenced already.
    fn fence(&mut self, writer: &str) -> Result<()> {
        if Some(writer) == self.sink.transactional_id() || self.fenced.iter().any(|w| w == writer) {
            return Ok(());
        }
        transaction::fence(
            self.producer_config,
            writer,
            self.run.config.startup_timeout,
        )?;
        tracing::info!(
            writer,
            "fenced the previous writer of a partition taken over without release"
        );
        self.fenced.push(writer.to_owned());
        self.stats.fenced += 1;
        Ok(())
    }
}

/// Late rows, as JSON objects, to the source's dead-letter topic.
fn send_late(
    sink: &Sink,
    source: &Source,
    tp: &TopicPartition,
    batch: &RecordBatch,
    waiting: &dyn Fn(),
) -> Result<()> {
    let bytes = vigil_formats::write_json_lines(Vec::new(), &[batch])?;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        sink.send_dead_letter(
            &source.dead_letter,
            None,
            line,
            &DeadLetter {
                reason: "late",
                error: "behind the watermark and the allowed lateness".to_owned(),
                topic: &tp.0,
                partition: tp.1,
                offset: None,
                timestamp: None,
            },
            waiting,
        )?;
    }
    Ok(())
}

/// Counts alert events by event and severity (`vigil_alerts_total`).
fn count_alerts(metrics: &RunMetrics, rule: &str, batch: &RecordBatch) {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>().cloned())
    };
    let (Some(events), Some(severities)) = (column("event"), column("severity")) else {
        return;
    };
    for (event, severity) in events.iter().zip(severities.iter()) {
        if let (Some(event), Some(severity)) = (event, severity) {
            metrics
                .alerts
                .with_label_values(&[rule, event, severity])
                .inc();
        }
    }
}

/// Milliseconds since the epoch by the wall clock (0 if the clock is before it),
/// the clock [`LiveCounters::last_step_ms`] is read against.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn partition_number(partition: i32) -> Result<u32> {
    u32::try_from(partition)
        .map_err(|_| KafkaError::Config(format!("negative partition {partition}")))
}
