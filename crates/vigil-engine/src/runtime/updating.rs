//! Updating aggregates: a GROUP BY without a window. After every batch the groups it
//! changed are emitted with their new values (emit on change), so an alert need not
//! wait for a window to close. Groups idle for the state TTL (in event time, against
//! the watermark) are dropped, so state does not grow with every key ever seen.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;

use super::StatefulOperator;
use super::aggregates::{
    Aggregates, accumulators_from, evaluate, key_converter, states_of, update_all, values_of,
};
use super::checkpoint::KeyedPart;
use super::latest::PickColumn;
use super::output::assemble;
use crate::error::{EngineError, Result};

struct Group {
    key: Box<[u8]>,
    accumulators: Vec<Box<dyn Accumulator>>,
    /// Latest event time of a batch that updated the group, for expiry.
    last_seen: i64,
    /// Earliest event time of a batch that updated the group (a lower bound of
    /// its rows' times; `i64::MAX` for state restored from a checkpoint, which
    /// holds no row that would have to be replayed).
    first_seen: i64,
}

/// A non-windowed GROUP BY that emits changed groups.
pub(crate) struct Updating {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    converter: RowConverter,
    aggregates: Aggregates,
    output: SchemaRef,
    ttl_ms: Option<i64>,
    index: HashMap<Box<[u8]>, usize>,
    groups: Vec<Option<Group>>,
    free: Vec<usize>,
    /// No group expires before this watermark (a lower bound).
    next_expiry: i64,
    /// When every aggregate is a latest value by time: one column accumulator per
    /// aggregate over every group (indexed by slot), read without being consumed,
    /// instead of row-wise accumulators per group (a few bytes a group instead of a
    /// few hundred, and vectorised updates).
    picks: Option<Vec<Box<dyn PickColumn>>>,
}

impl Updating {
    /// An updating aggregate; with `ttl_ms`, groups not updated for that long (in
    /// event time) expire.
    pub(crate) fn new(
        keys: Vec<Arc<dyn PhysicalExpr>>,
        key_schema: &SchemaRef,
        aggregates: Aggregates,
        output: SchemaRef,
        ttl_ms: Option<i64>,
    ) -> Result<Updating> {
        let converter = key_converter(key_schema)?;
        let picks = aggregates.pick_columns()?;
        Ok(Updating {
            picks,
            keys,
            converter,
            aggregates,
            output,
            ttl_ms,
            index: HashMap::new(),
            groups: Vec::new(),
            free: Vec::new(),
            next_expiry: i64::MAX,
        })
    }

    fn group_of(&mut self, key: &[u8]) -> Result<usize> {
        if let Some(&g) = self.index.get(key) {
            return Ok(g);
        }
        let group = Group {
            key: Box::from(key),
            accumulators: if self.picks.is_some() {
                Vec::new()
            } else {
                self.aggregates.accumulators()?
            },
            last_seen: i64::MIN,
            first_seen: i64::MAX,
        };
        let g = match self.free.pop() {
            Some(g) => {
                self.groups[g] = Some(group);
                g
            }
            None => {
                self.groups.push(Some(group));
                self.groups.len() - 1
            }
        };
        self.index.insert(Box::from(key), g);
        Ok(g)
    }
}

impl Updating {
    /// Marks group `g` updated by a batch whose rows' event times span `times`.
    fn touch(&mut self, g: usize, times: Option<super::BatchTimes>) {
        let (Some(Some(group)), Some(times)) = (self.groups.get_mut(g), times) else {
            return;
        };
        group.last_seen = group.last_seen.max(times.last);
        group.first_seen = group.first_seen.min(times.first);
        if let Some(ttl) = self.ttl_ms {
            self.next_expiry = self.next_expiry.min(group.last_seen.saturating_add(ttl));
        }
    }

    /// Key columns of groups (by slot), none without keys.
    fn key_columns(&self, slots: &[usize]) -> Result<Vec<ArrayRef>> {
        if self.keys.is_empty() {
            return Ok(Vec::new());
        }
        let parser = self.converter.parser();
        let keys = slots
            .iter()
            .filter_map(|&g| self.groups.get(g).and_then(Option::as_ref))
            .map(|group| parser.parse(&group.key));
        Ok(self.converter.convert_rows(keys)?)
    }

