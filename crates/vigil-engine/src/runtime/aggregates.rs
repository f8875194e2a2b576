//! DataFusion aggregate functions driven incrementally: arguments evaluated once per
//! batch, grouped accumulators updated per pane, partial state frozen into Arrow
//! batches and merged when a window closes.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{cast, filter, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::functions_aggregate::first_last::{first_value_udaf, last_value_udaf};
use datafusion::logical_expr::expr::{AggregateFunction, NullTreatment};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Accumulator, Cast, EmitTo, Expr, ExprSchemable, GroupsAccumulator};
use datafusion::physical_expr::aggregate::{AggregateFunctionExpr, LoweredAggregateBuilder};
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr, create_physical_expr};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::checkpoint::tagged;
use super::latest::{LatestSpec, PickColumn};
use crate::error::{EngineError, Result};

/// The aggregate expressions of one GROUP BY, in physical form.
pub(crate) struct Aggregates {
    exprs: Vec<Arc<AggregateFunctionExpr>>,
    /// Per aggregate: its arguments, then its ORDER BY expressions (what the
    /// accumulator's `update_batch` expects).
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Per aggregate: its `FILTER (WHERE ...)`.
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// Per aggregate: how many state columns it has.
    state_widths: Vec<usize>,
    /// Per aggregate: the type its final values are cast back to, where the
    /// aggregate runs over a widened argument (see [`widen_boolean`]).
    narrow_to: Vec<Option<DataType>>,
    /// Per aggregate: run by vigil's compact latest-value accumulator (see
    /// [`latest`](super::latest)) instead of DataFusion's.
    latest: Vec<Option<LatestSpec>>,
}

/// Evaluated aggregate inputs for some rows.
pub(crate) struct Inputs {
    values: Vec<Vec<ArrayRef>>,
    filters: Vec<Option<BooleanArray>>,
}

impl Inputs {
    /// The rows where `mask` is true.
    pub(crate) fn filter(&self, mask: &BooleanArray) -> Result<Inputs> {
        let values = self
            .values
            .iter()
            .map(|cols| cols.iter().map(|c| filter(c, mask)).collect())
            .collect::<Result<_, _>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| filter(f, mask).map(|a| a.as_boolean().clone()))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Inputs { values, filters })
    }

    /// The rows at `indices`, in that order.
    pub(crate) fn take(&self, indices: &UInt32Array) -> Result<Inputs> {
        let values = self
            .values
            .iter()
            .map(|cols| cols.iter().map(|c| take(c, indices, None)).collect())
            .collect::<Result<_, _>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| take(f, indices, None).map(|a| a.as_boolean().clone()))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Inputs { values, filters })
    }

    /// Rows `offset..offset + len` (zero-copy).
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Inputs {
        Inputs {
            values: self
                .values
                .iter()
                .map(|cols| cols.iter().map(|c| c.slice(offset, len)).collect())
                .collect(),
            filters: self
                .filters
                .iter()
                .map(|f| f.as_ref().map(|f| f.slice(offset, len)))
                .collect(),
        }
    }

    /// The values of aggregate `i`, with its FILTER applied (for row-wise
    /// accumulators, which take no filter argument).
    pub(crate) fn filtered_values(&self, i: usize) -> Result<Vec<ArrayRef>> {
        match &self.filters[i] {
            None => Ok(self.values[i].clone()),
            Some(mask) => Ok(self.values[i]
                .iter()
                .map(|c| filter(c, mask))
                .collect::<Result<_, _>>()?),
        }
    }
}

impl Aggregates {
    /// Plans `exprs` (a logical Aggregate's aggregate expressions) over `input`.
    pub(crate) fn new(exprs: &[Expr], input: &DFSchema, props: &ExecutionProps) -> Result<Self> {
        let physical_input = input.as_arrow();
        let planning = PhysicalPlanningContext::default();
        let mut out = Aggregates {
            exprs: Vec::with_capacity(exprs.len()),
            args: Vec::with_capacity(exprs.len()),
            filters: Vec::with_capacity(exprs.len()),
            state_widths: Vec::with_capacity(exprs.len()),
            narrow_to: Vec::with_capacity(exprs.len()),
            latest: Vec::with_capacity(exprs.len()),
        };
        for expr in exprs {
            let expr = extreme_as_pick(expr, input)?;
            let (expr, narrow_to) = widen_boolean(&expr, input)?;
            let lowered =
                LoweredAggregateBuilder::new(&expr, input, physical_input, props, &planning)
                    .build()?;
            let aggregate = lowered.aggregate;
            let mut args = aggregate.expressions();
            args.extend(aggregate.order_bys().iter().map(|s| Arc::clone(&s.expr)));
            out.state_widths.push(aggregate.state_fields()?.len());
            out.args.push(args);
            out.filters.push(lowered.filter);
            out.exprs.push(aggregate);
            out.narrow_to.push(narrow_to);
            out.latest.push(latest_spec(&expr, input)?);
        }
        Ok(out)
    }

