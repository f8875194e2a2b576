//! Operator state written out and read back: the state a job holds for one source
//! partition, as Arrow batches of accumulator state, encoded as Arrow IPC.
//!
//! Each stateful operator exports its state as a list of *parts*: record batches whose
//! schema metadata names the part's role (a live pane, a frozen pane of a hop window,
//! the open sessions, the updating groups) and a tag (a pane number). A part holds
//! key columns, then operator columns (session bounds, last-seen times), then each
//! aggregate's state columns as DataFusion's `state()` gives them, so restoring is
//! `merge_batch` into fresh accumulators.
//!
//! The encoding is a short header followed by one Arrow IPC stream per part, each
//! prefixed by its length and its row count; the header carries the job's
//! fingerprint so that state written by a different pipeline is refused instead of
//! merged into the wrong aggregates. A part's stream holds it in record batches of
//! at most [`SLICE_ROWS`] rows: the IPC writer copies a whole batch into one
//! buffer before it writes it, so a part of a million groups written as one batch
//! would need a second copy of the state in memory while it is checkpointed.
//! Version 1 checkpoints (one batch per part, no row count) are still read.

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{Int64Type, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, Rows};

use super::aggregates::state_columns;
use crate::error::{EngineError, Result};

/// What a checkpoint starts with (version 2: parts in slices, with row counts).
const MAGIC: &[u8; 8] = b"VIGILST2";
/// What a version 1 checkpoint starts with (each part one batch, no row count).
const MAGIC_V1: &[u8; 8] = b"VIGILST1";
/// Most rows of a part written as one IPC record batch (a few MiB of state).
pub const SLICE_ROWS: usize = 16_384;
/// Schema metadata key: the role of a part within its operator's state.
const ROLE: &str = "vigil.role";
/// Schema metadata key: the part's tag (a pane number; 0 where unused).
const TAG: &str = "vigil.tag";

/// The state one job holds for one source partition, ready to be written out (e.g.
/// to a compacted Kafka topic keyed by job and partition) and restored on whichever
/// instance is assigned the partition next.
#[derive(Debug, Clone)]
pub struct PartitionState {
    /// Fingerprint of the job that wrote it (see [`crate::runtime::JobRunner::fingerprint`]).
    pub job: u64,
    /// The source partition.
    pub partition: u32,
    /// The job's watermark when the state was taken: rows of this partition older
    /// than it (minus the allowed lateness) are late after a restore, because the
    /// windows they belong to may already have been emitted.
    pub watermark: Option<i64>,
    /// The operator's state, as tagged record batches.
    pub parts: Vec<RecordBatch>,
}

impl PartitionState {
    /// Bytes held by the parts in memory.
    pub fn memory_bytes(&self) -> usize {
        self.parts
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }

    /// Rows (groups, panes of groups or sessions) over all parts.
    pub fn rows(&self) -> usize {
        self.parts.iter().map(RecordBatch::num_rows).sum()
    }

    /// Encodes the state: header, then each part as an IPC stream prefixed by its
    /// length and row count.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let encoding = self.encoding()?;
        let mut out = Vec::with_capacity(usize::try_from(encoding.len()).unwrap_or(0));
        encoding.write_to(&mut out)?;
        Ok(out)
    }

    /// The encoding of [`to_bytes`](Self::to_bytes), measured but not yet
    /// written: its length is known before its first byte is, so a large state
    /// can be streamed out in pieces that each say how many there are, without
    /// ever being held whole (each part is encoded twice, once to be measured).
    pub fn encoding(&self) -> Result<Encoding<'_>> {
        let mut lengths = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let mut counted = Counted(0);
            write_part(&mut counted, part)?;
            lengths.push(counted.0);
        }
        Ok(Encoding {
            state: self,
            lengths,
        })
    }
}

/// A [`PartitionState`]'s encoding, measured (see [`PartitionState::encoding`]).
#[derive(Debug)]
pub struct Encoding<'a> {
    state: &'a PartitionState,
    /// Bytes of each part's IPC stream.
    lengths: Vec<u64>,
}

/// Bytes of the header: magic, job, partition, watermark flag and value, part
/// count.
const HEADER_BYTES: u64 = 8 + 8 + 4 + 1 + 8 + 4;
/// Bytes before each part's stream: its length and its row count.
const PART_HEADER_BYTES: u64 = 8 + 8;