    /// `restore` with pick columns: every row's state merged into its group's slot.
    fn restore_picks(&mut self, part: &KeyedPart) -> Result<()> {
        let rows = part.times[0].len();
        let mut slots = Vec::with_capacity(rows);
        for row in 0..rows {
            let g = self.group_of(part.key(row))?;
            if let Some(Some(group)) = self.groups.get_mut(g) {
                group.last_seen = part.times[0].value(row);
            }
            if let (Some(ttl), Some(Some(group))) = (self.ttl_ms, self.groups.get(g)) {
                self.next_expiry = self.next_expiry.min(group.last_seen.saturating_add(ttl));
            }
            slots.push(g);
        }
        let total = self.groups.len();
        let mut states = part.states.as_slice();
        for (i, column) in self.picks.iter_mut().flatten().enumerate() {
            let width = self.aggregates.state_width(i);
            if states.len() < width {
                return Err(EngineError::Checkpoint(
                    "a state part has too few columns for this job's aggregates".to_owned(),
                ));
            }
            let (mine, rest) = states.split_at(width);
            column.merge_batch(mine, &slots, total)?;
            states = rest;
        }
        Ok(())
    }

    /// `process` with pick columns: update them for the rows' groups, emit the
    /// changed groups in key order.
    fn process_picks(
        &mut self,
        batch: &RecordBatch,
        ids: &[usize],
        times: Option<super::BatchTimes>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let inputs = self.aggregates.inputs(batch)?;
        let total = self.groups.len();
        if let Some(picks) = self.picks.as_mut() {
            for (i, column) in picks.iter_mut().enumerate() {
                let (values, filter) = self.aggregates.input_of(&inputs, i);
                column.update_batch(values, ids, filter, total)?;
            }
        }
        let mut changed = ids.to_vec();
        changed.sort_unstable();
        changed.dedup();
        for &g in &changed {
            self.touch(g, times);
        }
        let key_of = |g: usize| self.groups.get(g).and_then(Option::as_ref).map(|x| &x.key);
        changed.sort_by(|&a, &b| key_of(a).cmp(&key_of(b)));
        let keys = self.key_columns(&changed)?;
        let mut values = Vec::with_capacity(self.aggregates.len());
        for (i, column) in self.picks.iter().flatten().enumerate() {
            values.push(self.aggregates.finish(i, column.values_at(&changed)?)?);
        }
        out.push(assemble(&self.output, keys, None, values, false)?);
        Ok(())
    }
}

impl StatefulOperator for Updating {
    fn process(
        &mut self,
        batch: &RecordBatch,
        times: Option<super::BatchTimes>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(n);
        if self.keys.is_empty() {
            let g = self.group_of(&[])?;
            ids.resize(n, g);
        } else {
            let keys = evaluate(&self.keys, batch)?;
            let rows = self.converter.convert_columns(&keys)?;
            for row in rows.iter() {
                ids.push(self.group_of(row.as_ref())?);
            }
        }
        if self.picks.is_some() {
            return self.process_picks(batch, &ids, times, out);
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&i| ids[i as usize]);
        let inputs = self
            .aggregates
            .inputs(batch)?
            .take(&UInt32Array::from(order.clone()))?;
        let mut changed = Vec::new();
        let mut start = 0;
        while start < n {
            let g = ids[order[start] as usize];
            let mut end = start + 1;
            while end < n && ids[order[end] as usize] == g {
                end += 1;
            }
            if let Some(Some(group)) = self.groups.get_mut(g) {
                update_all(&mut group.accumulators, &inputs.slice(start, end - start))?;
            }
            self.touch(g, times);
            changed.push(g);
            start = end;
        }
        // Emit in key order, so the output does not depend on arrival order within
        // the batch. The changed groups are taken out of their slots for the
        // evaluation and put back.
        let mut emitted: Vec<(usize, Group)> = changed
            .into_iter()
            .filter_map(|g| {
                self.groups
                    .get_mut(g)
                    .and_then(Option::take)
                    .map(|x| (g, x))
            })
            .collect();
        emitted.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        let keys: Vec<ArrayRef> = if self.keys.is_empty() {
            Vec::new()
        } else {
            let parser = self.converter.parser();
            self.converter
                .convert_rows(emitted.iter().map(|(_, g)| parser.parse(&g.key)))?
        };
        let values = values_of(
            emitted.iter_mut().map(|(_, g)| &mut g.accumulators),
            &self.aggregates,
        );
        for (g, group) in emitted {
            self.groups[g] = Some(group);
        }
        out.push(assemble(&self.output, keys, None, values?, false)?);
        Ok(())
    }

