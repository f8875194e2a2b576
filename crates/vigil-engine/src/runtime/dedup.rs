//! Duplicate readings: copies of one reading, as devices and gateways resend them,
//! taken in once.
//!
//! A source that declares `PRIMARY KEY (patient_id, observed_at, ...)` says which
//! columns identify a reading (the event-time column always among them). For each
//! key, the memory holds which of the other columns have been seen non-NULL. A row
//! is a copy, and is dropped, when every column it carries has already been seen
//! for its key: a resent wide message, or a resent narrow message (one
//! measurement per message, widened into one column) whose measurement was
//! already taken in. A row that brings a column not seen yet for its key (another
//! measurement of the same patient at the same time) is taken in whole. The first
//! copy wins: a resend with a different value does not replace what was taken in.
//!
//! Rows with a NULL in a key column cannot be identified and are taken in. The
//! memory forgets readings once the watermark (less the allowed lateness) has
//! passed them, since a later copy of such a reading is late anyway; a row older
//! than what has been forgotten cannot be judged and is returned as too old, for
//! the late-data output, never passed on unjudged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Int64Array, RecordBatch,
    UInt64Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{Schema, TimestampMillisecondType, UInt64Type};
use arrow::row::{RowConverter, SortField};

use super::checkpoint;
use crate::error::{EngineError, Result};
use crate::sql::ddl::TableDecl;

/// Role of the memory's checkpoint part.
pub(crate) const CHECKPOINT_ROLE: &str = "dedup";
/// Schema metadata key of the checkpoint part: the time before which a
/// replaying partition's rows were judged by a previous owner (see
/// [`Dedup::resume`]).
const DONE_BEFORE: &str = "vigil.done_before";

/// Most columns a keyed source may carry besides its key: one bit each.
pub const MAX_CARRIED_COLUMNS: usize = 64;

/// Which columns of a source identify a reading and which it carries.
#[derive(Debug)]
pub(crate) struct DedupSettings {
    /// The event-time column.
    time: usize,
    /// The other key columns.
    key: Vec<usize>,
    /// The non-key columns: bit `i` of a row's mask is whether `carried[i]` is
    /// non-NULL.
    carried: Vec<usize>,
    /// Row-format fields of `key`.
    fields: Vec<SortField>,
}

impl DedupSettings {
    /// The settings of a source declaring a `PRIMARY KEY`; `None` if it declares none.
    pub(crate) fn of(source: &TableDecl) -> Result<Option<DedupSettings>> {
        if source.key.is_empty() {
            return Ok(None);
        }
        let et = source
            .event_time
            .as_ref()
            .ok_or_else(|| EngineError::Internal("a keyed source without event time".to_owned()))?;
        let schema = &source.schema;
        let time = schema.index_of(&et.column)?;
        let mut key = Vec::new();
        for column in source.key.iter().filter(|c| **c != et.column) {
            key.push(schema.index_of(column)?);
        }
        let carried: Vec<usize> = (0..schema.fields().len())
            .filter(|i| *i != time && !key.contains(i))
            .collect();
        if carried.len() > MAX_CARRIED_COLUMNS {
            return Err(EngineError::Internal(format!(
                "a keyed source carries at most {MAX_CARRIED_COLUMNS} columns besides its key"
            )));
        }
        let fields = key
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect();
        Ok(Some(DedupSettings {
            time,
            key,
            carried,
            fields,
        }))
    }

    fn converter(&self) -> Result<Option<RowConverter>> {
        if self.key.is_empty() {
            return Ok(None);
        }
        Ok(Some(RowConverter::new(self.fields.clone())?))
    }
}

/// What [`Dedup::judge`] made of a batch's rows.
#[derive(Debug)]
pub(crate) struct Judged {
    /// Rows to take in.
    pub(crate) keep: BooleanArray,
    /// Rows older than the readings already forgotten (for the late output), if any.
    pub(crate) too_old: Option<BooleanArray>,
    /// Rows dropped as copies.
    pub(crate) duplicates: usize,
    /// Replayed rows dropped because a previous owner took them in (see
    /// [`Dedup::resume`]).
    pub(crate) done: usize,
}

/// What a row is to the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Taken in: the first copy, one bringing a column not seen yet, or a row that
    /// cannot be identified.
    Taken,
    /// A copy of what was taken in.
    Copy,
    /// Older than the readings forgotten: cannot be judged.
    TooOld,
    /// Replayed, and older than what the previous owner still remembered: it
    /// was taken in or judged there.
    Done,
}

/// Approximate bytes of one remembered reading besides its key bytes: the hash
/// table slot, the boxed key's pointer and length, the mask.
const ENTRY_OVERHEAD: usize = 40;

