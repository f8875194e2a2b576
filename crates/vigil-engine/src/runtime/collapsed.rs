//! Hop windows whose aggregates all keep the value at the latest event time
//! (`last_value(v ORDER BY t)`, t the window's time column), plus a hidden last
//! aggregate that keeps each key's latest row time.
//!
//! For those, the merge of *every* closed pane answers every window: a window
//! `[start, end)` closes once every row before `end` is in a closed pane and no
//! closed pane holds a row at or after `end`, so the latest closed value is the
//! window's value if its time is at or after `start`, and no row of the window has
//! a value otherwise. So one merged state per key replaces the window's sixty
//! panes: a key costs one pane of state instead of one per slide, and a window
//! costs one merge of the pane that closed. Keys whose latest row is older than
//! the window start can appear in no later window and are dropped.
//!
//! The merged state lives in latest-value column accumulators indexed by slot, with
//! keys hashed in row format: a closing pane looks up only its own keys, and the
//! state is read without being consumed. The keys are also kept sorted, with their
//! key columns, for as long as no key comes or goes, so a window usually needs
//! neither a sort nor a key conversion.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::filter;
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use datafusion::common::HashMap;

use super::aggregates::{Aggregates, StateBatch, key_converter, state_columns};
use super::latest::PickColumn;
use crate::error::{EngineError, Result};

/// The merged state of every closed pane of collapsed hop windows.
pub(crate) struct Collapsed {
    /// Key in row format (empty without keys) to its slot.
    index: HashMap<Arc<[u8]>, usize>,
    free: Vec<usize>,
    /// Slots handed out so far.
    slots: usize,
    /// One column per aggregate, the hidden latest row time last.
    columns: Vec<Box<dyn PickColumn>>,
    converter: RowConverter,
    key_count: usize,
    /// The keys in key order with their slots and key columns, kept while no key
    /// comes or goes (the usual case: the same patients every minute), so a
    /// window needs no sort and no key conversion.
    sorted: Option<Sorted>,
}

/// Keys in key order: their slots, row-format keys and key columns.
struct Sorted {
    slots: Vec<usize>,
    keys: Vec<Arc<[u8]>>,
    columns: Vec<ArrayRef>,
}

impl Sorted {
    fn size(&self) -> usize {
        self.slots.capacity() * 8
            + self.keys.capacity() * 16
            + self
                .columns
                .iter()
                .map(|c| c.get_array_memory_size())
                .sum::<usize>()
    }
}

/// Keys and values of one window, in key order.
pub(crate) type Window = (Vec<ArrayRef>, Vec<ArrayRef>);

impl Collapsed {
    /// Collapsed state for `aggregates` (whose last is the hidden row time), or
    /// `None` if some aggregate is not a latest value.
    pub(crate) fn new(key_schema: &SchemaRef, aggregates: &Aggregates) -> Result<Option<Self>> {
        let Some(columns) = aggregates.pick_columns()? else {
            return Ok(None);
        };
        Ok(Some(Collapsed {
            index: HashMap::default(),
            free: Vec::new(),
            slots: 0,
            columns,
            converter: key_converter(key_schema)?,
            key_count: key_schema.fields().len(),
            sorted: None,
        }))
    }

    /// Whether no key is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Keys held.
    pub(crate) fn groups(&self) -> usize {
        self.index.len()
    }

    /// Bytes held.
    pub(crate) fn size(&self) -> usize {
        self.columns.iter().map(|c| c.size()).sum::<usize>()
            + self.index.keys().map(|k| k.len() + 56).sum::<usize>()
            + self.sorted.as_ref().map_or(0, Sorted::size)
            + self.free.capacity() * 8
    }

