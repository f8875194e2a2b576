//! One job's operators in physical form, and the late-row split in front of them.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::kernels::cmp::lt;
use arrow::compute::{filter_record_batch, is_null, not, or};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimestampMillisecondType};
use datafusion::common::Column;
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::functions_aggregate::expr_fn::last_value;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use super::aggregates::{Aggregates, evaluate, physical_expr, physical_exprs};
use super::alerts::{AlertPolicy, AlertSettings};
use super::checkpoint::{self, Measured, PartitionState};
use super::dedup::{self, Dedup, DedupSettings};
use super::panes::PaneWindows;
use super::session::Sessions;
use super::updating::Updating;
use super::watermark::END_OF_TIME;
use super::{BatchTimes, StatefulOperator};
use crate::error::{EngineError, Result};
use crate::plan::{Job, Stage};
use crate::window::WindowKind;

/// A filter or projection, in physical form.
enum Stateless {
    Filter(Arc<dyn PhysicalExpr>),
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
}

impl Stateless {
    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        match self {
            Stateless::Filter(predicate) => {
                let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
                Ok(filter_record_batch(&batch, mask.as_boolean())?)
            }
            Stateless::Project { exprs, schema } => {
                let columns = evaluate(exprs, &batch)?;
                Ok(RecordBatch::try_new_with_options(
                    Arc::clone(schema),
                    columns,
                    &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                )?)
            }
        }
    }
}

fn apply_all(stages: &[Stateless], mut batch: RecordBatch) -> Result<RecordBatch> {
    for stage in stages {
        if batch.num_rows() == 0 {
            break;
        }
        batch = stage.apply(batch)?;
    }
    Ok(batch)
}

/// What a call to a [`JobRunner`] produced.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Rows for the sink, in the job's output schema.
    pub rows: Vec<RecordBatch>,
    /// Late source rows (in the source's schema), for the late-data output.
    pub late: Vec<RecordBatch>,
    /// Source rows dropped as copies of a reading already taken in (a source
    /// declaring a `PRIMARY KEY`).
    pub duplicates: u64,
}

/// Counters of a running job.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JobCounters {
    /// Source rows taken in.
    pub rows_in: u64,
    /// Source rows found late.
    pub rows_late: u64,
    /// Replayed source rows older than the horizon a partition resumed from
    /// ([`JobRunner::resume`]): a previous owner already took them into
    /// everything they belong to.
    pub rows_replayed_done: u64,
    /// Source rows dropped as copies of a reading already taken in.
    pub rows_duplicate: u64,
    /// Rows emitted for the sink.
    pub rows_out: u64,
}

/// Builds a fresh stateful operator of a job (one per source partition).
type OperatorFactory = Box<dyn Fn() -> Result<Box<dyn StatefulOperator>> + Send>;

/// The stateful operator of one source partition.
struct PartitionSlot {
    operator: Box<dyn StatefulOperator>,
    /// A watermark restored with the state: this partition's rows behind it are late
    /// even if the job's own watermark (after a move to another instance) is lower.
    floor: Option<i64>,
    /// Set when the partition resumed from a previous owner's [`Progress`]: rows
    /// older than this were already taken in by it.
    done_before: Option<i64>,
    /// Set when the partition resumed: what the previous owner had emitted.
    emitted_floor: Option<i64>,
    /// Set while a resumed partition replays input the job's watermark has passed:
    /// its own watermark, from its own rows, which governs it until it reaches the
    /// job's (see [`JobRunner::resume`]).
    catch_up: Option<CatchUp>,
    /// The partition's own watermark: the latest event time of its rows (as
    /// far as the caller vouches for them) less the source's delay. Written
    /// with its checkpoints, so that a partition restored behind the job's
    /// watermark catches up from where its rows were, not from where the job
    /// was when it was checkpointed.
    own: Option<i64>,
    /// Restored, its windows not yet closed to the job's watermark (or, catching
    /// up, to its own): the next [`JobRunner::advance`] closes them, even if the
    /// watermark has not moved.
    close_pending: bool,
}

impl PartitionSlot {
    /// Whether the partition is still replaying after a [`JobRunner::resume`]:
    /// its operator lacks the rows the previous owner was done with, and must
    /// not emit what that owner emitted.
    fn replaying(&self) -> bool {
        self.catch_up.is_some() && (self.done_before.is_some() || self.emitted_floor.is_some())
    }

    /// Whether its checkpoints carry a [`replay_part`](Self::replay_part):
    /// replaying, or with an own watermark to carry on.
    fn has_replay_part(&self) -> bool {
        self.replaying() || self.own.is_some() || self.catch_up.is_some()
    }

