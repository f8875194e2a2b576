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
//! Every key has one slot, handed out when the key's first row arrives; keys are
//! interned by DataFusion's group values (built again over the keys that stay
//! when some leave), which map each key to a dense id, and the id to the slot. The merged state lives in latest-value columns
//! indexed by slot, read without being consumed. The panes still receiving rows
//! (live panes) keep no keys of their own: a live pane maps the slots it has seen
//! to its own compact groups, so a key is hashed once per row and never again when
//! its pane closes, and costs a live pane its values and two 32-bit indices rather
//! than a second copy of the key. A slot that a live pane holds is not given up,
//! even before any of its rows has closed.
//!
//! The keys are also kept sorted, with their key columns, for as long as no key
//! comes or goes, so a window usually needs neither a sort nor a key conversion.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{filter, take};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use datafusion::logical_expr::EmitTo;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::aggregates::{Aggregates, Inputs, StateBatch, key_converter, state_columns};
use super::checkpoint::SLICE_ROWS;
use super::latest::PickColumn;
use crate::error::{EngineError, Result};

/// A live pane's mark for a slot it has not seen.
const UNSEEN: u32 = u32::MAX;

/// The state of collapsed hop windows: the merge of every closed pane, and the
/// panes still receiving rows.
pub(crate) struct Collapsed {
    /// The keys held, interned to dense ids (`None` without keys: then the one
    /// implicit key has id 0 once a row came).
    keys: Option<Box<dyn GroupValues>>,
    /// Per key id: its slot. Ids are dense and renumbered when keys leave; slots
    /// stay put, so that state indexed by slot never moves.
    slot_of: Vec<u32>,
    key_schema: SchemaRef,
    free: Vec<usize>,
    /// Slots handed out so far.
    slots: usize,
    /// One column per aggregate, the hidden latest row time last: the merge of
    /// every closed pane.
    columns: Vec<Box<dyn PickColumn>>,
    /// Keys with a value in `columns` (the others only have rows in live panes).
    closed_keys: usize,
    /// Panes still receiving rows, by pane number.
    live: BTreeMap<i64, LivePane>,
    converter: RowConverter,
    key_count: usize,
    /// The keys in key order with their slots and key columns, kept while no key
    /// comes or goes (the usual case: the same patients every minute), so a
    /// window needs no sort and no key conversion.
    sorted: Option<Sorted>,
}

/// The rows of one pane that has not closed, grouped through the merged state's
/// slots.
struct LivePane {
    /// Per slot: this pane's group for the slot's key, or [`UNSEEN`].
    group_of: Vec<u32>,
    /// Per group of this pane: its slot.
    slot_of: Vec<u32>,
    /// One column per aggregate, indexed by this pane's groups.
    columns: Vec<Box<dyn PickColumn>>,
}

impl LivePane {
    fn new(aggregates: &Aggregates) -> Result<LivePane> {
        let columns = aggregates.pick_columns()?.ok_or_else(|| {
            EngineError::Internal("collapsed windows over other aggregates".to_owned())
        })?;
        Ok(LivePane {
            group_of: Vec::new(),
            slot_of: Vec::new(),
            columns,
        })
    }

    /// This pane's group for each slot in `slots`, new groups made as needed.
    fn groups(&mut self, slots: &[usize], total_slots: usize) -> Result<Vec<usize>> {
        if self.group_of.len() < total_slots {
            self.group_of.resize(total_slots, UNSEEN);
        }
        let mut groups = Vec::with_capacity(slots.len());
        for &slot in slots {
            let group = match self.group_of[slot] {
                UNSEEN => {
                    let group = u32::try_from(self.slot_of.len())
                        .ok()
                        .filter(|&g| g != UNSEEN)
                        .ok_or_else(|| {
                            EngineError::Internal("more than 2^32 keys in a pane".to_owned())
                        })?;
                    self.group_of[slot] = group;
                    // Slots are below `total_slots`, which `slot_for` keeps in u32.
                    self.slot_of.push(slot as u32);
                    group
                }
                group => group,
            };
            groups.push(group as usize);
        }
        Ok(groups)
    }