    /// Merges a closed pane's state (keys, then each aggregate's state), or a
    /// checkpoint of this state.
    pub(crate) fn absorb(&mut self, state: &StateBatch, aggregates: &Aggregates) -> Result<()> {
        let columns = state.batch.columns();
        let rows = state.rows();
        let keys = if self.key_count == 0 {
            None
        } else {
            Some(self.converter.convert_columns(&columns[..self.key_count])?)
        };
        let mut slots = Vec::with_capacity(rows);
        for row in 0..rows {
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
            let slot = match self.index.get(key) {
                Some(&slot) => slot,
                None => {
                    self.sorted = None;
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.slots += 1;
                        self.slots - 1
                    });
                    self.index.insert(Arc::from(key), slot);
                    slot
                }
            };
            slots.push(slot);
        }
        let mut states = &columns[self.key_count..];
        for (i, column) in self.columns.iter_mut().enumerate() {
            let width = aggregates.state_width(i);
            if states.len() < width {
                return Err(EngineError::Checkpoint(
                    "a state part has too few columns for this job's aggregates".to_owned(),
                ));
            }
            let (mine, rest) = states.split_at(width);
            column.merge_batch(mine, &slots, self.slots)?;
            states = rest;
        }
        Ok(())
    }

    /// The window starting at `start`: every key whose latest row is at or after
    /// it, with each value that is; keys older than `start` are dropped for good.
    pub(crate) fn window(&mut self, start: i64, aggregates: &Aggregates) -> Result<Option<Window>> {
        let Some(hidden) = self.columns.last() else {
            return Ok(None);
        };
        let sorted = match self.sorted.take() {
            Some(sorted) => sorted,
            None => {
                // In key order (row format sorts as the key columns do), so the
                // window comes out sorted.
                let mut order: Vec<(&Arc<[u8]>, usize)> =
                    self.index.iter().map(|(k, &slot)| (k, slot)).collect();
                order.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let keys: Vec<Arc<[u8]>> = order.iter().map(|(k, _)| Arc::clone(k)).collect();
                let columns = if self.key_count == 0 || keys.is_empty() {
                    Vec::new()
                } else {
                    let parser = self.converter.parser();
                    self.converter
                        .convert_rows(keys.iter().map(|k| parser.parse(k)))?
                };
                Sorted {
                    slots: order.iter().map(|&(_, slot)| slot).collect(),
                    keys,
                    columns,
                }
            }
        };
        let keep: Vec<bool> = hidden
            .orders_at(&sorted.slots)
            .into_iter()
            .map(|t| t.is_some_and(|t| t >= start))
            .collect();
        let sorted = if keep.iter().all(|&k| k) {
            sorted
        } else {
            // Keys whose latest row is older than the window start leave for good.
            let mask = BooleanArray::from(keep.clone());
            let mut kept = Sorted {
                slots: Vec::with_capacity(sorted.slots.len()),
                keys: Vec::with_capacity(sorted.keys.len()),
                columns: sorted
                    .columns
                    .iter()
                    .map(|c| filter(c, &mask))
                    .collect::<Result<_, _>>()?,
            };
            for ((slot, key), keep) in sorted.slots.into_iter().zip(sorted.keys).zip(keep) {
                if keep {
                    kept.slots.push(slot);
                    kept.keys.push(key);
                } else {
                    self.index.remove(&key);
                    for column in &mut self.columns {
                        column.clear(slot);
                    }
                    self.free.push(slot);
                }
            }
            kept
        };
        let window = if sorted.slots.is_empty() {
            None
        } else {
            let visible = &self.columns[..self.columns.len() - 1];
            let mut values = Vec::with_capacity(visible.len());
            for (i, column) in visible.iter().enumerate() {
                values.push(aggregates.finish(i, column.values_since(&sorted.slots, start)?)?);
            }
            Some((sorted.columns.clone(), values))
        };
        self.sorted = Some(sorted);
        Ok(window)
    }

    /// The whole state as a batch of keys and aggregate states (the layout
    /// [`absorb`](Self::absorb) takes), or `None` if empty.
    pub(crate) fn export(&self) -> Result<Option<RecordBatch>> {
        if self.index.is_empty() {
            return Ok(None);
        }
        let slots: Vec<usize> = self.index.values().copied().collect();
        let mut columns = if self.key_count == 0 {
            Vec::new()
        } else {
            let parser = self.converter.parser();
            self.converter
                .convert_rows(self.index.keys().map(|k| parser.parse(k)))?
        };
        for column in &self.columns {
            columns.extend(column.state_at(&slots)?);
        }
        state_columns(columns).map(Some)
    }
}