    fn horizon(&self) -> Option<i64> {
        self.groups
            .iter()
            .flatten()
            .map(|g| g.first_seen)
            .filter(|&t| t != i64::MAX)
            .min()
    }

    fn suppress_through(&mut self, _end: i64) {
        // Changes are emitted as they happen: a replay emits the same values again.
    }

    fn advance(&mut self, watermark: i64, _out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(ttl) = self.ttl_ms else {
            return Ok(());
        };
        if watermark < self.next_expiry {
            return Ok(());
        }
        let mut next = i64::MAX;
        for (g, slot) in self.groups.iter_mut().enumerate() {
            let Some(group) = slot else { continue };
            let expiry = group.last_seen.saturating_add(ttl);
            if expiry <= watermark {
                self.index.remove(&group.key);
                *slot = None;
                self.free.push(g);
                for column in self.picks.iter_mut().flatten() {
                    column.clear(g);
                }
            } else {
                next = next.min(expiry);
            }
        }
        self.next_expiry = next;
        Ok(())
    }

    fn state_bytes(&self) -> usize {
        let columns: usize = self.picks.iter().flatten().map(|c| c.size()).sum();
        columns
            + self
                .groups
                .iter()
                .flatten()
                .map(|g| {
                    2 * g.key.len() + 24 + g.accumulators.iter().map(|a| a.size()).sum::<usize>()
                })
                .sum::<usize>()
    }

    fn state_groups(&self) -> usize {
        self.index.len()
    }

    fn export(self: Box<Self>) -> Result<Vec<RecordBatch>> {
        if let Some(picks) = &self.picks {
            let slots: Vec<usize> = (0..self.groups.len())
                .filter(|&g| self.groups[g].is_some())
                .collect();
            if slots.is_empty() {
                return Ok(Vec::new());
            }
            let mut states = Vec::new();
            for column in picks {
                states.extend(column.state_at(&slots)?);
            }
            let last_seen = Int64Array::from_iter_values(
                slots
                    .iter()
                    .filter_map(|&g| self.groups[g].as_ref().map(|x| x.last_seen)),
            );
            let keys = self.key_columns(&slots)?;
            return Ok(vec![KeyedPart::write(
                GROUPS,
                keys,
                vec![last_seen],
                states,
            )?]);
        }
        let this = *self;
        let mut groups: Vec<Group> = this.groups.into_iter().flatten().collect();
        let Some(states) = states_of(
            groups.iter_mut().map(|g| &mut g.accumulators),
            &this.aggregates,
        )?
        else {
            return Ok(Vec::new());
        };
        let keys: Vec<ArrayRef> = if this.keys.is_empty() {
            Vec::new()
        } else {
            let parser = this.converter.parser();
            this.converter
                .convert_rows(groups.iter().map(|g| parser.parse(&g.key)))?
        };
        let last_seen = Int64Array::from_iter_values(groups.iter().map(|g| g.last_seen));
        Ok(vec![KeyedPart::write(
            GROUPS,
            keys,
            vec![last_seen],
            states,
        )?])
    }

    fn restore(&mut self, parts: &[RecordBatch]) -> Result<()> {
        for part in parts {
            let part_state = KeyedPart::read(part, GROUPS, &self.converter, self.keys.len(), 1)?;
            let last_seen = &part_state.times[0];
            if self.picks.is_some() {
                self.restore_picks(&part_state)?;
                continue;
            }
            for row in 0..part.num_rows() {
                let g = self.group_of(part_state.key(row))?;
                let accumulators = accumulators_from(&self.aggregates, &part_state.states, row)?;
                if let Some(Some(group)) = self.groups.get_mut(g) {
                    group.accumulators = accumulators;
                    group.last_seen = last_seen.value(row);
                    if let Some(ttl) = self.ttl_ms {
                        self.next_expiry =
                            self.next_expiry.min(group.last_seen.saturating_add(ttl));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The checkpoint part of [`Updating`]: keys, last-seen time, aggregate state.
const GROUPS: &str = "groups";