    /// The resume fields of a replaying partition as a checkpoint part, so that
    /// a partition checkpointed mid-replay is restored still replaying: the
    /// instance that takes it over skips what the previous owners were done
    /// with and emits nothing they emitted. Of a partition not replaying, the
    /// part carries its own watermark (see [`JobRunner::restore`]).
    fn replay_part(&self) -> Result<RecordBatch> {
        let fields: Vec<Field> = REPLAY_COLUMNS
            .iter()
            .map(|name| Field::new(*name, DataType::Int64, true))
            .collect();
        let values = [
            self.floor,
            self.done_before,
            self.emitted_floor,
            match self.catch_up {
                Some(catch_up) => catch_up.watermark,
                None => self.own,
            },
        ];
        let columns: Vec<ArrayRef> = values
            .into_iter()
            .map(|v| Arc::new(Int64Array::from(vec![v])) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        checkpoint::tagged(batch, REPLAY_ROLE, 0)
    }

    /// Puts the slot back in the replay a [`replay_part`](Self::replay_part)
    /// describes.
    fn resume_from(&mut self, part: &RecordBatch) -> Result<()> {
        let value = |name: &str| -> Result<Option<i64>> {
            let column = part
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .filter(|c| c.len() == 1)
                .ok_or_else(|| {
                    EngineError::Checkpoint(format!("the replay part has no {name} value"))
                })?;
            Ok(column.is_valid(0).then(|| column.value(0)))
        };
        self.floor = value(REPLAY_COLUMNS[0])?;
        self.done_before = value(REPLAY_COLUMNS[1])?;
        self.emitted_floor = value(REPLAY_COLUMNS[2])?;
        self.catch_up = Some(CatchUp {
            watermark: value(REPLAY_COLUMNS[3])?,
        });
        if let Some(through) = self.emitted_floor {
            self.operator.suppress_through(through);
        }
        Ok(())
    }
}

/// Checkpoint role of a replaying partition's resume fields.
const REPLAY_ROLE: &str = "replay";
/// The columns of the replay part: the slot's floor, done-before and emitted
/// floor, and the partition's own watermark.
const REPLAY_COLUMNS: [&str; 4] = ["floor", "done_before", "emitted_floor", "own_watermark"];

/// A partition replaying behind the job's watermark.
#[derive(Debug, Clone, Copy, Default)]
struct CatchUp {
    /// The partition's own watermark: its latest event time less the source's
    /// delay; `None` before its first row.
    watermark: Option<i64>,
}

/// How far a partition's input has been taken in, for committing its source
/// offsets and for another instance to resume it by replay ([`JobRunner::resume`]).
///
/// A source offset can be committed once every row before it is older than
/// `horizon` (or was late): those rows are in nothing the job will emit again. A
/// new owner replays from the committed offset, skips rows older than `horizon`
/// and does not emit again what ends at or before `emitted_through`, so it emits
/// every result the previous owner had not, each from all its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Rows older than this no longer matter; `None`: no row matters (the partition
    /// holds no state).
    pub horizon: Option<i64>,
    /// Windows and sessions ending at or before this have been emitted (the
    /// watermark the operators last saw, allowed lateness taken off).
    pub emitted_through: Option<i64>,
}

