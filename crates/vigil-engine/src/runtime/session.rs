//! Session windows: per key, rows closer than the gap share a window, and a row that
//! bridges two sessions merges them (their partial states merged, no rows kept).
//!
//! A session is `[first row, last row + gap)` and closes when the watermark reaches
//! its end.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use arrow::row::{RowConverter, Rows};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;

use super::StatefulOperator;
use super::aggregates::{
    Aggregates, accumulators_from, evaluate, key_converter, merge_all, states_of, update_all,
    values_of,
};
use super::checkpoint::KeyedPart;
use super::output::{WindowColumn, assemble};
use crate::error::{EngineError, Result};

struct Session {
    start: i64,
    last: i64,
    accumulators: Vec<Box<dyn Accumulator>>,
}

/// Session windows grouped by keys.
pub(crate) struct Sessions {
    gap: i64,
    time_index: usize,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    converter: RowConverter,
    aggregates: Aggregates,
    window_position: usize,
    output: SchemaRef,
    /// Open sessions per key (row-format key bytes), sorted by start, disjoint.
    open: HashMap<Box<[u8]>, Vec<Session>>,
    /// Every open session by end, then key: a watermark closes the sessions at the
    /// front, without visiting the keys whose sessions stay open.
    ends: BTreeSet<(i64, Box<[u8]>)>,
    /// Sessions ending at or before this are not emitted (see
    /// [`StatefulOperator::suppress_through`]).
    emitted_through: Option<i64>,
}

impl Sessions {
    /// Sessions closed by `gap_ms` of inactivity.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        gap_ms: i64,
        time_index: usize,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        key_schema: &SchemaRef,
        aggregates: Aggregates,
        window_position: usize,
        output: SchemaRef,
    ) -> Result<Sessions> {
        let converter = key_converter(key_schema)?;
        Ok(Sessions {
            gap: gap_ms,
            time_index,
            keys,
            converter,
            aggregates,
            window_position,
            output,
            open: HashMap::new(),
            ends: BTreeSet::new(),
            emitted_through: None,
        })
    }

    /// Keys of every row in row format (`None` for a global session, whose key is
    /// empty).
    fn key_rows(&self, batch: &RecordBatch) -> Result<Option<Rows>> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let keys = evaluate(&self.keys, batch)?;
        Ok(Some(self.converter.convert_columns(&keys)?))
    }

    /// Key columns of row-format keys (none for a global session).
    fn key_columns<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        if self.keys.is_empty() {
            return Ok(Vec::new());
        }
        let parser = self.converter.parser();
        Ok(self.converter.convert_rows(keys.map(|k| parser.parse(k)))?)
    }

    /// Adds one run of rows `[first, last]` (already sorted, closer than the gap to
    /// each other) to `key`'s sessions, merging every session it touches.
    fn add_run(
        &mut self,
        key: &[u8],
        first: i64,
        last: i64,
        inputs: &super::aggregates::Inputs,
    ) -> Result<()> {
        let gap = self.gap;
        if !self.open.contains_key(key) {
            self.open.insert(Box::from(key), Vec::new());
        }
        let sessions = self
            .open
            .get_mut(key)
            .ok_or_else(|| EngineError::Internal("session key vanished".to_owned()))?;
        // Sessions overlapping [first, last + gap) are contiguous in start order.
        let touching: Vec<usize> = sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.start < last + gap && first < s.last + gap)
            .map(|(i, _)| i)
            .collect();
        let mut merged = match touching.first() {
            None => Session {
                start: first,
                last,
                accumulators: self.aggregates.accumulators()?,
            },
            Some(&at) => {
                let mut base = sessions.remove(at);
                self.ends.remove(&(base.last + gap, Box::from(key)));
                for _ in 1..touching.len() {
                    let other = sessions.remove(at);
                    self.ends.remove(&(other.last + gap, Box::from(key)));
                    base.start = base.start.min(other.start);
                    base.last = base.last.max(other.last);
                    merge_all(&mut base.accumulators, other.accumulators)?;
                }
                base.start = base.start.min(first);
                base.last = base.last.max(last);
                base
            }
        };
        update_all(&mut merged.accumulators, inputs)?;
        self.ends.insert((merged.last + gap, Box::from(key)));
        let at = sessions.partition_point(|s| s.start < merged.start);
        sessions.insert(at, merged);
        Ok(())
    }
}