    /// How many aggregates there are.
    pub(crate) fn len(&self) -> usize {
        self.exprs.len()
    }

    /// Evaluates every aggregate's arguments and filter over `batch`.
    pub(crate) fn inputs(&self, batch: &RecordBatch) -> Result<Inputs> {
        let rows = batch.num_rows();
        let values = self
            .args
            .iter()
            .map(|args| {
                args.iter()
                    .map(|a| a.evaluate(batch).and_then(|v| v.into_array(rows)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| {
                        let mask = f.evaluate(batch)?.into_array(rows)?;
                        Ok::<_, EngineError>(mask.as_boolean().clone())
                    })
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(Inputs { values, filters })
    }

    /// Fresh grouped accumulators, one per aggregate (row-wise accumulators behind an
    /// adapter where the function has no grouped form, e.g. DISTINCT).
    pub(crate) fn groups_accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.exprs
            .iter()
            .zip(&self.latest)
            .map(|(agg, latest)| {
                if let Some(latest) = latest {
                    Ok(latest.accumulator()?)
                } else if agg.groups_accumulator_supported() {
                    Ok(agg.create_groups_accumulator()?)
                } else {
                    let agg = Arc::clone(agg);
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                        agg.create_accumulator()
                    })) as Box<dyn GroupsAccumulator>)
                }
            })
            .collect()
    }

    /// Fresh row-wise accumulators, one per aggregate.
    pub(crate) fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>> {
        Ok(self
            .exprs
            .iter()
            .map(|agg| agg.create_accumulator())
            .collect::<Result<_, _>>()?)
    }

    /// Number of state columns of aggregate `i`.
    pub(crate) fn state_width(&self, i: usize) -> usize {
        self.state_widths[i]
    }

    /// Columns of vigil's latest-value accumulator, one per aggregate, if every
    /// aggregate is a latest (or earliest) value by a time ordering; `None`
    /// otherwise.
    pub(crate) fn pick_columns(&self) -> Result<Option<Vec<Box<dyn PickColumn>>>> {
        if self.latest.is_empty() || self.latest.iter().any(Option::is_none) {
            return Ok(None);
        }
        Ok(Some(
            self.latest
                .iter()
                .flatten()
                .map(|l| Ok(l.column()?))
                .collect::<Result<_>>()?,
        ))
    }

    /// The evaluated inputs (arguments, then ordering) of aggregate `i`, and its
    /// FILTER.
    pub(crate) fn input_of<'a>(
        &self,
        inputs: &'a Inputs,
        i: usize,
    ) -> (&'a [ArrayRef], Option<&'a BooleanArray>) {
        (&inputs.values[i], inputs.filters[i].as_ref())
    }

    /// Whether every aggregate keeps the value at the greatest `column` (e.g.
    /// `last_value(v ORDER BY column)`): over windows on `column`, the merge of all
    /// closed panes then answers every window, see [`PaneWindows`](super::panes).
    pub(crate) fn all_latest_by(&self, column: &str) -> bool {
        !self.latest.is_empty()
            && self.latest.iter().all(|l| {
                l.as_ref()
                    .is_some_and(|l| l.keep_greatest && l.order_column.as_deref() == Some(column))
            })
    }

    /// Aggregate `i`'s final values in the type the plan declared.
    pub(crate) fn finish(&self, i: usize, values: ArrayRef) -> Result<ArrayRef> {
        match &self.narrow_to[i] {
            Some(ty) if values.data_type() != ty => Ok(cast(&values, ty)?),
            _ => Ok(values),
        }
    }
}

/// Value-picking aggregates whose grouped accumulator DataFusion provides for
/// integers but not for booleans (DataFusion 55: `first_value`/`last_value` with
/// ORDER BY). Over a BOOLEAN argument they would fall back to one row-wise
/// accumulator per group, several times slower to update, merge and freeze, so the
/// argument is widened to TINYINT and the picked value narrowed back: the function
/// only selects one input value, so the result is exactly the same.
const WIDEN_BOOLEAN: [&str; 2] = ["first_value", "last_value"];

