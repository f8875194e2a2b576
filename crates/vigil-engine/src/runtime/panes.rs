//! Tumbling and hopping windows over panes.
//!
//! Time is cut into panes of the window's slide (for a tumbling window, its size).
//! Rows update the grouped accumulators of their pane; when the watermark passes a
//! pane's end the pane is frozen into a [`StateBatch`] of partial state, and the
//! window ending there is the merge of its `size / slide` most recent panes.
//!
//! Merging every pane of every window would make a 1-hour window sliding each minute
//! cost 60 merges per window. Instead the frozen panes sit in a two-stack queue
//! (the "two stacks" sliding-window aggregation): new panes are pushed on the back
//! and folded into one running aggregate; the front holds suffix aggregates, rebuilt
//! from the back only when the front runs empty. Each window is then one merge of two
//! batches, and each pane is merged about three times in its life, whatever the
//! window size.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::kernels::cmp::eq;
use arrow::datatypes::{Int64Type, SchemaRef, TimestampMillisecondType};
use datafusion::physical_expr::PhysicalExpr;

use super::StatefulOperator;
use super::aggregates::{Aggregates, Groups, Inputs, StateBatch, evaluate, state_columns};
use super::checkpoint::{tag_of, tagged};
use super::collapsed::Collapsed;
use super::output::{WindowColumn, assemble};
use crate::error::{EngineError, Result};

/// Tumbling (one pane per window) or hopping windows, grouped by keys.
pub(crate) struct PaneWindows {
    slide: i64,
    panes_per_window: i64,
    time_index: usize,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    key_schema: SchemaRef,
    aggregates: Aggregates,
    window_position: usize,
    output: SchemaRef,
    /// Panes still receiving rows, by pane number (`floor(t / slide)`).
    live: BTreeMap<i64, Groups>,
    /// Frozen panes of the windows not yet closed (hop only).
    queue: TwoStacks,
    /// The next pane to close: every window ending at or before its start is done.
    next_pane: Option<i64>,
    /// Set for hop windows whose aggregates all keep the latest value by event
    /// time: their merged state replaces the queue of panes.
    collapsed: Option<Collapsed>,
    /// Windows ending at or before this are not emitted (see
    /// [`StatefulOperator::suppress_through`]).
    emitted_through: Option<i64>,
}

impl PaneWindows {
    /// Windows of `size_ms` every `slide_ms` (equal for tumbling windows).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        slide_ms: i64,
        size_ms: i64,
        time_index: usize,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        key_schema: SchemaRef,
        aggregates: Aggregates,
        window_position: usize,
        output: SchemaRef,
        collapsed: bool,
    ) -> Result<PaneWindows> {
        let collapsed = if collapsed {
            Collapsed::new(&key_schema, &aggregates)?
        } else {
            None
        };
        Ok(PaneWindows {
            collapsed,
            slide: slide_ms,
            panes_per_window: size_ms / slide_ms,
            time_index,
            keys,
            key_schema,
            aggregates,
            window_position,
            output,
            live: BTreeMap::new(),
            queue: TwoStacks::default(),
            next_pane: None,
            emitted_through: None,
        })
    }

    fn pane_groups(&mut self, pane: i64) -> Result<&mut Groups> {
        if !self.live.contains_key(&pane) {
            let groups = Groups::new(&self.key_schema, &self.aggregates)?;
            self.live.insert(pane, groups);
        }
        self.live
            .get_mut(&pane)
            .ok_or_else(|| EngineError::Internal("pane vanished".to_owned()))
    }

    /// Emits the window whose last pane is `pane`, from `groups`' final values.
    fn emit(
        &self,
        pane: i64,
        keys: Vec<ArrayRef>,
        values: Vec<ArrayRef>,
        sort: bool,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let end = (pane + 1) * self.slide;
        if self.emitted_through.is_some_and(|through| end <= through) {
            return Ok(());
        }
        let start = end - self.slide * self.panes_per_window;
        let rows = keys
            .first()
            .or_else(|| values.first())
            .map_or(0, |c| c.len());
        let window = WindowColumn::constant(self.window_position, rows, start, end);
        let batch = assemble(&self.output, keys, Some(window), values, sort)?;
        if batch.num_rows() > 0 {
            out.push(batch);
        }
        Ok(())
    }
}

impl PaneWindows {
    /// The earliest pane still receiving rows.
    fn first_live(&self) -> Option<i64> {
        match &self.collapsed {
            Some(collapsed) => collapsed.first_live(),
            None => self.live.first_key_value().map(|(&p, _)| p),
        }
    }

    /// Adds rows of one pane.
    fn update(&mut self, pane: i64, keys: &[ArrayRef], inputs: &Inputs, rows: usize) -> Result<()> {
        match self.collapsed.as_mut() {
            Some(collapsed) => collapsed.update(pane, keys, inputs, rows, &self.aggregates),
            None => self.pane_groups(pane)?.update(keys, inputs, rows),
        }
    }