    /// Whether this pane has rows of the key in `slot`.
    fn holds(&self, slot: usize) -> bool {
        self.group_of.get(slot).is_some_and(|&g| g != UNSEEN)
    }

    fn size(&self) -> usize {
        self.group_of.capacity() * 4
            + self.slot_of.capacity() * 4
            + self.columns.iter().map(|c| c.size()).sum::<usize>()
    }
}

/// Every key in key order: their slots and key columns.
struct Sorted {
    slots: Vec<usize>,
    columns: Vec<ArrayRef>,
}

impl Sorted {
    fn size(&self) -> usize {
        self.slots.capacity() * 8
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
        let keys = if key_schema.fields().is_empty() {
            None
        } else {
            Some(new_group_values(
                Arc::clone(key_schema),
                &GroupOrdering::None,
            )?)
        };
        Ok(Some(Collapsed {
            keys,
            slot_of: Vec::new(),
            key_schema: Arc::clone(key_schema),
            free: Vec::new(),
            slots: 0,
            columns,
            closed_keys: 0,
            live: BTreeMap::new(),
            converter: key_converter(key_schema)?,
            key_count: key_schema.fields().len(),
            sorted: None,
        }))
    }

    /// Whether no closed pane has left a value (so no window can have rows until
    /// a live pane closes).
    pub(crate) fn is_empty(&self) -> bool {
        self.closed_keys == 0
    }

    /// The earliest pane still receiving rows.
    pub(crate) fn first_live(&self) -> Option<i64> {
        self.live.keys().next().copied()
    }

    /// Keys held, counted once in the merged state and once in each live pane
    /// that has rows of them.
    pub(crate) fn groups(&self) -> usize {
        self.closed_keys + self.live.values().map(|p| p.slot_of.len()).sum::<usize>()
    }

    /// Bytes held.
    pub(crate) fn size(&self) -> usize {
        self.columns.iter().map(|c| c.size()).sum::<usize>()
            + self.keys.as_ref().map_or(0, |k| k.size())
            + self.slot_of.capacity() * 4
            + self.sorted.as_ref().map_or(0, Sorted::size)
            + self.free.capacity() * 8
            + self.live.values().map(LivePane::size).sum::<usize>()
    }