/// The latest-value form of `expr`, if it is `last_value`/`first_value` of a
/// supported type over one non-null BIGINT or TIMESTAMP ordering, without DISTINCT.
fn latest_spec(expr: &Expr, input: &DFSchema) -> Result<Option<LatestSpec>> {
    let inner = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(function) = inner else {
        return Ok(None);
    };
    let params = &function.params;
    let (Some(last), [argument], [order]) = (
        match function.func.name() {
            "last_value" => Some(true),
            "first_value" => Some(false),
            _ => None,
        },
        params.args.as_slice(),
        params.order_by.as_slice(),
    ) else {
        return Ok(None);
    };
    if params.distinct {
        return Ok(None);
    }
    let value_type = argument.get_type(input)?;
    let order_type = order.expr.get_type(input)?;
    if order.expr.nullable(input)? || !LatestSpec::supports(&value_type, &order_type) {
        return Ok(None);
    }
    Ok(Some(LatestSpec {
        keep_greatest: last == order.asc,
        ignore_nulls: params.null_treatment == Some(NullTreatment::IgnoreNulls),
        value_type,
        order_type,
        order_column: match &order.expr {
            Expr::Column(column) => Some(column.name.clone()),
            _ => None,
        },
    }))
}

/// `max(t)` and `min(t)` of a non-null BIGINT or TIMESTAMP `t` (`max(observed_at)
/// AS latest_at`) written as the value of `t` at the greatest (least) `t`:
/// `last_value(t ORDER BY t)` (`first_value(t ORDER BY t)`), the same value, so
/// that a GROUP BY whose other aggregates are latest values runs on vigil's
/// compact accumulator (see [`latest`](super::latest)) instead of falling back
/// to DataFusion's row-wise accumulators for all of them. Anything else
/// (DISTINCT, a nullable argument, other types) is returned unchanged.
fn extreme_as_pick(expr: &Expr, input: &DFSchema) -> Result<Expr> {
    let (inner, alias) = match expr {
        Expr::Alias(alias) => (alias.expr.as_ref(), Some(alias)),
        other => (other, None),
    };
    let Expr::AggregateFunction(function) = inner else {
        return Ok(expr.clone());
    };
    let params = &function.params;
    let udaf = match function.func.name() {
        "max" => last_value_udaf(),
        "min" => first_value_udaf(),
        _ => return Ok(expr.clone()),
    };
    let [argument] = params.args.as_slice() else {
        return Ok(expr.clone());
    };
    let time_like = matches!(
        argument.get_type(input)?,
        DataType::Int64 | DataType::Timestamp(_, _)
    );
    if params.distinct || !params.order_by.is_empty() || !time_like || argument.nullable(input)? {
        return Ok(expr.clone());
    }
    let pick = Expr::AggregateFunction(AggregateFunction::new_udf(
        udaf,
        vec![argument.clone()],
        false,
        params.filter.clone(),
        vec![argument.clone().sort(true, false)],
        None,
    ));
    Ok(match alias {
        Some(alias) => pick.alias_qualified(alias.relation.clone(), alias.name.clone()),
        None => pick,
    })
}

/// `expr` with a BOOLEAN argument of a [`WIDEN_BOOLEAN`] aggregate cast to TINYINT,
/// and the type to cast its result back to; `expr` unchanged otherwise.
fn widen_boolean(expr: &Expr, input: &DFSchema) -> Result<(Expr, Option<DataType>)> {
    let (inner, alias) = match expr {
        Expr::Alias(alias) => (alias.expr.as_ref(), Some(alias)),
        other => (other, None),
    };
    let Expr::AggregateFunction(function) = inner else {
        return Ok((expr.clone(), None));
    };
    let [argument] = function.params.args.as_slice() else {
        return Ok((expr.clone(), None));
    };
    if !WIDEN_BOOLEAN.contains(&function.func.name())
        || argument.get_type(input)? != DataType::Boolean
    {
        return Ok((expr.clone(), None));
    }
    let mut widened = function.clone();
    widened.params.args = vec![Expr::Cast(Cast::new(
        Box::new(argument.clone()),
        DataType::Int8,
    ))];
    let widened = Expr::AggregateFunction(widened);
    let widened = match alias {
        Some(alias) => widened.alias_qualified(alias.relation.clone(), alias.name.clone()),
        None => widened,
    };
    Ok((widened, Some(DataType::Boolean)))
}

