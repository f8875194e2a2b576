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
//! state is read without being consumed.

use datafusion::common::HashMap;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;

use super::aggregates::{Aggregates, StateBatch, key_converter, state_columns};
use super::latest::PickColumn;
use crate::error::{EngineError, Result};

/// The merged state of every closed pane of collapsed hop windows.
pub(crate) struct Collapsed {
    /// Key in row format (empty without keys) to its slot.
    index: HashMap<Box<[u8]>, usize>,
    free: Vec<usize>,
    /// Slots handed out so far.
    slots: usize,
    /// One column per aggregate, the hidden latest row time last.
    columns: Vec<Box<dyn PickColumn>>,
    converter: RowConverter,
    key_count: usize,
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
            + self.index.keys().map(|k| k.len() + 48).sum::<usize>()
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
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.slots += 1;
                        self.slots - 1
                    });
                    self.index.insert(Box::from(key), slot);
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
        let Some((hidden, visible)) = self.columns.split_last() else {
            return Ok(None);
        };
        // In key order (row format sorts as the key columns do), so the window
        // comes out sorted.
        let mut order: Vec<(&[u8], usize)> = self
            .index
            .iter()
            .map(|(k, &slot)| (k.as_ref(), slot))
            .collect();
        order.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let all: Vec<usize> = order.iter().map(|&(_, slot)| slot).collect();
        let latest = hidden.orders_at(&all);
        let mut kept = Vec::with_capacity(all.len());
        let mut kept_keys = Vec::with_capacity(all.len());
        let mut expired = Vec::new();
        for (&(key, slot), latest) in order.iter().zip(latest) {
            if latest.is_some_and(|t| t >= start) {
                kept.push(slot);
                kept_keys.push(key);
            } else {
                expired.push((Box::<[u8]>::from(key), slot));
            }
        }
        let keys = if self.key_count == 0 || kept.is_empty() {
            Vec::new()
        } else {
            let parser = self.converter.parser();
            self.converter
                .convert_rows(kept_keys.iter().map(|k| parser.parse(k)))?
        };
        let mut values = Vec::with_capacity(visible.len());
        if !kept.is_empty() {
            for (i, column) in visible.iter().enumerate() {
                values.push(aggregates.finish(i, column.values_since(&kept, start)?)?);
            }
        }
        for (key, slot) in expired {
            self.index.remove(&key);
            for column in &mut self.columns {
                column.clear(slot);
            }
            self.free.push(slot);
        }
        if kept.is_empty() {
            return Ok(None);
        }
        Ok(Some((keys, values)))
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