impl StatefulOperator for Sessions {
    fn process(
        &mut self,
        batch: &RecordBatch,
        _times: Option<super::BatchTimes>,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = batch
            .column(self.time_index)
            .as_primitive::<TimestampMillisecondType>();
        if times.null_count() > 0 {
            return Err(EngineError::Internal(
                "NULL event time in a session".to_owned(),
            ));
        }
        let times = times.values();
        let rows = self.key_rows(batch)?;
        let key_of = |i: usize| -> &[u8] { rows.as_ref().map_or(&[], |r| r.row(i).data()) };
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            key_of(a).cmp(key_of(b)).then(times[a].cmp(&times[b]))
        });
        let inputs = self
            .aggregates
            .inputs(batch)?
            .take(&UInt32Array::from(order.clone()))?;
        let mut run_start = 0;
        while run_start < n {
            let key = key_of(order[run_start] as usize);
            let first = times[order[run_start] as usize];
            let mut last = first;
            let mut end = run_start + 1;
            while end < n {
                let row = order[end] as usize;
                if key_of(row) != key || times[row] >= last + self.gap {
                    break;
                }
                last = times[row];
                end += 1;
            }
            self.add_run(key, first, last, &inputs.slice(run_start, end - run_start))?;
            run_start = end;
        }
        Ok(())
    }

    fn advance(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        let gap = self.gap;
        // By end, then key (the index's order): the same input gives the same
        // output, however batched.
        let mut closed: Vec<(i64, Box<[u8]>, Session)> = Vec::new();
        while self.ends.first().is_some_and(|(end, _)| *end <= watermark) {
            let Some((end, key)) = self.ends.pop_first() else {
                break;
            };
            let Some(sessions) = self.open.get_mut(&key) else {
                return Err(EngineError::Internal(
                    "a session end without its key".to_owned(),
                ));
            };
            let Some(at) = sessions.iter().position(|s| s.last + gap == end) else {
                return Err(EngineError::Internal(
                    "a session end without its session".to_owned(),
                ));
            };
            let session = sessions.remove(at);
            if sessions.is_empty() {
                self.open.remove(&key);
            }
            if self.emitted_through.is_none_or(|through| end > through) {
                closed.push((end, key, session));
            }
        }
        if closed.is_empty() {
            return Ok(());
        }
        let keys = self.key_columns(closed.iter().map(|(_, k, _)| k.as_ref()))?;
        let window = WindowColumn {
            position: self.window_position,
            starts: closed.iter().map(|(_, _, s)| s.start).collect(),
            ends: closed.iter().map(|(end, _, _)| *end).collect(),
        };
        let values = values_of(
            closed.iter_mut().map(|(_, _, s)| &mut s.accumulators),
            &self.aggregates,
        )?;
        out.push(assemble(&self.output, keys, Some(window), values, false)?);
        Ok(())
    }

    fn horizon(&self) -> Option<i64> {
        self.open.values().flatten().map(|s| s.start).min()
    }

    fn suppress_through(&mut self, end: i64) {
        self.emitted_through = Some(self.emitted_through.map_or(end, |e| e.max(end)));
    }

    fn state_bytes(&self) -> usize {
        self.open
            .iter()
            .map(|(k, sessions)| {
                k.len()
                    + sessions
                        .iter()
                        // Bounds, and the end index's copy of the key.
                        .map(|s| {
                            s.accumulators.iter().map(|a| a.size()).sum::<usize>() + 56 + k.len()
                        })
                        .sum::<usize>()
            })
            .sum()
    }

    fn state_groups(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }

    fn export(self: Box<Self>) -> Result<Vec<RecordBatch>> {
        let mut this = *self;
        let mut open: Vec<(Box<[u8]>, Session)> = this
            .open
            .drain()
            .flat_map(|(key, sessions)| sessions.into_iter().map(move |s| (key.clone(), s)))
            .collect();
        let Some(states) = states_of(
            open.iter_mut().map(|(_, s)| &mut s.accumulators),
            &this.aggregates,
        )?
        else {
            return Ok(Vec::new());
        };
        let keys = this.key_columns(open.iter().map(|(k, _)| k.as_ref()))?;
        let starts = Int64Array::from_iter_values(open.iter().map(|(_, s)| s.start));
        let lasts = Int64Array::from_iter_values(open.iter().map(|(_, s)| s.last));
        Ok(vec![KeyedPart::write(
            SESSIONS,
            keys,
            vec![starts, lasts],
            states,
        )?])
    }

    fn restore(&mut self, parts: &[RecordBatch]) -> Result<()> {
        for part in parts {
            let part_state = KeyedPart::read(part, SESSIONS, &self.converter, self.keys.len(), 2)?;
            let (starts, lasts) = (&part_state.times[0], &part_state.times[1]);
            for row in 0..part.num_rows() {
                let key: Box<[u8]> = Box::from(part_state.key(row));
                let session = Session {
                    start: starts.value(row),
                    last: lasts.value(row),
                    accumulators: accumulators_from(&self.aggregates, &part_state.states, row)?,
                };
                self.ends.insert((session.last + self.gap, key.clone()));
                let sessions = self.open.entry(key).or_default();
                let at = sessions.partition_point(|s| s.start < session.start);
                sessions.insert(at, session);
            }
        }
        Ok(())
    }
}

/// The checkpoint part of [`Sessions`]: keys, start, last row, aggregate state.
const SESSIONS: &str = "sessions";