/// The readings one source partition has taken in, by event time.
pub(crate) struct Dedup {
    settings: Arc<DedupSettings>,
    converter: Option<RowConverter>,
    /// Per event time: each key (its non-time columns in row format) and the
    /// columns seen non-NULL for it.
    seen: BTreeMap<i64, HashMap<Box<[u8]>, u64>>,
    entries: usize,
    bytes: usize,
    /// Readings older than this have been forgotten.
    forgotten_before: Option<i64>,
    /// The latest event time judged.
    latest: Option<i64>,
    /// Set when the partition is replayed from a previous owner's commit: rows
    /// older than this were judged by it.
    done_before: Option<i64>,
}

impl Dedup {
    /// An empty memory.
    pub(crate) fn new(settings: Arc<DedupSettings>) -> Result<Dedup> {
        Ok(Dedup {
            converter: settings.converter()?,
            settings,
            seen: BTreeMap::new(),
            entries: 0,
            bytes: 0,
            forgotten_before: None,
            latest: None,
            done_before: None,
        })
    }

    /// Readings remembered.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// Bytes held (an estimate).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The earliest event time remembered: a copy of a reading from then on is
    /// recognised only if the rows from there on are taken in again after a move.
    pub(crate) fn horizon(&self) -> Option<i64> {
        self.seen.keys().next().copied()
    }

    /// Resumes the partition by replay from a commit made at `horizon` (the
    /// previous owner's [`horizon`](Self::horizon) or earlier): replayed rows
    /// older than it are done, copies or not.
    pub(crate) fn resume(&mut self, horizon: Option<i64>) {
        self.done_before = horizon;
    }

    /// The latest event time judged (or restored).
    pub(crate) fn latest(&self) -> Option<i64> {
        self.latest
    }

    /// Forgets readings older than `cutoff` (rows that old are late).
    pub(crate) fn forget_before(&mut self, cutoff: i64) {
        if self.forgotten_before.is_some_and(|f| f >= cutoff) {
            return;
        }
        self.forgotten_before = Some(cutoff);
        if self
            .seen
            .first_key_value()
            .is_none_or(|(&t, _)| t >= cutoff)
        {
            return;
        }
        let kept = self.seen.split_off(&cutoff);
        for keys in std::mem::replace(&mut self.seen, kept).into_values() {
            self.entries -= keys.len();
            self.bytes -= keys.keys().map(|k| k.len() + ENTRY_OVERHEAD).sum::<usize>();
        }
    }