/// A job's operators, ready to take batches and watermarks.
///
/// Stateful operators keep their state per source partition (a Kafka partition; 0
/// for a file), as Kafka Streams keeps a task per partition: readings are keyed by
/// patient, so a patient's state lives with its partition, and when the partition
/// moves to another instance its state moves with it ([`checkpoint`](Self::checkpoint),
/// [`restore`](Self::restore), [`release`](Self::release)). Results that group rows
/// of several partitions (a ward over patients on several partitions) are therefore
/// per partition; DESIGN.md computes such cohort results in a second stage keyed
/// by cohort.
pub struct JobRunner {
    before: Vec<Stateless>,
    factory: Option<OperatorFactory>,
    partitions: BTreeMap<u32, PartitionSlot>,
    after: Vec<Stateless>,
    /// The source's event-time column, if it declares one.
    event_time: Option<usize>,
    lateness_ms: i64,
    /// The source's watermark delay (for a catching-up partition's own watermark).
    delay_ms: i64,
    watermark: Option<i64>,
    output_schema: SchemaRef,
    /// The sink's alert policy, if any, and each source partition's state of it.
    alerts: Option<Arc<AlertSettings>>,
    policies: BTreeMap<u32, AlertPolicy>,
    /// The source's key, if it declares one, and each source partition's memory
    /// of the readings it has taken in.
    dedup: Option<Arc<DedupSettings>>,
    memories: BTreeMap<u32, Dedup>,
    source_schema: SchemaRef,
    counters: JobCounters,
    fingerprint: u64,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner")
            .field("watermark", &self.watermark)
            .field("counters", &self.counters)
            .field("partitions", &self.partitions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn key_schema(keys: &[Expr], input: &DFSchema) -> Result<SchemaRef> {
    let fields = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (_, field) = k.to_field(input)?;
            Ok(Field::new(
                format!("k{i}"),
                field.data_type().clone(),
                field.is_nullable(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

impl JobRunner {
    /// Builds the operators of `job`, planned in `ctx`.
    pub fn new(job: &Job, ctx: &SessionContext) -> Result<JobRunner> {
        let state = ctx.state();
        let props: &ExecutionProps = state.execution_props();
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut factory: Option<OperatorFactory> = None;
        for stage in &job.stages {
            match compile(stage, props)? {
                Some(s) if factory.is_some() => after.push(s),
                Some(s) => before.push(s),
                None => {
                    // A stateful stage: check it builds now, then build one per
                    // partition as partitions appear.
                    let (stage, props, ttl) = (stage.clone(), props.clone(), job.time.state_ttl_ms);
                    stateful(&stage, &props, ttl)?;
                    factory = Some(Box::new(move || stateful(&stage, &props, ttl)));
                }
            }
        }
        let event_time = match &job.source.event_time {
            Some(et) => Some(job.source.schema.index_of(&et.column)?),
            None => None,
        };
        Ok(JobRunner {
            before,
            factory,
            partitions: BTreeMap::new(),
            after,
            event_time,
            lateness_ms: job.time.allowed_lateness_ms,
            delay_ms: job.source.event_time.as_ref().map_or(0, |et| et.delay_ms),
            watermark: None,
            output_schema: Arc::clone(&job.output_schema),
            alerts: job.alerts.clone().map(Arc::new),
            policies: BTreeMap::new(),
            dedup: DedupSettings::of(&job.source)?.map(Arc::new),
            memories: BTreeMap::new(),
            source_schema: Arc::clone(&job.source.schema),
            counters: JobCounters::default(),
            fingerprint: checkpoint::fingerprint(&format!(
                "{}\n{}\n{:?}{}",
                job.sink.name,
                job.logical_plan.display_indent_schema(),
                job.alerts,
                // Without a key the text is what it was before keys existed, so
                // checkpoints of unkeyed jobs stay valid.
                if job.source.key.is_empty() {
                    String::new()
                } else {
                    format!("\nkey {:?}", job.source.key)
                }
            )),
        })
    }

    /// Identifies the job's state layout: its sink and its plan with schemas. A
    /// checkpoint is restored only into a job with the same fingerprint.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Schema of the rows this job emits.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// Counters so far.
    pub fn counters(&self) -> JobCounters {
        self.counters
    }

    /// Bytes of operator state held, over every partition (the memory of
    /// readings taken in included).
    pub fn state_bytes(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.operator.state_bytes())
            .sum::<usize>()
            + self.memories.values().map(Dedup::bytes).sum::<usize>()
    }

    /// Readings remembered to recognise their copies, over every partition.
    pub fn remembered_readings(&self) -> usize {
        self.memories.values().map(Dedup::entries).sum()
    }

    /// Groups of operator state held (keys, key-windows or sessions), over every
    /// partition.
    pub fn state_groups(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.operator.state_groups())
            .sum()
    }

    /// Source partitions this job holds state for.
    pub fn partitions(&self) -> impl Iterator<Item = u32> + '_ {
        self.partitions.keys().copied()
    }

    fn slot(&mut self, partition: u32) -> Result<Option<&mut PartitionSlot>> {
        let Some(factory) = &self.factory else {
            return Ok(None);
        };
        Ok(Some(match self.partitions.entry(partition) {
            std::collections::btree_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => slot.insert(PartitionSlot {
                operator: factory()?,
                floor: None,
                done_before: None,
                emitted_floor: None,
                catch_up: None,
                own: None,
                close_pending: false,
            }),
        }))
    }

    /// The partition's state, written out; the job goes on from exactly that
    /// state. An operator whose state can be read in place (see
    /// `StatefulOperator::snapshot`) is left as it is; any other is consumed
    /// by being written out and rebuilt from what was written (with the alert
    /// policy and the memory of readings), so such a checkpoint that could not
    /// be restored fails here, not at failover. A partition without state gives
    /// a checkpoint without parts.
    pub fn checkpoint(&mut self, partition: u32) -> Result<PartitionState> {
        let mut parts = Vec::new();
        let in_place = self.in_place(partition, &mut |part| {
            parts.push(part);
            Ok(())
        })?;
        if let Some(watermark) = in_place {
            return Ok(PartitionState {
                job: self.fingerprint,
                partition,
                watermark,
                parts,
            });
        }
        let mut state = PartitionState {
            job: self.fingerprint,
            partition,
            watermark: self.watermark,
            parts: Vec::new(),
        };
        let slot = self.partitions.remove(&partition);
        let policy = self.policies.remove(&partition);
        let memory = self.memories.remove(&partition);
        let held = slot.is_some() || policy.is_some() || memory.is_some();
        let mut kept = None;
        if let Some(slot) = slot {
            // A partition catching up is at its own watermark, not the job's.
            state.watermark = match slot.catch_up {
                Some(catch_up) => max_option(catch_up.watermark, slot.floor),
                None => max_option(self.watermark, slot.floor),
            };
            kept = Some((
                (slot.floor, slot.done_before, slot.emitted_floor),
                (slot.catch_up, slot.own, slot.close_pending),
            ));
            let replay = slot
                .has_replay_part()
                .then(|| slot.replay_part())
                .transpose()?;
            state.parts = slot.operator.export()?;
            state.parts.extend(replay);
        }
        if let Some(policy) = policy.filter(|p| p.keys() > 0) {
            state.parts.push(policy.export()?);
        }
        if let Some(memory) = memory {
            state.parts.push(memory.export(&self.source_schema)?);
        }
        if held {
            self.restore(state.clone())?;
        }
        // This runner goes on exactly as it was: resumed, catching up or not.
        if let (Some(((floor, done_before, emitted_floor), (catch_up, own, pending))), Some(slot)) =
            (kept, self.partitions.get_mut(&partition))
        {
            slot.floor = floor;
            slot.done_before = done_before;
            slot.emitted_floor = emitted_floor;
            slot.catch_up = catch_up;
            slot.own = own;
            slot.close_pending = pending;
            if let Some(through) = emitted_floor {
                slot.operator.suppress_through(through);
            }
        }
        Ok(state)
    }

    /// Measures the partition's checkpoint if its state can be read in place
    /// (see [`checkpoint`](Self::checkpoint)); `None` if it cannot. Then
    /// [`write_in_place`](Self::write_in_place), before anything else changes
    /// the job, writes it out part by part: a large state is never held a
    /// second time as Arrow batches (its parts are built twice instead, once to
    /// be measured).
    pub fn measure_in_place(&mut self, partition: u32) -> Result<Option<Measured>> {
        let mut watermark = None;
        let mut measured = Measured::new(self.fingerprint, partition, None, &mut |each| {
            watermark = self.in_place(partition, each)?;
            Ok(())
        })?;
        let Some(watermark) = watermark else {
            return Ok(None);
        };
        measured.watermark = watermark;
        Ok(Some(measured))
    }

    /// Writes the checkpoint `measured` (by
    /// [`measure_in_place`](Self::measure_in_place), with nothing processed
    /// since) to `out`, building each part again as it is written; fails if
    /// the parts are not those measured. The job goes on unchanged.
    pub fn write_in_place(&mut self, measured: &Measured, out: &mut dyn Write) -> Result<()> {
        let partition = measured.partition;
        measured.write_to(out, &mut |each| match self.in_place(partition, each)? {
            Some(_) => Ok(()),
            None => Err(EngineError::Checkpoint(
                "the state measured in place can no longer be read in place".to_owned(),
            )),
        })
    }

    /// Hands `each` the partition's checkpoint parts, read in place, if its
    /// operator allows (see `StatefulOperator::snapshot`), in the order a
    /// consuming checkpoint writes them; returns the watermark to record, or
    /// `None` (and nothing handed out) if the operator cannot be read in place.
    fn in_place(
        &mut self,
        partition: u32,
        each: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<Option<Option<i64>>> {
        let mut watermark = self.watermark;
        if let Some(slot) = self.partitions.get_mut(&partition) {
            if !slot.operator.snapshot(each)? {
                return Ok(None);
            }
            watermark = match slot.catch_up {
                Some(catch_up) => max_option(catch_up.watermark, slot.floor),
                None => max_option(self.watermark, slot.floor),
            };
            if slot.has_replay_part() {
                each(slot.replay_part()?)?;
            }
        }
        if let Some(policy) = self.policies.get(&partition).filter(|p| p.keys() > 0) {
            each(policy.export()?)?;
        }
        if let Some(memory) = self.memories.get(&partition) {
            each(memory.export(&self.source_schema)?)?;
        }
        Ok(Some(watermark))
    }

    /// Takes over a partition's state from a checkpoint of this job (after the
    /// partition was assigned to this instance). The partition must hold no state
    /// here yet.
    pub fn restore(&mut self, state: PartitionState) -> Result<()> {
        if state.job != self.fingerprint {
            return Err(EngineError::Checkpoint(format!(
                "partition {} was checkpointed by a different job (fingerprint {:016x}, this job {:016x})",
                state.partition, state.job, self.fingerprint
            )));
        }
        if self
            .partitions
            .get(&state.partition)
            .is_some_and(|p| p.operator.state_groups() > 0)
            || self
                .policies
                .get(&state.partition)
                .is_some_and(|p| p.keys() > 0)
            || self
                .memories
                .get(&state.partition)
                .is_some_and(|m| m.entries() > 0)
        {
            return Err(EngineError::Checkpoint(format!(
                "partition {} already holds state",
                state.partition
            )));
        }
        fn role_of(part: &RecordBatch) -> &str {
            checkpoint::tag_of(part).map_or("", |(role, _)| role)
        }
        let (memory_parts, parts): (Vec<RecordBatch>, Vec<RecordBatch>) = state
            .parts
            .into_iter()
            .partition(|part| role_of(part) == dedup::CHECKPOINT_ROLE);
        let (policy_parts, parts): (Vec<RecordBatch>, Vec<RecordBatch>) = parts
            .into_iter()
            .partition(|part| role_of(part) == super::alerts::CHECKPOINT_ROLE);
        let (replay_parts, parts): (Vec<RecordBatch>, Vec<RecordBatch>) = parts
            .into_iter()
            .partition(|part| role_of(part) == REPLAY_ROLE);
        if let Some(part) = memory_parts.first() {
            let settings = self.dedup.as_ref().ok_or_else(|| {
                EngineError::Checkpoint(
                    "a job whose source declares no key cannot take a memory of readings"
                        .to_owned(),
                )
            })?;
            let mut memory = Dedup::new(Arc::clone(settings))?;
            memory.restore(part)?;
            self.memories.insert(state.partition, memory);
        }
        if let Some(part) = policy_parts.first() {
            let settings = self.alerts.as_ref().ok_or_else(|| {
                EngineError::Checkpoint(
                    "a job without an alert policy cannot take its state".to_owned(),
                )
            })?;
            let mut policy =
                AlertPolicy::new(Arc::clone(settings), Arc::clone(&self.output_schema));
            policy.restore(part)?;
            self.policies.insert(state.partition, policy);
        }
        let Some(factory) = &self.factory else {
            if parts.is_empty() {
                return Ok(());
            }
            return Err(EngineError::Checkpoint(
                "a stateless job cannot take state".to_owned(),
            ));
        };
        let mut operator = factory()?;
        operator.restore(&parts)?;
        // This instance's other partitions may have moved the job's watermark
        // past the state's: the partition's rows from there on are not late,
        // and it follows its own watermark until that catches up (as after
        // `resume`).
        let behind = match (state.watermark, self.watermark) {
            (Some(own), Some(job)) => own < job,
            (None, Some(_)) => true,
            _ => false,
        };
        let mut slot = PartitionSlot {
            operator,
            floor: state.watermark,
            done_before: None,
            emitted_floor: None,
            catch_up: behind.then_some(CatchUp {
                watermark: state.watermark,
            }),
            own: None,
            close_pending: false,
        };
        // Checkpointed mid-replay: it goes on replaying.
        if let Some(part) = replay_parts.first() {
            slot.resume_from(part)?;
            if !slot.replaying() {
                // Not replaying: the part carries the partition's own watermark
                // (its rows may be well past the job's watermark when it was
                // checkpointed, while other partitions held that back). It
                // catches up from there if the job's watermark is ahead.
                let own = max_option(state.watermark, slot.catch_up.and_then(|c| c.watermark));
                slot.floor = state.watermark;
                slot.own = own;
                slot.catch_up = self
                    .watermark
                    .is_some_and(|job| own.is_none_or(|own| own < job))
                    .then_some(CatchUp { watermark: own });
            }
        }
        // What the job's watermark (or, catching up, its own) has passed is
        // closed at the next advance.
        slot.close_pending = self.watermark.is_some();
        self.partitions.insert(state.partition, slot);
        Ok(())
    }

    /// Whether `partition` is still replaying after a [`resume`](Self::resume):
    /// skipping what the previous owner took in, emitting nothing it emitted
    /// (a checkpoint taken meanwhile carries that on).
    pub fn replaying(&self, partition: u32) -> bool {
        self.partitions
            .get(&partition)
            .is_some_and(PartitionSlot::replaying)
    }

    /// How far `partition`'s input has been taken in (see [`Progress`]).
    pub fn progress(&self, partition: u32) -> Progress {
        let mut emitted_through = self.effective_watermark();
        if let Some(catch_up) = self.partitions.get(&partition).and_then(|p| p.catch_up) {
            emitted_through = catch_up.watermark.map(|w| self.less_lateness(w));
        }
        // A replay must also rebuild the memory of readings taken in, or it
        // would take copies of them in again.
        let remembered = self.memories.get(&partition).and_then(Dedup::horizon);
        let Some(slot) = self.partitions.get(&partition) else {
            return Progress {
                horizon: remembered,
                emitted_through,
            };
        };
        if slot.close_pending {
            // Restored, not yet closed to the watermark: emitted only through
            // what its checkpoint had.
            emitted_through = slot.floor.map(|w| self.less_lateness(w));
        }
        let horizon = if self.event_time.is_none() {
            // Without event time nothing ever leaves the state for good.
            (slot.operator.state_groups() > 0).then_some(i64::MIN)
        } else {
            min_option(slot.operator.horizon(), remembered)
        };
        Progress {
            horizon,
            emitted_through: max_option(emitted_through, slot.emitted_floor),
        }
    }

    /// Takes `partition` over by replay from a previous owner's committed offset,
    /// at that owner's `progress`: replayed rows older than its horizon are skipped
    /// (counted in [`JobCounters::rows_replayed_done`]), and windows and sessions
    /// it emitted are not emitted again. The partition must hold no state here.
    ///
    /// The job's watermark, moved on by this instance's other partitions, may be
    /// ahead of the replayed rows: they are not late. Until the partition's own
    /// watermark (its latest event time less the source's delay) reaches the
    /// job's, that own watermark decides which of its rows are late and closes
    /// its windows; from then on it follows the job's watermark.
    pub fn resume(&mut self, partition: u32, progress: Progress) -> Result<()> {
        if self
            .partitions
            .get(&partition)
            .is_some_and(|p| p.operator.state_groups() > 0)
        {
            return Err(EngineError::Checkpoint(format!(
                "partition {partition} already holds state"
            )));
        }
        self.partitions.remove(&partition);
        self.memories.remove(&partition);
        if let Some(settings) = &self.dedup {
            let mut memory = Dedup::new(Arc::clone(settings))?;
            memory.resume(progress.horizon);
            self.memories.insert(partition, memory);
        }
        let Some(slot) = self.slot(partition)? else {
            return Ok(());
        };
        slot.done_before = progress.horizon;
        slot.emitted_floor = progress.emitted_through;
        slot.catch_up = Some(CatchUp::default());
        if let Some(through) = progress.emitted_through {
            slot.operator.suppress_through(through);
        }
        Ok(())
    }

    fn effective_watermark(&self) -> Option<i64> {
        self.watermark.map(|w| self.less_lateness(w))
    }

    /// A source watermark with the allowed lateness taken off: what closes windows.
    fn less_lateness(&self, watermark: i64) -> i64 {
        minus_lateness(watermark, self.lateness_ms)
    }

    /// Forgets a partition's state (the partition was revoked and its state is
    /// checkpointed or will be rebuilt by its next owner).
    pub fn release(&mut self, partition: u32) {
        self.partitions.remove(&partition);
        self.policies.remove(&partition);
        self.memories.remove(&partition);
    }

    /// The watermark last passed to [`advance`](Self::advance).
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Takes a batch of source rows (in the source table's schema) from `partition`
    /// (0 for a source without partitions).
    pub fn process(&mut self, partition: u32, batch: RecordBatch, out: &mut Emitted) -> Result<()> {
        self.process_bounded(partition, batch, None, out)
    }

    /// [`process`](Self::process), where the caller vouches for event times only
    /// up to `trusted` (a Kafka source: the batch's latest arrival time plus the
    /// tolerated clock skew). A replaying partition's own watermark then follows
    /// the lesser of its latest event time and `trusted`, as the source's does.
    pub fn process_bounded(
        &mut self,
        partition: u32,
        batch: RecordBatch,
        trusted: Option<i64>,
        out: &mut Emitted,
    ) -> Result<()> {
        self.counters.rows_in += batch.num_rows() as u64;
        let (batch, times) = self.split_late(partition, batch, out)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (batch, times) = self.deduplicate(partition, batch, times, out)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = apply_all(&self.before, batch)?;
        let (global, delay) = (self.watermark, self.delay_ms);
        let lateness = self.lateness_ms;
        match self.slot(partition)? {
            None => self.emit(partition, vec![batch], out),
            Some(slot) => {
                let mut emitted = Vec::new();
                slot.operator.process(&batch, times, &mut emitted)?;
                // The batch's latest event time the caller vouches for, less
                // the delay: where it moves the partition's own watermark.
                let mark = times
                    .map(|times| trusted.map_or(times.last, |t| t.min(times.last)))
                    .map(|last| last.saturating_sub(delay));
                slot.own = max_option(slot.own, mark);
                if let (Some(catch_up), Some(mark)) = (&mut slot.catch_up, mark) {
                    let own = max_option(catch_up.watermark, Some(mark));
                    catch_up.watermark = own;
                    if let Some(own) = own {
                        slot.operator
                            .advance(own.saturating_sub(lateness), &mut emitted)?;
                        if global.is_none_or(|g| own >= g) {
                            // Caught up: rows behind its own watermark stay late.
                            slot.floor = max_option(slot.floor, Some(own));
                            slot.catch_up = None;
                        }
                    }
                }
                self.emit(partition, emitted, out)
            }
        }
    }

    /// Moves the job's watermark to `watermark` (a source watermark; the allowed
    /// lateness is subtracted here), emitting every window it closes.
    pub fn advance(&mut self, watermark: i64, out: &mut Emitted) -> Result<()> {
        self.close_restored(out)?;
        if self.watermark.is_some_and(|w| watermark <= w) {
            return Ok(());
        }
        self.watermark = Some(watermark);
        let effective = minus_lateness(watermark, self.lateness_ms);
        let partitions: Vec<u32> = self.memories.keys().copied().collect();
        for partition in partitions {
            self.forget(partition);
        }
        let mut emitted = Vec::new();
        for (&partition, slot) in self.partitions.iter_mut() {
            if let Some(catch_up) = slot.catch_up {
                match catch_up.watermark {
                    Some(own) if own >= watermark => {
                        slot.floor = max_option(slot.floor, Some(own));
                        slot.catch_up = None;
                    }
                    // The input has ended: everything closes.
                    _ if watermark == END_OF_TIME => slot.catch_up = None,
                    // Still replaying: its own rows move it.
                    _ => continue,
                }
            }
            let mut closed = Vec::new();
            slot.operator.advance(effective, &mut closed)?;
            emitted.push((partition, closed));
        }
        for (partition, batches) in emitted {
            self.emit(partition, batches, out)?;
        }
        Ok(())
    }

    /// Closes, in each partition restored since the last advance, what the
    /// job's watermark has passed (its own, if it is catching up): the rows
    /// checkpointed with it may have passed windows the job's watermark had not
    /// yet then, and no reading of its own may come to close them.
    fn close_restored(&mut self, out: &mut Emitted) -> Result<()> {
        let Some(job) = self.watermark else {
            return Ok(());
        };
        let lateness = self.lateness_ms;
        let mut emitted = Vec::new();
        for (&partition, slot) in self.partitions.iter_mut() {
            if !std::mem::take(&mut slot.close_pending) {
                continue;
            }
            let through = match slot.catch_up {
                Some(catch_up) => catch_up.watermark,
                None => Some(job),
            };
            if let Some(through) = through {
                let mut closed = Vec::new();
                slot.operator
                    .advance(minus_lateness(through, lateness), &mut closed)?;
                emitted.push((partition, closed));
            }
        }
        for (partition, batches) in emitted {
            self.emit(partition, batches, out)?;
        }
        Ok(())
    }

    /// The input has ended: closes every window.
    pub fn finish(&mut self, out: &mut Emitted) -> Result<()> {
        self.advance(END_OF_TIME, out)
    }

    /// Finishes `partition`'s rows for the sink: the stages after the stateful
    /// one, then the alert policy if the sink has one.
    fn emit(&mut self, partition: u32, batches: Vec<RecordBatch>, out: &mut Emitted) -> Result<()> {
        for batch in batches {
            let mut batch = apply_all(&self.after, batch)?;
            if let Some(settings) = &self.alerts {
                let policy = self.policies.entry(partition).or_insert_with(|| {
                    AlertPolicy::new(Arc::clone(settings), Arc::clone(&self.output_schema))
                });
                match policy.apply(&batch)? {
                    Some(alerts) => batch = alerts,
                    None => continue,
                }
            }
            if batch.num_rows() > 0 {
                self.counters.rows_out += batch.num_rows() as u64;
                out.rows.push(batch);
            }
        }
        Ok(())
    }

    /// Splits off rows behind the watermark (minus the allowed lateness), or without
    /// an event time, when a stateful operator follows, and drops replayed rows a
    /// previous owner already took in; returns the rest and their event-time span.
    fn split_late(
        &mut self,
        partition: u32,
        batch: RecordBatch,
        out: &mut Emitted,
    ) -> Result<(RecordBatch, Option<BatchTimes>)> {
        let Some(index) = self.event_time else {
            return Ok((batch, None));
        };
        let span = |times: &arrow::array::TimestampMillisecondArray| {
            Some(BatchTimes {
                first: arrow::compute::min(times)?,
                last: arrow::compute::max(times)?,
            })
        };
        let mut times = batch
            .column(index)
            .as_primitive::<TimestampMillisecondType>()
            .clone();
        if self.factory.is_none() {
            return Ok((batch, span(&times)));
        }
        let mut batch = batch;
        if let Some(done) = self.partitions.get(&partition).and_then(|p| p.done_before) {
            let keep = arrow::compute::kernels::cmp::gt_eq(
                &times,
                &arrow::array::Scalar::new(
                    arrow::array::TimestampMillisecondArray::from(vec![done])
                        .with_timezone_opt(times.timezone().map(str::to_owned)),
                ),
            )?;
            // NULL times compare as NULL: not kept here, and late below.
            let keep = match keep.nulls() {
                Some(nulls) => BooleanArray::new(keep.values() & nulls.inner(), None),
                None => keep,
            };
            let skipped = batch.num_rows() - keep.true_count() - times.null_count();
            if skipped > 0 {
                self.counters.rows_replayed_done += skipped as u64;
                let keep = or(&keep, &is_null(&times)?)?;
                batch = filter_record_batch(&batch, &keep)?;
                times = batch
                    .column(index)
                    .as_primitive::<TimestampMillisecondType>()
                    .clone();
            }
        }
        let cutoff = self.cutoff(partition);
        let late: BooleanArray = match cutoff {
            Some(cutoff) => {
                let cutoff = arrow::array::TimestampMillisecondArray::from(vec![cutoff])
                    .with_timezone_opt(times.timezone().map(str::to_owned));
                let behind = lt(&times, &arrow::array::Scalar::new(cutoff))?;
                if times.null_count() > 0 {
                    or(&behind, &is_null(&times)?)?
                } else {
                    behind
                }
            }
            None => is_null(&times)?,
        };
        // NULL comparisons (none here, after the OR) would count as not late.
        let late_count = late.true_count();
        if late_count == 0 {
            return Ok((batch, span(&times)));
        }
        self.counters.rows_late += late_count as u64;
        out.late.push(filter_record_batch(&batch, &late)?);
        let keep = not(&late)?;
        let on_time = filter_record_batch(&batch, &keep)?;
        let on_time_times = arrow::compute::filter(&times, &keep)?;
        Ok((
            on_time,
            span(on_time_times.as_primitive::<TimestampMillisecondType>()),
        ))
    }
}

impl JobRunner {
    /// Rows of `partition` older than this are late: its watermark (its own while
    /// it catches up) or the floor restored with its state, less the allowed
    /// lateness.
    fn cutoff(&self, partition: u32) -> Option<i64> {
        let slot = self.partitions.get(&partition);
        let floor = slot.and_then(|p| p.floor);
        let watermark = match slot.and_then(|p| p.catch_up) {
            Some(catch_up) => catch_up.watermark,
            None => self.watermark,
        };
        max_option(watermark, floor).map(|w| self.less_lateness(w))
    }

    /// Forgets the readings of `partition` behind both its cutoff and its own
    /// latest reading less the source's delay and the allowed lateness: a
    /// partition whose input trails the job's watermark (taken over from another
    /// instance, replaying) still recognises copies of what it reads now.
    fn forget(&mut self, partition: u32) {
        let Some(cutoff) = self.cutoff(partition) else {
            return;
        };
        let (delay, lateness) = (self.delay_ms, self.lateness_ms);
        if let Some(memory) = self.memories.get_mut(&partition)
            && let Some(latest) = memory.latest()
        {
            let own = latest.saturating_sub(delay).saturating_sub(lateness);
            memory.forget_before(cutoff.min(own));
        }
    }

    /// Drops copies of readings `partition` has already taken in (a source that
    /// declares a key); rows older than what its memory has forgotten go to the
    /// late output. Returns the rest and their event-time span.
    fn deduplicate(
        &mut self,
        partition: u32,
        batch: RecordBatch,
        times: Option<BatchTimes>,
        out: &mut Emitted,
    ) -> Result<(RecordBatch, Option<BatchTimes>)> {
        let Some(settings) = &self.dedup else {
            return Ok((batch, times));
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = self.memories.entry(partition) {
            slot.insert(Dedup::new(Arc::clone(settings))?);
        }
        self.forget(partition);
        let Some(memory) = self.memories.get_mut(&partition) else {
            return Ok((batch, times));
        };
        let judged = memory.judge(&batch)?;
        if let Some(too_old) = &judged.too_old {
            self.counters.rows_late += too_old.true_count() as u64;
            out.late.push(filter_record_batch(&batch, too_old)?);
        }
        self.counters.rows_duplicate += judged.duplicates as u64;
        self.counters.rows_replayed_done += judged.done as u64;
        out.duplicates += judged.duplicates as u64;
        if judged.keep.true_count() == batch.num_rows() {
            return Ok((batch, times));
        }
        let batch = filter_record_batch(&batch, &judged.keep)?;
        let times = match self.event_time {
            Some(index) => {
                let times = batch
                    .column(index)
                    .as_primitive::<TimestampMillisecondType>();
                match (arrow::compute::min(times), arrow::compute::max(times)) {
                    (Some(first), Some(last)) => Some(BatchTimes { first, last }),
                    _ => None,
                }
            }
            None => None,
        };
        Ok((batch, times))
    }
}

/// The earlier of two optional times.
fn min_option(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A GROUP BY in physical form: key expressions, their schema, the aggregates.
type Grouping = (Vec<Arc<dyn PhysicalExpr>>, SchemaRef, Aggregates);

/// The physical keys, their schema and the aggregates of a GROUP BY.
fn grouping(
    keys: &[Expr],
    aggregates: &[Expr],
    input: &DFSchema,
    props: &ExecutionProps,
) -> Result<Grouping> {
    Ok((
        physical_exprs(keys, input, props)?,
        key_schema(keys, input)?,
        Aggregates::new(aggregates, input, props)?,
    ))
}

/// The later of two optional times.
/// `watermark` with `lateness_ms` taken off (the end of time stays the end of
/// time): what closes windows.
fn minus_lateness(watermark: i64, lateness_ms: i64) -> i64 {
    if watermark == END_OF_TIME {
        END_OF_TIME
    } else {
        watermark.saturating_sub(lateness_ms)
    }
}

fn max_option(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A stateless stage in physical form; `None` for a stateful one.
fn compile(stage: &Stage, props: &ExecutionProps) -> Result<Option<Stateless>> {
    Ok(match stage {
        Stage::Filter { predicate, input } => {
            Some(Stateless::Filter(physical_expr(predicate, input, props)?))
        }
        Stage::Project {
            exprs,
            input,
            output,
        } => Some(Stateless::Project {
            exprs: physical_exprs(exprs, input, props)?,
            schema: Arc::clone(output.inner()),
        }),
        Stage::WindowAggregate { .. } | Stage::UpdatingAggregate { .. } => None,
    })
}

/// A fresh stateful operator for a stateful stage.
fn stateful(
    stage: &Stage,
    props: &ExecutionProps,
    state_ttl_ms: Option<i64>,
) -> Result<Box<dyn StatefulOperator>> {
    Ok(match stage {
        Stage::WindowAggregate {
            keys,
            window,
            time_column,
            window_position,
            aggregates,
            input,
            output,
        } => {
            let exprs = aggregates;
            let (key_exprs, key_schema, mut aggregates) = grouping(keys, exprs, input, props)?;
            let time_index = input.as_arrow().index_of(time_column)?;
            let output = Arc::clone(output.inner());
            match *window {
                WindowKind::Tumble { size_ms: size } | WindowKind::Hop { size_ms: size, .. } => {
                    let slide = window.pane_ms().unwrap_or(size);
                    // Hop windows of latest values by event time collapse their panes
                    // (see `panes::Collapsed`), with each key's latest row time kept by
                    // a hidden last aggregate.
                    let collapsed = slide < size && aggregates.all_latest_by(time_column);
                    if collapsed {
                        let (qualifier, field) =
                            input.qualified_field_with_unqualified_name(time_column)?;
                        let time = Expr::Column(Column::from((qualifier, field)));
                        let mut with_time = exprs.to_vec();
                        with_time.push(
                            last_value(time.clone(), vec![time.sort(true, false)])
                                .alias("__vigil_latest_row_time"),
                        );
                        aggregates = Aggregates::new(&with_time, input, props)?;
                    }
                    Box::new(PaneWindows::new(
                        slide,
                        size,
                        time_index,
                        key_exprs,
                        key_schema,
                        aggregates,
                        *window_position,
                        output,
                        collapsed,
                    )?)
                }
                WindowKind::Session { gap_ms } => Box::new(Sessions::new(
                    gap_ms,
                    time_index,
                    key_exprs,
                    &key_schema,
                    aggregates,
                    *window_position,
                    output,
                )?),
            }
        }
        Stage::UpdatingAggregate {
            keys,
            aggregates,
            input,
            output,
        } => {
            let (key_exprs, key_schema, aggregates) = grouping(keys, aggregates, input, props)?;
            Box::new(Updating::new(
                key_exprs,
                &key_schema,
                aggregates,
                Arc::clone(output.inner()),
                state_ttl_ms,
            )?)
        }
        Stage::Filter { .. } | Stage::Project { .. } => {
            return Err(EngineError::Internal(
                "a stateless stage has no stateful operator".to_owned(),
            ));
        }
    })
}