    /// Closes `pane` in collapsed mode (see [`Collapsed`]): merges its rows into
    /// the merged state and emits the window ending with the pane.
    fn close_collapsed(&mut self, pane: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(collapsed) = self.collapsed.as_mut() else {
            return Ok(());
        };
        let start = (pane + 1 - self.panes_per_window) * self.slide;
        if let Some((keys, values)) = collapsed.close(pane, start, &self.aggregates)? {
            self.emit(pane, keys, values, false, out)?;
        }
        Ok(())
    }

    /// Hands `each` the checkpoint parts of the state besides the live panes
    /// (given, as parts, in `live`): the next pane, the closed panes and the
    /// merged hop state (in slices), none of them consumed.
    fn each_part(
        &mut self,
        live: Vec<RecordBatch>,
        each: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        if let Some(next) = self.next_pane {
            each(tagged(position_batch()?, NEXT_PANE, next)?)?;
        }
        for part in live {
            each(part)?;
        }
        for (pane, state) in &self.queue.front {
            each(state.to_part(FRONT, *pane)?)?;
        }
        for (pane, state) in &self.queue.back {
            each(state.to_part(BACK, *pane)?)?;
        }
        if let Some(total) = &self.queue.back_total {
            each(total.to_part(BACK_TOTAL, 0)?)?;
        }
        if let Some(collapsed) = self.collapsed.as_mut() {
            collapsed.export(&mut |pane, state| {
                each(match pane {
                    Some(pane) => tagged(state, LIVE, pane)?,
                    None => tagged(state, CLOSED, 0)?,
                })
            })?;
        }
        Ok(())
    }
}

impl StatefulOperator for PaneWindows {
    fn process(
        &mut self,
        batch: &RecordBatch,
        _times: Option<super::BatchTimes>,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = batch
            .column(self.time_index)
            .as_primitive::<TimestampMillisecondType>();
        let slide = self.slide;
        let panes = arrow::compute::unary::<_, _, Int64Type>(times, |t| t.div_euclid(slide));
        let keys = evaluate(&self.keys, batch)?;
        let inputs = self.aggregates.inputs(batch)?;
        let (Some(first), Some(last)) = (arrow::compute::min(&panes), arrow::compute::max(&panes))
        else {
            return Err(EngineError::Internal(
                "NULL event time in a window".to_owned(),
            ));
        };
        if first == last {
            return self.update(first, &keys, &inputs, batch.num_rows());
        }
        // Readings mostly come in event-time order: a batch is then a few runs
        // of one pane each, taken as zero-copy slices, in order.
        if panes.null_count() == 0
            && let Some(runs) = pane_runs(panes.values(), MAX_PANE_RUNS)
        {
            for (pane, offset, len) in runs {
                let run_keys: Vec<ArrayRef> = keys.iter().map(|k| k.slice(offset, len)).collect();
                self.update(pane, &run_keys, &inputs.slice(offset, len), len)?;
            }
            return Ok(());
        }
        let mut distinct: Vec<i64> = panes.values().to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        for pane in distinct {
            let mask = eq(&panes, &arrow::array::Int64Array::new_scalar(pane))?;
            let rows = mask.true_count();
            let pane_keys = keys
                .iter()
                .map(|k| arrow::compute::filter(k, &mask))
                .collect::<Result<Vec<_>, _>>()?;
            let pane_inputs = inputs.filter(&mask)?;
            self.update(pane, &pane_keys, &pane_inputs, rows)?;
        }
        Ok(())
    }

    fn advance(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        // Pane p is complete once the watermark reaches its end, (p + 1) * slide.
        let complete_below = watermark.div_euclid(self.slide);
        let Some(mut pane) = self.next_pane.or_else(|| self.first_live()) else {
            return Ok(());
        };
        while pane < complete_below {
            let nothing_open =
                self.queue.is_empty() && self.collapsed.as_ref().is_none_or(Collapsed::is_empty);
            if nothing_open {
                // Nothing open: skip to the next pane with rows.
                match self.first_live() {
                    Some(p) if p < complete_below => pane = pane.max(p),
                    _ => {
                        pane = complete_below;
                        break;
                    }
                }
            }
            if self.collapsed.is_some() {
                self.close_collapsed(pane, out)?;
            } else if self.panes_per_window == 1 {
                if let Some(groups) = self.live.remove(&pane) {
                    let (keys, values) = groups.evaluate(&self.aggregates)?;
                    self.emit(pane, keys, values, true, out)?;
                }
            } else {
                let groups = self.live.remove(&pane);
                if let Some(groups) = groups {
                    let state = groups.freeze(&self.aggregates)?;
                    self.queue
                        .push(pane, state, &self.key_schema, &self.aggregates)?;
                }
                self.queue.evict_before(
                    pane - self.panes_per_window + 1,
                    &self.key_schema,
                    &self.aggregates,
                )?;
                if let Some(groups) = self.queue.query(&self.key_schema, &self.aggregates)? {
                    let (keys, values) = groups.evaluate(&self.aggregates)?;
                    self.emit(pane, keys, values, true, out)?;
                }
            }
            pane += 1;
        }
        self.next_pane = Some(pane);
        Ok(())
    }