/// Physical forms of logical expressions over `input`.
pub(crate) fn physical_exprs(
    exprs: &[Expr],
    input: &DFSchema,
    props: &ExecutionProps,
) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    exprs
        .iter()
        .map(|e| physical_expr(e, input, props))
        .collect()
}

/// The physical form of a logical expression over `input`.
pub(crate) fn physical_expr(
    expr: &Expr,
    input: &DFSchema,
    props: &ExecutionProps,
) -> Result<Arc<dyn PhysicalExpr>> {
    let expr = super::intervals::intervals_as_durations(expr, input)?;
    Ok(create_physical_expr(
        &expr,
        input,
        props,
        &PhysicalPlanningContext::default(),
    )?)
}

/// A row converter for group keys of `key_schema`: keys as comparable bytes, for
/// operators that keep per-key state in their own maps (sessions, updating groups).
pub(crate) fn key_converter(key_schema: &SchemaRef) -> Result<arrow::row::RowConverter> {
    Ok(arrow::row::RowConverter::new(
        key_schema
            .fields()
            .iter()
            .map(|f| arrow::row::SortField::new(f.data_type().clone()))
            .collect(),
    )?)
}

/// Evaluates `exprs` over `batch`.
pub(crate) fn evaluate(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
) -> Result<Vec<ArrayRef>> {
    let rows = batch.num_rows();
    Ok(exprs
        .iter()
        .map(|e| e.evaluate(batch).and_then(|v| v.into_array(rows)))
        .collect::<Result<_, _>>()?)
}

/// Groups (distinct key values) with one grouped accumulator per aggregate: the
/// partial aggregate of one pane, or a merge of several.
pub(crate) struct Groups {
    keys: Box<dyn GroupValues>,
    /// Number of key columns (0 for a global aggregate: one implicit group).
    key_columns: usize,
    /// Whether the implicit group of a global aggregate has seen rows.
    touched: bool,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    indices: Vec<usize>,
}

impl Groups {
    /// Empty groups over keys of `key_schema`.
    pub(crate) fn new(key_schema: &SchemaRef, aggregates: &Aggregates) -> Result<Groups> {
        Ok(Groups {
            keys: new_group_values(Arc::clone(key_schema), &GroupOrdering::None)?,
            key_columns: key_schema.fields().len(),
            touched: false,
            accumulators: aggregates.groups_accumulators()?,
            indices: Vec::new(),
        })
    }

    /// Number of groups.
    pub(crate) fn len(&self) -> usize {
        if self.key_columns == 0 {
            usize::from(self.touched)
        } else {
            self.keys.len()
        }
    }

    /// Bytes held.
    pub(crate) fn size(&self) -> usize {
        self.keys.size() + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    fn intern(&mut self, keys: &[ArrayRef], rows: usize) -> Result<()> {
        if self.key_columns == 0 {
            // A global aggregate: every row in the one group, kept implicitly.
            self.indices.clear();
            self.indices.resize(rows, 0);
            self.touched = true;
            return Ok(());
        }
        self.keys.intern(keys, &mut self.indices)?;
        Ok(())
    }

    fn total(&self) -> usize {
        if self.key_columns == 0 {
            1
        } else {
            self.keys.len()
        }
    }

    /// Adds rows (their key columns and aggregate inputs).
    pub(crate) fn update(&mut self, keys: &[ArrayRef], inputs: &Inputs, rows: usize) -> Result<()> {
        self.intern(keys, rows)?;
        let total = self.total();
        for (i, acc) in self.accumulators.iter_mut().enumerate() {
            acc.update_batch(
                &inputs.values[i],
                &self.indices,
                inputs.filters[i].as_ref(),
                total,
            )?;
        }
        Ok(())
    }

    /// Merges a frozen state batch (from [`Groups::freeze`]).
    pub(crate) fn merge(&mut self, state: &StateBatch) -> Result<()> {
        let columns = state.batch.columns();
        let (keys, mut states) = columns.split_at(state.key_count);
        self.intern(keys, state.batch.num_rows())?;
        let total = self.total();
        for (acc, &width) in self.accumulators.iter_mut().zip(state.widths.iter()) {
            let (mine, rest) = states.split_at(width);
            acc.merge_batch(mine, &self.indices, total)?;
            states = rest;
        }
        Ok(())
    }

    /// Freezes the groups into a state batch, emptying them.
    pub(crate) fn freeze(mut self, aggregates: &Aggregates) -> Result<StateBatch> {
        let mut columns = if self.key_columns == 0 {
            Vec::new()
        } else {
            self.keys.emit(EmitTo::All)?
        };
        let key_count = columns.len();
        let mut widths = Vec::with_capacity(self.accumulators.len());
        for (i, acc) in self.accumulators.iter_mut().enumerate() {
            let state = acc.state(EmitTo::All)?;
            if state.len() != aggregates.state_width(i) {
                return Err(EngineError::Internal(format!(
                    "aggregate {i} gave {} state columns, expected {}",
                    state.len(),
                    aggregates.state_width(i)
                )));
            }
            widths.push(state.len());
            columns.extend(state);
        }
        StateBatch::new(columns, key_count, widths.into())
    }

    /// Final values: key columns and one column per aggregate, emptying the groups.
    pub(crate) fn evaluate(
        mut self,
        aggregates: &Aggregates,
    ) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let keys = if self.key_columns == 0 {
            Vec::new()
        } else {
            self.keys.emit(EmitTo::All)?
        };
        let values = self
            .accumulators
            .iter_mut()
            .enumerate()
            .map(|(i, a)| aggregates.finish(i, a.evaluate(EmitTo::All)?))
            .collect::<Result<_>>()?;
        Ok((keys, values))
    }
}