    /// Judges a batch of source rows in order, remembering what they take in.
    pub(crate) fn judge(&mut self, batch: &RecordBatch) -> Result<Judged> {
        let n = batch.num_rows();
        let s = Arc::clone(&self.settings);
        let times = batch
            .column(s.time)
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| {
                EngineError::Internal("the event-time column is not a timestamp".to_owned())
            })?;
        let key_columns: Vec<ArrayRef> =
            s.key.iter().map(|&i| Arc::clone(batch.column(i))).collect();
        let rows = match &self.converter {
            Some(converter) => Some(converter.convert_columns(&key_columns)?),
            None => None,
        };
        let mut unidentified: Option<NullBuffer> = times.logical_nulls();
        for column in &key_columns {
            unidentified =
                NullBuffer::union(unidentified.as_ref(), column.logical_nulls().as_ref());
        }
        let mut masks = vec![0u64; n];
        for (bit, &c) in s.carried.iter().enumerate() {
            match batch.column(c).logical_nulls() {
                None => masks.iter_mut().for_each(|m| *m |= 1 << bit),
                Some(nulls) => nulls.valid_indices().for_each(|i| masks[i] |= 1 << bit),
            }
        }
        let mut keep = BooleanBufferBuilder::new(n);
        let mut too_old = BooleanBufferBuilder::new(n);
        let (mut old, mut duplicates, mut done) = (0, 0, 0);
        for (i, &mask) in masks.iter().enumerate() {
            let time = times.value(i);
            if times.is_valid(i) {
                self.latest = Some(self.latest.map_or(time, |l| l.max(time)));
            }
            let verdict = if unidentified.as_ref().is_some_and(|u| u.is_null(i)) {
                Verdict::Taken
            } else if self.done_before.is_some_and(|d| time < d) {
                Verdict::Done
            } else if self.forgotten_before.is_some_and(|f| time < f) {
                Verdict::TooOld
            } else {
                let key: &[u8] = rows.as_ref().map_or(&[], |r| r.row(i).data());
                let keys = self.seen.entry(time).or_default();
                match keys.get_mut(key) {
                    Some(seen) if mask & !*seen == 0 => Verdict::Copy,
                    Some(seen) => {
                        *seen |= mask;
                        Verdict::Taken
                    }
                    None => {
                        keys.insert(key.into(), mask);
                        self.entries += 1;
                        self.bytes += key.len() + ENTRY_OVERHEAD;
                        Verdict::Taken
                    }
                }
            };
            keep.append(verdict == Verdict::Taken);
            too_old.append(verdict == Verdict::TooOld);
            old += usize::from(verdict == Verdict::TooOld);
            duplicates += usize::from(verdict == Verdict::Copy);
            done += usize::from(verdict == Verdict::Done);
        }
        let too_old = (old > 0).then(|| BooleanArray::new(too_old.finish(), None));
        Ok(Judged {
            keep: BooleanArray::new(keep.finish(), None),
            too_old,
            duplicates,
            done,
        })
    }

    /// The memory as one checkpoint part: event time, the key's other columns and
    /// the mask of columns seen, one row per reading, in a stable order (the same
    /// memory, the same bytes). The tag is the time before which readings were
    /// forgotten.
    pub(crate) fn export(&self, schema: &Schema) -> Result<RecordBatch> {
        let mut times = Vec::with_capacity(self.entries);
        let mut masks = Vec::with_capacity(self.entries);
        let mut keys: Vec<&[u8]> = Vec::with_capacity(self.entries);
        for (&time, at) in &self.seen {
            let mut sorted: Vec<(&Box<[u8]>, &u64)> = at.iter().collect();
            sorted.sort_unstable();
            for (key, &mask) in sorted {
                times.push(time);
                masks.push(mask);
                keys.push(key);
            }
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(times))];
        if let Some(converter) = &self.converter {
            let parser = converter.parser();
            let rows = converter.convert_rows(keys.iter().map(|k| parser.parse(k)))?;
            columns.extend(rows);
        }
        columns.push(Arc::new(UInt64Array::from(masks)));
        let mut fields = vec![arrow::datatypes::Field::new(
            "time",
            arrow::datatypes::DataType::Int64,
            false,
        )];
        for &i in &self.settings.key {
            fields.push(schema.field(i).clone());
        }
        fields.push(arrow::datatypes::Field::new(
            "mask",
            arrow::datatypes::DataType::UInt64,
            false,
        ));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let batch = checkpoint::tagged(
            batch,
            CHECKPOINT_ROLE,
            self.forgotten_before.unwrap_or(i64::MIN),
        )?;
        // A memory checkpointed while its partition replays goes on replaying.
        let Some(done_before) = self.done_before else {
            return Ok(batch);
        };
        let mut metadata = batch.schema_ref().metadata().clone();
        metadata.insert(DONE_BEFORE.to_owned(), done_before.to_string());
        let schema = Schema::new_with_metadata(batch.schema_ref().fields().clone(), metadata);
        Ok(batch.with_schema(Arc::new(schema))?)
    }

    /// Loads a part written by [`export`](Self::export) of the same source into
    /// this empty memory.
    pub(crate) fn restore(&mut self, part: &RecordBatch) -> Result<()> {
        let bad = |what: &str| EngineError::Checkpoint(format!("dedup state: {what}"));
        let (role, tag) = checkpoint::tag_of(part)?;
        let key_count = self.settings.key.len();
        if role != CHECKPOINT_ROLE || part.num_columns() != key_count + 2 {
            return Err(bad("another key"));
        }
        let times = part
            .column(0)
            .as_primitive_opt::<arrow::datatypes::Int64Type>()
            .ok_or_else(|| bad("times"))?;
        let masks = part
            .column(key_count + 1)
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| bad("masks"))?;
        if times.null_count() > 0 || masks.null_count() > 0 {
            return Err(bad("NULL times or masks"));
        }
        let rows = match &self.converter {
            Some(converter) => Some(converter.convert_columns(&part.columns()[1..=key_count])?),
            None => None,
        };
        for i in 0..part.num_rows() {
            let key: &[u8] = rows.as_ref().map_or(&[], |r| r.row(i).data());
            if self
                .seen
                .entry(times.value(i))
                .or_default()
                .insert(key.into(), masks.value(i))
                .is_none()
            {
                self.entries += 1;
                self.bytes += key.len() + ENTRY_OVERHEAD;
            }
        }
        self.forgotten_before = (tag != i64::MIN).then_some(tag);
        self.latest = self.seen.keys().next_back().copied();
        self.done_before = match part.schema_ref().metadata().get(DONE_BEFORE) {
            Some(text) => Some(text.parse().map_err(|_| bad("done-before time"))?),
            None => None,
        };
        Ok(())
    }
}