    fn horizon(&self) -> Option<i64> {
        let live = self.first_live().map(|pane| pane * self.slide);
        let closed_held =
            !self.queue.is_empty() || self.collapsed.as_ref().is_some_and(|c| !c.is_empty());
        // The next window to close starts here; every earlier one is emitted.
        let open = self
            .next_pane
            .filter(|_| closed_held)
            .map(|pane| (pane + 1 - self.panes_per_window) * self.slide);
        match (live, open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn suppress_through(&mut self, end: i64) {
        self.emitted_through = Some(self.emitted_through.map_or(end, |e| e.max(end)));
    }

    fn state_bytes(&self) -> usize {
        self.live.values().map(Groups::size).sum::<usize>()
            + self.queue.size()
            + self.collapsed.as_ref().map_or(0, Collapsed::size)
    }

    fn state_groups(&self) -> usize {
        self.live.values().map(Groups::len).sum::<usize>()
            + self.queue.groups()
            + self.collapsed.as_ref().map_or(0, Collapsed::groups)
    }

    fn export(mut self: Box<Self>) -> Result<Vec<RecordBatch>> {
        let live = std::mem::take(&mut self.live);
        let mut live_parts = Vec::with_capacity(live.len());
        for (pane, groups) in live {
            live_parts.push(groups.freeze(&self.aggregates)?.to_part(LIVE, pane)?);
        }
        let mut parts = Vec::new();
        self.each_part(live_parts, &mut |part| {
            parts.push(part);
            Ok(())
        })?;
        Ok(parts)
    }

    /// In place unless panes are live outside merged hop state (their
    /// accumulators are drained by being read): the closed panes' state is
    /// frozen Arrow, and merged hop state is read without being consumed, in
    /// slices.
    fn snapshot(&mut self, each: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<bool> {
        if !self.live.is_empty() {
            return Ok(false);
        }
        self.each_part(Vec::new(), each)?;
        Ok(true)
    }

    fn restore(&mut self, parts: &[RecordBatch]) -> Result<()> {
        let key_count = self.key_schema.fields().len();
        for part in parts {
            let (role, tag) = tag_of(part)?;
            if role == NEXT_PANE {
                self.next_pane = Some(tag);
                continue;
            }
            let state = StateBatch::from_part(part, key_count, &self.aggregates)?;
            match role {
                LIVE if self.collapsed.is_some() => {
                    if let Some(collapsed) = self.collapsed.as_mut() {
                        collapsed.absorb(Some(tag), &state, &self.aggregates)?;
                    }
                }
                LIVE => {
                    let mut groups = Groups::new(&self.key_schema, &self.aggregates)?;
                    groups.merge(&state)?;
                    self.live.insert(tag, groups);
                }
                FRONT => self.queue.front.push((tag, state)),
                BACK => self.queue.back.push((tag, state)),
                BACK_TOTAL => self.queue.back_total = Some(state),
                CLOSED => match self.collapsed.as_mut() {
                    Some(collapsed) => collapsed.absorb(None, &state, &self.aggregates)?,
                    None => {
                        return Err(EngineError::Checkpoint(
                            "merged hop state for windows that keep panes".to_owned(),
                        ));
                    }
                },
                other => {
                    return Err(EngineError::Checkpoint(format!(
                        "a window operator has no state part {other:?}"
                    )));
                }
            }
        }
        if let Some(collapsed) = self.collapsed.as_mut() {
            collapsed.count_closed();
        }
        Ok(())
    }
}

/// A batch split into more runs of one pane than this is filtered pane by
/// pane instead (readings far out of event-time order).
const MAX_PANE_RUNS: usize = 64;

/// The runs of equal pane numbers in `panes`, as `(pane, offset, length)`, or
/// `None` if there are more than `max` of them.
fn pane_runs(panes: &[i64], max: usize) -> Option<Vec<(i64, usize, usize)>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=panes.len() {
        if i == panes.len() || panes[i] != panes[start] {
            if runs.len() == max {
                return None;
            }
            runs.push((panes[start], start, i - start));
            start = i;
        }
    }
    Some(runs)
}

/// Checkpoint part roles of [`PaneWindows`].
const NEXT_PANE: &str = "next_pane";
const LIVE: &str = "live";
const FRONT: &str = "front";
const BACK: &str = "back";
const BACK_TOTAL: &str = "back_total";
const CLOSED: &str = "closed";

/// A one-row part that only carries its tag (the operator's position in time).
fn position_batch() -> Result<RecordBatch> {
    state_columns(vec![Arc::new(arrow::array::Int64Array::from(vec![0i64]))])
}

/// A FIFO of frozen panes that answers "the merge of everything in it" with one
/// merge, amortised: the back is folded into a running aggregate as panes arrive,
/// the front holds suffix aggregates (each entry: the merge of its pane and every
/// later front pane), rebuilt from the back when the front runs out.
#[derive(Default)]
struct TwoStacks {
    /// Suffix aggregates, the oldest pane last (the top of the stack).
    front: Vec<(i64, StateBatch)>,
    /// Frozen panes in arrival (time) order.
    back: Vec<(i64, StateBatch)>,
    /// The merge of every pane in `back`.
    back_total: Option<StateBatch>,
}

fn merged(
    batches: &[&StateBatch],
    key_schema: &SchemaRef,
    aggregates: &Aggregates,
) -> Result<Groups> {
    let mut groups = Groups::new(key_schema, aggregates)?;
    for batch in batches {
        groups.merge(batch)?;
    }
    Ok(groups)
}

impl TwoStacks {
    fn is_empty(&self) -> bool {
        self.front.is_empty() && self.back.is_empty()
    }

    fn size(&self) -> usize {
        self.front.iter().map(|(_, b)| b.size()).sum::<usize>()
            + self.back.iter().map(|(_, b)| b.size()).sum::<usize>()
            + self.back_total.as_ref().map_or(0, StateBatch::size)
    }

    fn groups(&self) -> usize {
        // Distinct groups are not tracked; the largest aggregate is a lower bound
        // and, for keys present in every pane, exact.
        self.front
            .last()
            .map_or(0, |(_, b)| b.rows())
            .max(self.back_total.as_ref().map_or(0, StateBatch::rows))
    }

    fn push(
        &mut self,
        pane: i64,
        state: StateBatch,
        key_schema: &SchemaRef,
        aggregates: &Aggregates,
    ) -> Result<()> {
        self.back_total = Some(match self.back_total.take() {
            None => state.clone(),
            Some(total) => merged(&[&total, &state], key_schema, aggregates)?.freeze(aggregates)?,
        });
        self.back.push((pane, state));
        Ok(())
    }

    /// Drops panes older than `first_pane`.
    fn evict_before(
        &mut self,
        first_pane: i64,
        key_schema: &SchemaRef,
        aggregates: &Aggregates,
    ) -> Result<()> {
        loop {
            if self.front.is_empty() {
                match self.back.first() {
                    Some((p, _)) if *p < first_pane => self.flip(key_schema, aggregates)?,
                    _ => return Ok(()),
                }
            }
            match self.front.last() {
                Some((p, _)) if *p < first_pane => {
                    self.front.pop();
                }
                _ => return Ok(()),
            }
        }
    }

    /// Moves the back into the front as suffix aggregates.
    fn flip(&mut self, key_schema: &SchemaRef, aggregates: &Aggregates) -> Result<()> {
        let mut suffix: Option<StateBatch> = None;
        let back = std::mem::take(&mut self.back);
        self.back_total = None;
        for (pane, state) in back.into_iter().rev() {
            let total = match suffix {
                None => state,
                Some(later) => {
                    merged(&[&later, &state], key_schema, aggregates)?.freeze(aggregates)?
                }
            };
            self.front.push((pane, total.clone()));
            suffix = Some(total);
        }
        Ok(())
    }

    /// The merge of every pane held, or `None` if there are none.
    fn query(&self, key_schema: &SchemaRef, aggregates: &Aggregates) -> Result<Option<Groups>> {
        let parts: Vec<&StateBatch> = self
            .front
            .last()
            .map(|(_, b)| b)
            .into_iter()
            .chain(self.back_total.as_ref())
            .collect();
        if parts.is_empty() {
            return Ok(None);
        }
        merged(&parts, key_schema, aggregates).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::pane_runs;

    #[test]
    fn runs_of_equal_panes_in_order() {
        assert_eq!(pane_runs(&[], 4), Some(vec![]));
        assert_eq!(pane_runs(&[7], 4), Some(vec![(7, 0, 1)]));
        assert_eq!(
            pane_runs(&[1, 1, 2, 2, 2, 1, 3], 4),
            Some(vec![(1, 0, 2), (2, 2, 3), (1, 5, 1), (3, 6, 1)])
        );
    }

    #[test]
    fn too_many_runs_is_none() {
        let alternating: Vec<i64> = (0..10).map(|i| i % 2).collect();
        assert_eq!(pane_runs(&alternating, 9), None);
        assert_eq!(pane_runs(&alternating, 10).map(|r| r.len()), Some(10));
    }
}