/// Partial aggregate state as an Arrow batch: key columns, then each aggregate's
/// state columns. This is what panes are frozen into, merged from, and what a
/// checkpoint writes out.
#[derive(Clone, Debug)]
pub(crate) struct StateBatch {
    /// The columns.
    pub(crate) batch: RecordBatch,
    /// How many leading columns are keys.
    pub(crate) key_count: usize,
    /// State columns per aggregate.
    pub(crate) widths: Arc<[usize]>,
}

impl StateBatch {
    fn new(columns: Vec<ArrayRef>, key_count: usize, widths: Arc<[usize]>) -> Result<StateBatch> {
        let batch = state_columns(columns)?;
        Ok(StateBatch {
            batch,
            key_count,
            widths,
        })
    }

    /// This state as a checkpoint part labelled `role` and `tag`.
    pub(crate) fn to_part(&self, role: &str, tag: i64) -> Result<RecordBatch> {
        tagged(self.batch.clone(), role, tag)
    }

    /// A state batch from a checkpoint part of the same aggregates.
    pub(crate) fn from_part(
        part: &RecordBatch,
        key_count: usize,
        aggregates: &Aggregates,
    ) -> Result<StateBatch> {
        let widths: Arc<[usize]> = aggregates.state_widths.clone().into();
        let expected = key_count + widths.iter().sum::<usize>();
        if part.num_columns() != expected {
            return Err(EngineError::Checkpoint(format!(
                "a state part has {} columns, this job's state has {expected}",
                part.num_columns()
            )));
        }
        StateBatch::new(part.columns().to_vec(), key_count, widths)
    }

    /// Number of groups held.
    pub(crate) fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Bytes held.
    pub(crate) fn size(&self) -> usize {
        self.batch.get_array_memory_size()
    }
}