impl Encoding<'_> {
    /// Bytes the encoding takes.
    pub fn len(&self) -> u64 {
        HEADER_BYTES
            + self
                .lengths
                .iter()
                .map(|l| PART_HEADER_BYTES + l)
                .sum::<u64>()
    }

    /// Whether it takes no bytes (never: the header is always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the encoding to `out`; fails if a part's IPC stream does not come
    /// out at the length measured.
    pub fn write_to(&self, out: &mut dyn Write) -> Result<()> {
        let state = self.state;
        let header = header(
            state.job,
            state.partition,
            state.watermark,
            state.parts.len(),
        );
        out.write_all(&header).map_err(write_error)?;
        for (part, &length) in state.parts.iter().zip(&self.lengths) {
            write_measured_part(out, part, length)?;
        }
        Ok(())
    }
}

/// Hands every part of a checkpoint, in order, to the function it is given.
pub(crate) type Produce<'a> =
    dyn FnMut(&mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> + 'a;

/// A checkpoint measured from parts produced on demand (see
/// [`JobRunner::measure_in_place`](crate::runtime::JobRunner::measure_in_place)):
/// what its encoding will hold, so that it can be written out as its parts are
/// produced again, one at a time, without the whole state ever held as Arrow
/// batches beside the operator. Its bytes are those of a [`PartitionState`]
/// with the same parts ([`PartitionState::from_bytes`] reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Fingerprint of the job.
    pub job: u64,
    /// The source partition.
    pub partition: u32,
    /// The watermark recorded (see [`PartitionState::watermark`]).
    pub watermark: Option<i64>,
    /// Per part: bytes of its IPC stream and its rows.
    parts: Vec<(u64, u64)>,
}

impl Measured {
    /// Measures the parts `produce` hands out, in order.
    pub(crate) fn new(
        job: u64,
        partition: u32,
        watermark: Option<i64>,
        produce: &mut Produce<'_>,
    ) -> Result<Measured> {
        let mut parts = Vec::new();
        produce(&mut |part| {
            let mut counted = Counted(0);
            write_part(&mut counted, &part)?;
            parts.push((counted.0, part.num_rows() as u64));
            Ok(())
        })?;
        Ok(Measured {
            job,
            partition,
            watermark,
            parts,
        })
    }

    /// Bytes the encoding takes.
    pub fn len(&self) -> u64 {
        HEADER_BYTES
            + self
                .parts
                .iter()
                .map(|(l, _)| PART_HEADER_BYTES + l)
                .sum::<u64>()
    }

    /// Whether it takes no bytes (never: the header is always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Rows over all parts.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|(_, r)| r).sum()
    }

    /// Writes the encoding to `out` from the parts `produce` hands out again;
    /// fails if they are not the parts measured (in number, rows or bytes).
    pub(crate) fn write_to(&self, out: &mut dyn Write, produce: &mut Produce<'_>) -> Result<()> {
        let header = header(self.job, self.partition, self.watermark, self.parts.len());
        out.write_all(&header).map_err(write_error)?;
        let mut at = 0;
        produce(&mut |part| {
            let &(length, rows) = self.parts.get(at).ok_or_else(|| {
                EngineError::Checkpoint(format!(
                    "more parts than the {} measured",
                    self.parts.len()
                ))
            })?;
            at += 1;
            if part.num_rows() as u64 != rows {
                return Err(EngineError::Checkpoint(format!(
                    "a part of {} rows, measured at {rows}",
                    part.num_rows()
                )));
            }
            write_measured_part(out, &part, length)
        })?;
        if at != self.parts.len() {
            return Err(EngineError::Checkpoint(format!(
                "{at} parts written of the {} measured",
                self.parts.len()
            )));
        }
        Ok(())
    }
}

/// The encoding's header: magic, job, partition, watermark, part count.
fn header(job: u64, partition: u32, watermark: Option<i64>, parts: usize) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_BYTES as usize);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&job.to_le_bytes());
    header.extend_from_slice(&partition.to_le_bytes());
    header.push(u8::from(watermark.is_some()));
    header.extend_from_slice(&watermark.unwrap_or(0).to_le_bytes());
    header.extend_from_slice(&(parts as u32).to_le_bytes());
    header
}