    /// The slot of each row's key (`keys` evaluated over `rows` rows), new keys
    /// given a slot.
    fn slots_of(&mut self, keys: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
        let mut ids = Vec::with_capacity(rows);
        match self.keys.as_mut() {
            Some(index) => index.intern(keys, &mut ids)?,
            None => ids.resize(rows, 0),
        }
        // New keys get the next ids, in order.
        let known = self.slot_of.len();
        let mut slots = Vec::with_capacity(rows);
        for id in ids {
            if id >= self.slot_of.len() {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None if self.slots < UNSEEN as usize => {
                        self.slots += 1;
                        self.slots - 1
                    }
                    None => {
                        return Err(EngineError::Internal(
                            "more than 2^32 keys in hop windows".to_owned(),
                        ));
                    }
                };
                // Below `UNSEEN`, checked above.
                self.slot_of.push(slot as u32);
            }
            slots.push(self.slot_of[id] as usize);
        }
        if self.slot_of.len() > known {
            self.sorted = None;
        }
        for column in &mut self.columns {
            column.reserve(self.slots);
        }
        Ok(slots)
    }

    /// Every key with its slot, by id: the key columns, consumed from the index and
    /// interned again (the same ids, since they are distinct and in id order).
    fn all_keys(&mut self) -> Result<Vec<ArrayRef>> {
        let Some(index) = self.keys.as_mut() else {
            return Ok(Vec::new());
        };
        if index.is_empty() {
            return Ok(Vec::new());
        }
        let columns = index.emit(EmitTo::All)?;
        let mut ids = Vec::with_capacity(self.slot_of.len());
        index.intern(&columns, &mut ids)?;
        if ids.iter().enumerate().any(|(i, &id)| i != id) {
            return Err(EngineError::Internal(
                "keys came back with other ids".to_owned(),
            ));
        }
        Ok(columns)
    }

    /// Keeps only the keys in `kept` (key columns and their slots): the index is
    /// built again over them.
    fn keep_keys(&mut self, kept: &Sorted) -> Result<()> {
        if let Some(index) = self.keys.as_mut() {
            *index = new_group_values(Arc::clone(&self.key_schema), &GroupOrdering::None)?;
            if !kept.slots.is_empty() {
                let mut ids = Vec::with_capacity(kept.slots.len());
                index.intern(&kept.columns, &mut ids)?;
            }
        }
        // Ids follow the order of `kept`.
        self.slot_of = kept.slots.iter().map(|&s| s as u32).collect();
        Ok(())
    }

    fn live_pane(&mut self, pane: i64, aggregates: &Aggregates) -> Result<&mut LivePane> {
        Ok(match self.live.entry(pane) {
            std::collections::btree_map::Entry::Occupied(live) => live.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(LivePane::new(aggregates)?)
            }
        })
    }

    /// Adds rows (their key columns and aggregate inputs) to live pane `pane`.
    pub(crate) fn update(
        &mut self,
        pane: i64,
        keys: &[ArrayRef],
        inputs: &Inputs,
        rows: usize,
        aggregates: &Aggregates,
    ) -> Result<()> {
        let slots = self.slots_of(keys, rows)?;
        let total = self.slots;
        let live = self.live_pane(pane, aggregates)?;
        let groups = live.groups(&slots, total)?;
        let count = live.slot_of.len();
        for (i, column) in live.columns.iter_mut().enumerate() {
            let (values, filter) = aggregates.input_of(inputs, i);
            column.update_batch(values, &groups, filter, count)?;
        }
        Ok(())
    }

    /// Merges checkpointed state (keys, then each aggregate's state) into live
    /// pane `pane`, or into the merged state if `pane` is `None`.
    pub(crate) fn absorb(
        &mut self,
        pane: Option<i64>,
        state: &StateBatch,
        aggregates: &Aggregates,
    ) -> Result<()> {
        let columns = state.batch.columns();
        let key_count = self.key_count;
        if columns.len() < key_count {
            return Err(EngineError::Checkpoint(
                "a state part has fewer columns than the keys".to_owned(),
            ));
        }
        let slots = self.slots_of(&columns[..key_count], state.rows())?;
        let total = self.slots;
        let (targets, groups, count) = match pane {
            None => (&mut self.columns, slots, total),
            Some(pane) => {
                let live = self.live_pane(pane, aggregates)?;
                let groups = live.groups(&slots, total)?;
                let count = live.slot_of.len();
                (&mut live.columns, groups, count)
            }
        };
        let mut states = &columns[key_count..];
        for (i, column) in targets.iter_mut().enumerate() {
            let width = aggregates.state_width(i);
            if states.len() < width {
                return Err(EngineError::Checkpoint(
                    "a state part has too few columns for this job's aggregates".to_owned(),
                ));
            }
            let (mine, rest) = states.split_at(width);
            column.merge_batch(mine, &groups, count)?;
            states = rest;
        }
        Ok(())
    }

    /// Recounts the keys with a value in the merged state (once every part of
    /// a checkpoint is absorbed: a state of a million keys comes in dozens of
    /// slices, and each recount reads every key).
    pub(crate) fn count_closed(&mut self) {
        let slots: Vec<usize> = self.slot_of.iter().map(|&s| s as usize).collect();
        self.closed_keys = self.columns.last().map_or(0, |hidden| {
            hidden.orders_at(&slots).iter().flatten().count()
        });
    }

    /// Closes `pane`: merges its rows into the merged state, then emits the
    /// window starting at `start` (see [`window`](Self::window)).
    pub(crate) fn close(
        &mut self,
        pane: i64,
        start: i64,
        aggregates: &Aggregates,
    ) -> Result<Option<Window>> {
        if let Some(live) = self.live.remove(&pane) {
            let slots: Vec<usize> = live.slot_of.iter().map(|&s| s as usize).collect();
            for (merged, mut column) in self.columns.iter_mut().zip(live.columns) {
                let state = column.state(EmitTo::All)?;
                merged.merge_batch(&state, &slots, self.slots)?;
            }
        }
        self.window(start, aggregates)
    }

    /// The window starting at `start`: every key whose latest closed row is at or
    /// after it, with each value that is. Keys older than `start` with no row in a
    /// live pane are dropped for good.
    fn window(&mut self, start: i64, aggregates: &Aggregates) -> Result<Option<Window>> {
        let sorted = match self.sorted.take() {
            Some(sorted) => sorted,
            None => self.sort()?,
        };
        let Some(hidden) = self.columns.last() else {
            return Ok(None);
        };
        let latest = hidden.orders_at(&sorted.slots);
        let in_window: Vec<bool> = latest
            .iter()
            .map(|t| t.is_some_and(|t| t >= start))
            .collect();
        let leaving: Vec<bool> = sorted
            .slots
            .iter()
            .zip(&in_window)
            .map(|(&slot, &inside)| !inside && !self.live.values().any(|p| p.holds(slot)))
            .collect();
        let (sorted, in_window) = if leaving.iter().any(|&l| l) {
            self.drop_leaving(sorted, &leaving, in_window)?
        } else {
            (sorted, in_window)
        };
        self.closed_keys = latest
            .iter()
            .zip(&leaving)
            .filter(|(t, l)| t.is_some() && !**l)
            .count();
        let window = if in_window.iter().all(|&w| w) {
            self.values(&sorted.slots, &sorted.columns, start, aggregates)?
        } else {
            // Some keys only have rows in live panes, or none since `start`.
            let mask = BooleanArray::from(in_window.clone());
            let keys = sorted
                .columns
                .iter()
                .map(|c| filter(c, &mask))
                .collect::<Result<Vec<_>, _>>()?;
            let slots: Vec<usize> = sorted
                .slots
                .iter()
                .zip(&in_window)
                .filter(|(_, w)| **w)
                .map(|(&s, _)| s)
                .collect();
            self.values(&slots, &keys, start, aggregates)?
        };
        self.sorted = Some(sorted);
        Ok(window)
    }

    /// Every key in key order.
    fn sort(&mut self) -> Result<Sorted> {
        let columns = self.all_keys()?;
        let slots: Vec<usize> = self.slot_of.iter().map(|&s| s as usize).collect();
        if columns.is_empty() || slots.len() < 2 {
            return Ok(Sorted { slots, columns });
        }
        // Row format sorts as the key columns do.
        let rows = self.converter.convert_columns(&columns)?;
        let mut order: Vec<u32> = (0..slots.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
        let indices = UInt32Array::from(order);
        Ok(Sorted {
            slots: indices
                .values()
                .iter()
                .map(|&i| slots[i as usize])
                .collect(),
            columns: columns
                .iter()
                .map(|c| take(c, &indices, None))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Drops the keys marked `leaving` for good, freeing their slots; returns the
    /// keys that stay with their `in_window` marks.
    fn drop_leaving(
        &mut self,
        sorted: Sorted,
        leaving: &[bool],
        in_window: Vec<bool>,
    ) -> Result<(Sorted, Vec<bool>)> {
        let mask = BooleanArray::from(leaving.iter().map(|&l| !l).collect::<Vec<_>>());
        let mut kept = Sorted {
            slots: Vec::with_capacity(sorted.slots.len()),
            columns: sorted
                .columns
                .iter()
                .map(|c| filter(c, &mask))
                .collect::<Result<_, _>>()?,
        };
        let mut kept_in_window = Vec::with_capacity(in_window.len());
        for ((slot, &leave), inside) in sorted.slots.into_iter().zip(leaving).zip(in_window) {
            if leave {
                for column in &mut self.columns {
                    column.clear(slot);
                }
                self.free.push(slot);
            } else {
                kept.slots.push(slot);
                kept_in_window.push(inside);
            }
        }
        self.keep_keys(&kept)?;
        Ok((kept, kept_in_window))
    }

    /// The window of keys `keys` in `slots`: each value at or after `start`.
    fn values(
        &self,
        slots: &[usize],
        keys: &[ArrayRef],
        start: i64,
        aggregates: &Aggregates,
    ) -> Result<Option<Window>> {
        if slots.is_empty() {
            return Ok(None);
        }
        let visible = &self.columns[..self.columns.len() - 1];
        let mut values = Vec::with_capacity(visible.len());
        for (i, column) in visible.iter().enumerate() {
            values.push(aggregates.finish(i, column.values_since(slots, start)?)?);
        }
        Ok(Some((keys.to_vec(), values)))
    }

    /// The checkpoint of the state, handed to `each` a slice at a time (at most
    /// [`SLICE_ROWS`] keys, built only when the one before is handed out): the
    /// merged state (`None` as pane), then each live pane, as batches of keys
    /// and aggregate states (the layout [`absorb`](Self::absorb) takes, which
    /// merges slices of one pane). Nothing is consumed; called again on an
    /// unchanged state, it hands out the same slices. Empty parts are left out.
    pub(crate) fn export(
        &mut self,
        each: &mut dyn FnMut(Option<i64>, RecordBatch) -> Result<()>,
    ) -> Result<()> {
        // The key columns of every key, and where each slot's key is in them:
        // those kept sorted if they are (then the key index is left alone),
        // else taken from the index and interned again.
        let mut row_of: Vec<u32> = vec![UNSEEN; self.slots];
        let columns = match &self.sorted {
            Some(sorted) => {
                for (row, &slot) in sorted.slots.iter().enumerate() {
                    // Rows are below 2^32: there are no more keys than slots.
                    row_of[slot] = row as u32;
                }
                sorted.columns.clone()
            }
            None => {
                for (id, &slot) in self.slot_of.iter().enumerate() {
                    row_of[slot as usize] = id as u32;
                }
                self.all_keys()?
            }
        };
        let keys_at = |slots: &[usize]| -> Result<Vec<ArrayRef>> {
            if self.key_count == 0 {
                return Ok(Vec::new());
            }
            let rows = slots
                .iter()
                .map(|&s| match row_of[s] {
                    UNSEEN => Err(EngineError::Internal(
                        "a live slot without a key".to_owned(),
                    )),
                    row => Ok(row),
                })
                .collect::<Result<Vec<_>>>()?;
            let rows = UInt32Array::from(rows);
            Ok(columns
                .iter()
                .map(|c| take(c, &rows, None))
                .collect::<Result<_, _>>()?)
        };
        if let Some(hidden) = self.columns.last() {
            let all: Vec<usize> = self.slot_of.iter().map(|&s| s as usize).collect();
            let closed: Vec<usize> = all
                .iter()
                .zip(hidden.orders_at(&all))
                .filter(|(_, t)| t.is_some())
                .map(|(&s, _)| s)
                .collect();
            for slice in closed.chunks(SLICE_ROWS) {
                let mut columns = keys_at(slice)?;
                for column in &self.columns {
                    columns.extend(column.state_at(slice)?);
                }
                each(None, state_columns(columns)?)?;
            }
        }
        for (&pane, live) in &self.live {
            let slots: Vec<usize> = live.slot_of.iter().map(|&s| s as usize).collect();
            let groups: Vec<usize> = (0..slots.len()).collect();
            for (slots, groups) in slots.chunks(SLICE_ROWS).zip(groups.chunks(SLICE_ROWS)) {
                let mut columns = keys_at(slots)?;
                for column in &live.columns {
                    columns.extend(column.state_at(groups)?);
                }
                each(Some(pane), state_columns(columns)?)?;
            }
        }
        Ok(())
    }
}