/// Columns of partial state as a batch (columns named by position: state has no
/// names of its own).
pub(crate) fn state_columns(columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
        .collect();
    let rows = columns.first().map_or(0, |c| c.len());
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// Adds `inputs` to row-wise accumulators (one per aggregate).
pub(crate) fn update_all(accumulators: &mut [Box<dyn Accumulator>], inputs: &Inputs) -> Result<()> {
    for (i, acc) in accumulators.iter_mut().enumerate() {
        acc.update_batch(&inputs.filtered_values(i)?)?;
    }
    Ok(())
}

/// Merges row-wise accumulators `from` into `into` (same aggregates, same order).
pub(crate) fn merge_all(
    into: &mut [Box<dyn Accumulator>],
    from: Vec<Box<dyn Accumulator>>,
) -> Result<()> {
    for (acc, mut other) in into.iter_mut().zip(from) {
        let state = other
            .state()?
            .iter()
            .map(|s| s.to_array())
            .collect::<Result<Vec<_>, _>>()?;
        acc.merge_batch(&state)?;
    }
    Ok(())
}

/// The partial state of several groups' row-wise accumulators: each aggregate's
/// state columns in turn, one row per group, in the order given. This consumes the
/// accumulators' state (DataFusion's `state()` may), so they must be rebuilt from
/// it with [`accumulators_from`]. `None` if there are no groups.
pub(crate) fn states_of<'a>(
    groups: impl Iterator<Item = &'a mut Vec<Box<dyn Accumulator>>>,
    aggregates: &Aggregates,
) -> Result<Option<Vec<ArrayRef>>> {
    let width: usize = aggregates.state_widths.iter().sum();
    let mut columns: Vec<Vec<datafusion::common::ScalarValue>> = vec![Vec::new(); width];
    let mut any = false;
    for accs in groups {
        any = true;
        let mut column = 0;
        for (i, acc) in accs.iter_mut().enumerate() {
            let state = acc.state()?;
            if state.len() != aggregates.state_width(i) {
                return Err(EngineError::Internal(format!(
                    "aggregate {i} gave {} state values, expected {}",
                    state.len(),
                    aggregates.state_width(i)
                )));
            }
            for value in state {
                columns[column].push(value);
                column += 1;
            }
        }
    }
    if !any {
        return Ok(None);
    }
    columns
        .into_iter()
        .map(|c| Ok(datafusion::common::ScalarValue::iter_to_array(c)?))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Fresh row-wise accumulators holding the state at `row` of `states` (columns as
/// [`states_of`] wrote them).
pub(crate) fn accumulators_from(
    aggregates: &Aggregates,
    states: &[ArrayRef],
    row: usize,
) -> Result<Vec<Box<dyn Accumulator>>> {
    let mut accumulators = aggregates.accumulators()?;
    let mut rest = states;
    for (i, acc) in accumulators.iter_mut().enumerate() {
        let width = aggregates.state_width(i);
        if rest.len() < width {
            return Err(EngineError::Checkpoint(
                "a state part has too few columns for this job's aggregates".to_owned(),
            ));
        }
        let (mine, later) = rest.split_at(width);
        let slices: Vec<ArrayRef> = mine.iter().map(|c| c.slice(row, 1)).collect();
        acc.merge_batch(&slices)?;
        rest = later;
    }
    if !rest.is_empty() {
        return Err(EngineError::Checkpoint(
            "a state part has more columns than this job's aggregates".to_owned(),
        ));
    }
    Ok(accumulators)
}

/// Final values of several groups' row-wise accumulators: one column per aggregate,
/// one row per group, in the order given. `groups` must not be empty.
pub(crate) fn values_of<'a>(
    groups: impl Iterator<Item = &'a mut Vec<Box<dyn Accumulator>>>,
    aggregates: &Aggregates,
) -> Result<Vec<ArrayRef>> {
    let mut columns: Vec<Vec<datafusion::common::ScalarValue>> = vec![Vec::new(); aggregates.len()];
    for accs in groups {
        for (column, acc) in columns.iter_mut().zip(accs.iter_mut()) {
            column.push(acc.evaluate()?);
        }
    }
    columns
        .into_iter()
        .enumerate()
        .map(|(i, c)| aggregates.finish(i, datafusion::common::ScalarValue::iter_to_array(c)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::TimeUnit;
    use datafusion::functions_aggregate::expr_fn::{max, min};
    use datafusion::prelude::col;

    use super::*;

    fn schema() -> DFSchema {
        let fields = vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ];
        DFSchema::try_from(Schema::new(fields)).expect("schema")
    }

    fn picks(exprs: &[Expr]) -> bool {
        let aggregates =
            Aggregates::new(exprs, &schema(), &ExecutionProps::new()).expect("aggregates");
        aggregates.pick_columns().expect("columns").is_some()
    }

    fn latest_x() -> Expr {
        datafusion::functions_aggregate::expr_fn::last_value(
            col("x"),
            vec![col("t").sort(true, false)],
        )
    }

    /// `max`/`min` of the non-null time join the latest values on vigil's
    /// accumulator; of a nullable or non-time column they stay DataFusion's,
    /// and so does the whole GROUP BY.
    #[test]
    fn extremes_of_a_non_null_time_are_picks() {
        assert!(picks(&[latest_x(), max(col("t")).alias("latest_at")]));
        assert!(picks(&[min(col("t")), max(col("t")), latest_x()]));
        assert!(!picks(&[latest_x(), max(col("n"))]));
        assert!(!picks(&[latest_x(), min(col("x"))]));
    }
}