/// One part, prefixed by its length and row count; fails if it does not come
/// out at `length` bytes.
fn write_measured_part(out: &mut dyn Write, part: &RecordBatch, length: u64) -> Result<()> {
    out.write_all(&length.to_le_bytes()).map_err(write_error)?;
    out.write_all(&(part.num_rows() as u64).to_le_bytes())
        .map_err(write_error)?;
    let mut counted = Counting { out, bytes: 0 };
    write_part(&mut counted, part)?;
    if counted.bytes != length {
        return Err(EngineError::Checkpoint(format!(
            "a part encoded to {} bytes, measured at {length}",
            counted.bytes
        )));
    }
    Ok(())
}

/// One part as an IPC stream of batches of at most [`SLICE_ROWS`] rows (one
/// empty batch for an empty part). Slices share the part's buffers; only the
/// slice being written is copied.
fn write_part(out: &mut dyn Write, part: &RecordBatch) -> Result<()> {
    let mut writer = StreamWriter::try_new(out, part.schema_ref())?;
    let rows = part.num_rows();
    if rows == 0 {
        writer.write(part)?;
    }
    let mut at = 0;
    while at < rows {
        let n = SLICE_ROWS.min(rows - at);
        writer.write(&part.slice(at, n))?;
        at += n;
    }
    writer.finish()?;
    Ok(())
}

fn write_error(e: std::io::Error) -> EngineError {
    EngineError::Checkpoint(format!("writing the state: {e}"))
}

/// A writer that only counts the bytes.
struct Counted(u64);

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer passing bytes on and counting them.
struct Counting<'w> {
    out: &'w mut dyn Write,
    bytes: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl PartitionState {
    /// Decodes bytes written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<PartitionState> {
        let mut input = Reader { bytes, at: 0 };
        let version = match input.take(MAGIC.len())? {
            m if m == MAGIC => 2,
            m if m == MAGIC_V1 => 1,
            _ => {
                return Err(EngineError::Checkpoint(
                    "not a vigil state checkpoint".to_owned(),
                ));
            }
        };
        let job = u64::from_le_bytes(input.array()?);
        let partition = u32::from_le_bytes(input.array()?);
        let has_watermark = input.take(1)?[0] == 1;
        let watermark = i64::from_le_bytes(input.array()?);
        let count = u32::from_le_bytes(input.array()?);
        let mut parts = Vec::with_capacity(count.min(1024) as usize);
        for i in 0..count {
            let len = u64::from_le_bytes(input.array()?);
            let len = usize::try_from(len)
                .map_err(|_| EngineError::Checkpoint(format!("part {i} is too large")))?;
            let rows = match version {
                1 => None,
                _ => Some(u64::from_le_bytes(input.array()?)),
            };
            parts.push(read_part(i, input.take(len)?, rows)?);
        }
        if input.at != bytes.len() {
            return Err(EngineError::Checkpoint(format!(
                "{} unexpected bytes after the last part",
                bytes.len() - input.at
            )));
        }
        Ok(PartitionState {
            job,
            partition,
            watermark: has_watermark.then_some(watermark),
            parts,
        })
    }
}

