//! One job's operators in physical form, and the late-row split in front of them.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::kernels::cmp::lt;
use arrow::compute::{filter_record_batch, is_null, not, or};
use arrow::datatypes::{Field, Schema, SchemaRef, TimestampMillisecondType};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use super::StatefulOperator;
use super::aggregates::{Aggregates, evaluate, physical_expr, physical_exprs};
use super::panes::PaneWindows;
use super::session::Sessions;
use super::updating::Updating;
use super::watermark::END_OF_TIME;
use crate::error::Result;
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
}

/// Counters of a running job.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JobCounters {
    /// Source rows taken in.
    pub rows_in: u64,
    /// Source rows found late.
    pub rows_late: u64,
    /// Rows emitted for the sink.
    pub rows_out: u64,
}

/// A job's operators, ready to take batches and watermarks.
pub struct JobRunner {
    before: Vec<Stateless>,
    stateful: Option<Box<dyn StatefulOperator>>,
    after: Vec<Stateless>,
    /// The source's event-time column, if it declares one.
    event_time: Option<usize>,
    lateness_ms: i64,
    watermark: Option<i64>,
    output_schema: SchemaRef,
    counters: JobCounters,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner")
            .field("watermark", &self.watermark)
            .field("counters", &self.counters)
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
        let mut stateful: Option<Box<dyn StatefulOperator>> = None;
        for stage in &job.stages {
            let (stateless, op) = compile(stage, job, props)?;
            match (stateless, op) {
                (Some(s), _) if stateful.is_some() => after.push(s),
                (Some(s), _) => before.push(s),
                (None, Some(op)) => stateful = Some(op),
                (None, None) => {}
            }
        }
        let event_time = match &job.source.event_time {
            Some(et) => Some(job.source.schema.index_of(&et.column)?),
            None => None,
        };
        Ok(JobRunner {
            before,
            stateful,
            after,
            event_time,
            lateness_ms: job.time.allowed_lateness_ms,
            watermark: None,
            output_schema: Arc::clone(&job.output_schema),
            counters: JobCounters::default(),
        })
    }

    /// Schema of the rows this job emits.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// Counters so far.
    pub fn counters(&self) -> JobCounters {
        self.counters
    }

    /// Bytes of operator state held.
    pub fn state_bytes(&self) -> usize {
        self.stateful.as_ref().map_or(0, |s| s.state_bytes())
    }

    /// Groups of operator state held (keys, key-windows or sessions).
    pub fn state_groups(&self) -> usize {
        self.stateful.as_ref().map_or(0, |s| s.state_groups())
    }

    /// The watermark last passed to [`advance`](Self::advance).
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Takes a batch of source rows (in the source table's schema).
    pub fn process(&mut self, batch: RecordBatch, out: &mut Emitted) -> Result<()> {
        self.counters.rows_in += batch.num_rows() as u64;
        let (batch, batch_time) = self.split_late(batch, out)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = apply_all(&self.before, batch)?;
        match &mut self.stateful {
            None => self.emit(vec![batch], out),
            Some(op) => {
                let mut emitted = Vec::new();
                op.process(&batch, batch_time, &mut emitted)?;
                self.emit(emitted, out)
            }
        }
    }

    /// Moves the job's watermark to `watermark` (a source watermark; the allowed
    /// lateness is subtracted here), emitting every window it closes.
    pub fn advance(&mut self, watermark: i64, out: &mut Emitted) -> Result<()> {
        if self.watermark.is_some_and(|w| watermark <= w) {
            return Ok(());
        }
        self.watermark = Some(watermark);
        let effective = if watermark == END_OF_TIME {
            END_OF_TIME
        } else {
            watermark.saturating_sub(self.lateness_ms)
        };
        if let Some(op) = &mut self.stateful {
            let mut emitted = Vec::new();
            op.advance(effective, &mut emitted)?;
            self.emit(emitted, out)?;
        }
        Ok(())
    }

    /// The input has ended: closes every window.
    pub fn finish(&mut self, out: &mut Emitted) -> Result<()> {
        self.advance(END_OF_TIME, out)
    }

    fn emit(&mut self, batches: Vec<RecordBatch>, out: &mut Emitted) -> Result<()> {
        for batch in batches {
            let batch = apply_all(&self.after, batch)?;
            if batch.num_rows() > 0 {
                self.counters.rows_out += batch.num_rows() as u64;
                out.rows.push(batch);
            }
        }
        Ok(())
    }

    /// Splits off rows behind the watermark (minus the allowed lateness), or without
    /// an event time, when a stateful operator follows; returns the rest and their
    /// latest event time.
    fn split_late(
        &mut self,
        batch: RecordBatch,
        out: &mut Emitted,
    ) -> Result<(RecordBatch, Option<i64>)> {
        let Some(index) = self.event_time else {
            return Ok((batch, None));
        };
        let times = batch
            .column(index)
            .as_primitive::<TimestampMillisecondType>()
            .clone();
        if self.stateful.is_none() {
            return Ok((batch, arrow::compute::max(&times)));
        }
        let cutoff = self.watermark.map(|w| w.saturating_sub(self.lateness_ms));
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
            return Ok((batch, arrow::compute::max(&times)));
        }
        self.counters.rows_late += late_count as u64;
        out.late.push(filter_record_batch(&batch, &late)?);
        let keep = not(&late)?;
        let on_time = filter_record_batch(&batch, &keep)?;
        let on_time_times = arrow::compute::filter(&times, &keep)?;
        Ok((
            on_time,
            arrow::compute::max(on_time_times.as_primitive::<TimestampMillisecondType>()),
        ))
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

type Compiled = (Option<Stateless>, Option<Box<dyn StatefulOperator>>);

fn compile(stage: &Stage, job: &Job, props: &ExecutionProps) -> Result<Compiled> {
    Ok(match stage {
        Stage::Filter { predicate, input } => (
            Some(Stateless::Filter(physical_expr(predicate, input, props)?)),
            None,
        ),
        Stage::Project {
            exprs,
            input,
            output,
        } => (
            Some(Stateless::Project {
                exprs: physical_exprs(exprs, input, props)?,
                schema: Arc::clone(output.inner()),
            }),
            None,
        ),
        Stage::WindowAggregate {
            keys,
            window,
            time_column,
            window_position,
            aggregates,
            input,
            output,
        } => {
            let (key_exprs, key_schema, aggregates) = grouping(keys, aggregates, input, props)?;
            let time_index = input.as_arrow().index_of(time_column)?;
            let output = Arc::clone(output.inner());
            let op: Box<dyn StatefulOperator> = match *window {
                WindowKind::Tumble { size_ms: size } | WindowKind::Hop { size_ms: size, .. } => {
                    let slide = window.pane_ms().unwrap_or(size);
                    Box::new(PaneWindows::new(
                        slide,
                        size,
                        time_index,
                        key_exprs,
                        key_schema,
                        aggregates,
                        *window_position,
                        output,
                    ))
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
            };
            (None, Some(op))
        }
        Stage::UpdatingAggregate {
            keys,
            aggregates,
            input,
            output,
        } => {
            let (key_exprs, key_schema, aggregates) = grouping(keys, aggregates, input, props)?;
            let op = Updating::new(
                key_exprs,
                &key_schema,
                aggregates,
                Arc::clone(output.inner()),
                job.time.state_ttl_ms,
            )?;
            (None, Some(Box::new(op)))
        }
    })
}