/// Part `i` from its IPC stream: its batches in one (a version 1 part has one,
/// without a row count to check against).
fn read_part(i: u32, stream: &[u8], rows: Option<u64>) -> Result<RecordBatch> {
    let reader = StreamReader::try_new(Cursor::new(stream), None)?;
    let schema = reader.schema();
    let mut batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    let read: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if let Some(rows) = rows
        && rows != read as u64
    {
        return Err(EngineError::Checkpoint(format!(
            "part {i} holds {read} rows, written with {rows}"
        )));
    }
    if batches.len() > 1 {
        return Ok(arrow::compute::concat_batches(&schema, &batches)?);
    }
    batches
        .pop()
        .ok_or_else(|| EngineError::Checkpoint(format!("part {i} holds no record batch")))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| EngineError::Checkpoint("truncated".to_owned()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

/// `batch` labelled as part `role` with `tag`.
pub(crate) fn tagged(batch: RecordBatch, role: &str, tag: i64) -> Result<RecordBatch> {
    let metadata: HashMap<String, String> = [
        (ROLE.to_owned(), role.to_owned()),
        (TAG.to_owned(), tag.to_string()),
    ]
    .into();
    let schema = Schema::new_with_metadata(batch.schema().fields().clone(), metadata);
    Ok(batch.with_schema(Arc::new(schema))?)
}

/// The role and tag of a part written by [`tagged`].
pub(crate) fn tag_of(batch: &RecordBatch) -> Result<(&str, i64)> {
    let schema = batch.schema_ref();
    let role = schema
        .metadata()
        .get(ROLE)
        .ok_or_else(|| EngineError::Checkpoint("a part has no role".to_owned()))?;
    let tag = schema
        .metadata()
        .get(TAG)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| EngineError::Checkpoint(format!("part {role} has no tag")))?;
    Ok((role.as_str(), tag))
}

/// A checkpoint part of an operator that keeps per-key state in row format
/// (sessions, updating groups): key columns, BIGINT operator columns (times), then
/// aggregate state columns.
pub(crate) struct KeyedPart {
    /// The keys in row format (`None` for a global aggregate without keys).
    pub(crate) keys: Option<Rows>,
    /// The operator's BIGINT columns.
    pub(crate) times: Vec<Int64Array>,
    /// The aggregate state columns.
    pub(crate) states: Vec<ArrayRef>,
}

impl KeyedPart {
    /// Writes keys (already as columns), operator times and states as part `role`.
    pub(crate) fn write(
        role: &str,
        mut keys: Vec<ArrayRef>,
        times: Vec<Int64Array>,
        states: Vec<ArrayRef>,
    ) -> Result<RecordBatch> {
        keys.extend(times.into_iter().map(|t| Arc::new(t) as ArrayRef));
        keys.extend(states);
        tagged(state_columns(keys)?, role, 0)
    }

    /// Reads a part written by [`write`](Self::write) with `times` BIGINT columns,
    /// refusing one of another role or shape.
    pub(crate) fn read(
        part: &RecordBatch,
        role: &str,
        converter: &RowConverter,
        key_count: usize,
        times: usize,
    ) -> Result<KeyedPart> {
        let (found, _) = tag_of(part)?;
        let columns = part.columns();
        if found != role || columns.len() < key_count + times {
            return Err(EngineError::Checkpoint(format!(
                "expected state part {role:?}, found {found:?} of {} columns",
                columns.len()
            )));
        }
        let keys = if key_count == 0 {
            None
        } else {
            Some(converter.convert_columns(&columns[..key_count])?)
        };
        let state_at = key_count + times;
        let times = columns[key_count..state_at]
            .iter()
            .map(|c| {
                c.as_primitive_opt::<Int64Type>().cloned().ok_or_else(|| {
                    EngineError::Checkpoint(format!("part {role:?}: times are not BIGINT"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(KeyedPart {
            keys,
            times,
            states: columns[state_at..].to_vec(),
        })
    }

    /// The key of `row` in row format (empty without keys).
    pub(crate) fn key(&self, row: usize) -> &[u8] {
        self.keys.as_ref().map_or(&[], |k| k.row(row).data())
    }
}

/// FNV-1a, 64 bits: a fingerprint that stays the same across builds and platforms
/// (the standard library's hasher promises neither).
pub(crate) fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};

    fn state() -> PartitionState {
        let batch = RecordBatch::try_from_iter([
            (
                "k0",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
            (
                "c1",
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
        ])
        .expect("batch");
        PartitionState {
            job: 42,
            partition: 3,
            watermark: Some(-5),
            parts: vec![
                tagged(batch.clone(), "live", 17).expect("tag"),
                tagged(batch.slice(1, 1), "groups", -2).expect("tag"),
            ],
        }
    }

    #[test]
    fn bytes_round_trip() {
        let state = state();
        let back = PartitionState::from_bytes(&state.to_bytes().expect("encode")).expect("decode");
        assert_eq!(back.job, 42);
        assert_eq!(back.partition, 3);
        assert_eq!(back.watermark, Some(-5));
        assert_eq!(back.parts, state.parts);
        assert_eq!(tag_of(&back.parts[0]).expect("tag"), ("live", 17));
        assert_eq!(tag_of(&back.parts[1]).expect("tag"), ("groups", -2));
    }

    #[test]
    fn the_measured_encoding_is_the_bytes_written() {
        let mut state = state();
        for watermark in [Some(-5), None] {
            state.watermark = watermark;
            let encoding = state.encoding().expect("measure");
            let bytes = state.to_bytes().expect("encode");
            assert_eq!(encoding.len(), bytes.len() as u64);
            let mut written = Vec::new();
            encoding.write_to(&mut written).expect("write");
            assert_eq!(written, bytes);
            let back = PartitionState::from_bytes(&written).expect("decode");
            assert_eq!(back.watermark, watermark);
        }
        let empty = PartitionState {
            parts: Vec::new(),
            ..state
        };
        assert_eq!(
            empty.encoding().expect("measure").len(),
            empty.to_bytes().expect("encode").len() as u64
        );
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let bytes = state().to_bytes().expect("encode");
        for cut in 0..bytes.len() {
            assert!(
                PartitionState::from_bytes(&bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(PartitionState::from_bytes(&extra).is_err());
        assert!(PartitionState::from_bytes(b"something else entirely").is_err());
    }

    /// A state of one large part: strings, nulls and more rows than a slice.
    fn large_state(rows: usize) -> PartitionState {
        let batch = RecordBatch::try_from_iter([
            (
                "k0",
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("patient-{i}")),
                )) as ArrayRef,
            ),
            (
                "c1",
                Arc::new(Int64Array::from_iter(
                    (0..rows as i64).map(|i| (i % 7 != 0).then_some(i * 3)),
                )) as ArrayRef,
            ),
        ])
        .expect("batch");
        PartitionState {
            job: 7,
            partition: 0,
            watermark: None,
            parts: vec![
                tagged(batch.slice(5, rows - 5), "live", 1).expect("tag"),
                tagged(batch.slice(0, 0), "empty", 2).expect("tag"),
            ],
        }
    }

    /// A part of more than [`SLICE_ROWS`] rows is written as several batches
    /// and read back as the one it was, at the measured length.
    #[test]
    fn large_parts_are_written_in_slices_and_read_back_whole() {
        let state = large_state(2 * SLICE_ROWS + 1_000);
        let bytes = state.to_bytes().expect("encode");
        assert_eq!(state.encoding().expect("measure").len(), bytes.len() as u64);
        // The first part's stream holds three batches.
        let at = HEADER_BYTES as usize;
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("len")) as usize;
        let start = at + PART_HEADER_BYTES as usize;
        let stream = &bytes[start..start + len];
        let batches = StreamReader::try_new(Cursor::new(stream), None)
            .expect("stream")
            .count();
        assert_eq!(batches, 3);
        let back = PartitionState::from_bytes(&bytes).expect("decode");
        assert_eq!(back.parts, state.parts);
        assert_eq!(tag_of(&back.parts[0]).expect("tag"), ("live", 1));
        assert_eq!(back.parts[1].num_rows(), 0);
    }

    /// A part whose rows do not add up to its row count is refused.
    #[test]
    fn a_part_short_of_its_row_count_is_an_error() {
        let mut bytes = large_state(100).to_bytes().expect("encode");
        let at = HEADER_BYTES as usize + 8;
        bytes[at..at + 8].copy_from_slice(&96u64.to_le_bytes());
        let error = PartitionState::from_bytes(&bytes).expect_err("refused");
        assert!(
            error.to_string().contains("95 rows, written with 96"),
            "{error}"
        );
    }

    /// Version 1 checkpoints (each part one batch, no row count), written by
    /// earlier builds, are still read.
    #[test]
    fn version_1_checkpoints_are_read() {
        let state = state();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC_V1);
        bytes.extend_from_slice(&state.job.to_le_bytes());
        bytes.extend_from_slice(&state.partition.to_le_bytes());
        bytes.push(1);
        bytes.extend_from_slice(&(-5i64).to_le_bytes());
        bytes.extend_from_slice(&(state.parts.len() as u32).to_le_bytes());
        for part in &state.parts {
            let mut stream = Vec::new();
            let mut writer = StreamWriter::try_new(&mut stream, part.schema_ref()).expect("writer");
            writer.write(part).expect("write");
            writer.finish().expect("finish");
            drop(writer);
            bytes.extend_from_slice(&(stream.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&stream);
        }
        let back = PartitionState::from_bytes(&bytes).expect("decode");
        assert_eq!(back.watermark, Some(-5));
        assert_eq!(back.parts, state.parts);
    }

    #[test]
    fn fingerprints_are_stable() {
        assert_eq!(fingerprint(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fingerprint("job 1"), fingerprint("job 2"));
    }
}
