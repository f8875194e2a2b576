//! State checkpoints in the progress log: with checkpoints on
//! ([`KafkaConfig::checkpoints`](crate::KafkaConfig::checkpoints)), each commit
//! of a source partition first writes every job's state for that partition
//! ([`PartitionState`](vigil_engine::runtime::PartitionState) bytes: window
//! panes, updating groups, alert policy) to the partition's progress log, then
//! its progress message, then commits the offset. The partition's next owner
//! restores the state and reads on from the committed offset: a failover of a
//! pipeline with hour-long windows replays seconds of input, not an hour.
//!
//! A job's state is split into chunks of at most [`CHUNK_BYTES`] (Kafka refuses
//! messages over about 1 MB by default). A chunk's key is
//! `<group> US state US <job fingerprint> US <index>` (US: the unit separator,
//! 0x1f), so that compaction keeps the newest chunk of each slot; its value is
//! [`MAGIC`], the source offset the state belongs to, the chunk's index and the
//! chunk count, then the bytes. The chunks of one checkpoint sit just before its
//! progress message; a reader takes the chunks whose offset matches the
//! progress message it found, and ignores the leftover slots of older, larger
//! checkpoints.

use std::collections::BTreeMap;

use crate::error::{KafkaError, Result};

/// What a state chunk's value starts with.
pub const MAGIC: &[u8; 8] = b"VIGILCK1";

/// Largest chunk of state bytes per message.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// Bytes of a chunk's header: magic, offset, index, count.
const HEADER: usize = 8 + 8 + 4 + 4;

/// The key of chunk `index` of job `fingerprint`'s state, for `group`.
pub fn chunk_key(group: &str, fingerprint: u64, index: u32) -> Vec<u8> {
    format!("{group}\u{1f}state\u{1f}{fingerprint:016x}\u{1f}{index}").into_bytes()
}

/// The job fingerprint of a chunk key of `group`; `None` for any other key.
pub fn fingerprint_of_key(group: &str, key: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(key).ok()?;
    let rest = text
        .strip_prefix(group)?
        .strip_prefix("\u{1f}state\u{1f}")?;
    let (fingerprint, _index) = rest.split_once('\u{1f}')?;
    u64::from_str_radix(fingerprint, 16).ok()
}

/// Writes a state as chunk messages: bytes written to it are cut into chunks of
/// at most `chunk_bytes`, each handed to `send` (with its index) as soon as it
/// is full, so a state of hundreds of MiB is never held whole. The state's
/// length must be known beforehand (every chunk names the chunk count; see
/// [`PartitionState::encoding`](vigil_engine::runtime::PartitionState::encoding)).
pub struct ChunkWriter<'s> {
    offset: i64,
    count: u32,
    chunk_bytes: usize,
    index: u32,
    /// The chunk being filled: header, then its bytes.
    value: Vec<u8>,
    send: &'s mut dyn FnMut(u32, &[u8]) -> Result<()>,
    /// The error `send` returned, reported by [`ChunkWriter::finish`] (the
    /// writer's caller sees only an I/O error).
    failed: Option<KafkaError>,
}

impl<'s> ChunkWriter<'s> {
    /// A writer of a state of `total` bytes at source offset `offset`.
    pub fn new(
        offset: i64,
        total: u64,
        chunk_bytes: usize,
        send: &'s mut dyn FnMut(u32, &[u8]) -> Result<()>,
    ) -> Result<ChunkWriter<'s>> {
        let chunk_bytes = chunk_bytes.max(1);
        let count = u32::try_from(total.div_ceil(chunk_bytes as u64).max(1)).map_err(|_| {
            KafkaError::Config(format!("a state of {total} bytes has too many chunks"))
        })?;
        let mut writer = ChunkWriter {
            offset,
            count,
            chunk_bytes,
            index: 0,
            value: Vec::with_capacity(HEADER + chunk_bytes.min(total as usize)),
            send,
            failed: None,
        };
        writer.start_chunk();
        Ok(writer)
    }

    fn start_chunk(&mut self) {
        self.value.clear();
        self.value.extend_from_slice(MAGIC);
        self.value.extend_from_slice(&self.offset.to_le_bytes());
        self.value.extend_from_slice(&self.index.to_le_bytes());
        self.value.extend_from_slice(&self.count.to_le_bytes());
    }

    /// Sends the chunk being filled.
    fn emit(&mut self) -> Result<()> {
        if self.index >= self.count {
            return Err(KafkaError::Config(format!(
                "the state is longer than the {} chunks it was measured at",
                self.count
            )));
        }
        (self.send)(self.index, &self.value)?;
        self.index += 1;
        self.start_chunk();
        Ok(())
    }

    /// The error `send` returned, if it failed (a write then fails with an
    /// I/O error saying only as much).
    pub fn take_failure(&mut self) -> Option<KafkaError> {
        self.failed.take()
    }

    /// Sends the last chunk; fails if `send` did, or if the bytes written were
    /// not the length given.
    pub fn finish(mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.value.len() > HEADER || self.index == 0 {
            self.emit()?;
        }
        if self.index != self.count {
            return Err(KafkaError::Config(format!(
                "the state filled {} of the {} chunks it was measured at",
                self.index, self.count
            )));
        }
        Ok(())
    }
}

impl std::io::Write for ChunkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = HEADER + self.chunk_bytes - self.value.len();
        let n = buf.len().min(room);
        self.value.extend_from_slice(&buf[..n]);
        if self.value.len() == HEADER + self.chunk_bytes
            && let Err(e) = self.emit()
        {
            let message = e.to_string();
            self.failed = Some(e);
            return Err(std::io::Error::other(message));
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The chunk messages (values) of `state`, the state at source offset
/// `offset`, all at once (what [`ChunkWriter`] sends).
pub fn chunks(offset: i64, state: &[u8], chunk_bytes: usize) -> Result<Vec<Vec<u8>>> {
    let mut values = Vec::new();
    let mut send = |_: u32, value: &[u8]| {
        values.push(value.to_vec());
        Ok(())
    };
    let mut writer = ChunkWriter::new(offset, state.len() as u64, chunk_bytes, &mut send)?;
    std::io::Write::write_all(&mut writer, state)
        .map_err(|e| KafkaError::Config(format!("writing the state: {e}")))?;
    writer.finish()?;
    Ok(values)
}

/// A decoded chunk: the offset its state belongs to, its index, the count, and
/// its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// The source offset the state belongs to.
    pub offset: i64,
    /// Which chunk.
    pub index: u32,
    /// How many chunks the state has.
    pub count: u32,
    /// The chunk's share of the state bytes.
    pub bytes: &'a [u8],
}

/// Decodes a chunk's value; `None` if it is not one.
pub fn decode(value: &[u8]) -> Option<Chunk<'_>> {
    if value.len() < HEADER || &value[..8] != MAGIC {
        return None;
    }
    let offset = i64::from_le_bytes(value[8..16].try_into().ok()?);
    let index = u32::from_le_bytes(value[16..20].try_into().ok()?);
    let count = u32::from_le_bytes(value[20..24].try_into().ok()?);
    (index < count).then_some(Chunk {
        offset,
        index,
        count,
        bytes: &value[HEADER..],
    })
}

/// Collects one checkpoint's chunks per job, from messages read in any order.
#[derive(Debug, Default)]
pub struct Assembly {
    /// The source offset of the checkpoint wanted.
    offset: i64,
    /// Per job: its chunks so far, by index.
    jobs: BTreeMap<u64, Vec<Option<Vec<u8>>>>,
}

impl Assembly {
    /// An assembly of the state at source offset `offset` for the jobs
    /// `fingerprints`.
    pub fn new(offset: i64, fingerprints: &[u64]) -> Assembly {
        Assembly {
            offset,
            jobs: fingerprints.iter().map(|&f| (f, Vec::new())).collect(),
        }
    }

    /// Takes a chunk of job `fingerprint` if it belongs to the checkpoint.
    pub fn add(&mut self, fingerprint: u64, chunk: Chunk<'_>) {
        if chunk.offset != self.offset {
            return; // another checkpoint's leftover
        }
        let Some(slots) = self.jobs.get_mut(&fingerprint) else {
            return;
        };
        if slots.len() != chunk.count as usize {
            *slots = vec![None; chunk.count as usize];
        }
        slots[chunk.index as usize] = Some(chunk.bytes.to_vec());
    }

    /// Whether every job's state is complete.
    pub fn complete(&self) -> bool {
        self.jobs
            .values()
            .all(|slots| !slots.is_empty() && slots.iter().all(Option::is_some))
    }

    /// Each job's state bytes, if every job's state is complete.
    pub fn finish(self) -> Option<BTreeMap<u64, Vec<u8>>> {
        if !self.complete() {
            return None;
        }
        Some(
            self.jobs
                .into_iter()
                .map(|(f, slots)| (f, slots.into_iter().flatten().flatten().collect()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_split_into_chunks_reassembles_in_any_order() {
        let state: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
        let values = chunks(77, &state, 1000).expect("chunks");
        assert_eq!(values.len(), 3);
        let mut assembly = Assembly::new(77, &[1, 2]);
        for value in values.iter().rev() {
            assembly.add(1, decode(value).expect("a chunk"));
        }
        assert!(!assembly.complete(), "job 2 is missing");
        // An empty state is one empty chunk.
        let empty = chunks(77, &[], 1000).expect("chunks");
        assert_eq!(empty.len(), 1);
        assembly.add(2, decode(&empty[0]).expect("a chunk"));
        // A leftover of an older checkpoint is ignored.
        let old = chunks(70, &[9; 10], 1000).expect("chunks");
        assembly.add(1, decode(&old[0]).expect("a chunk"));
        let states = assembly.finish().expect("complete");
        assert_eq!(states[&1], state);
        assert!(states[&2].is_empty());
    }

    #[test]
    fn a_state_written_in_pieces_makes_the_same_chunks() {
        use std::io::Write;
        for len in [0usize, 1, 9, 10, 11, 30, 95] {
            let state: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut sent = Vec::new();
            let mut send = |index: u32, value: &[u8]| {
                sent.push((index, value.to_vec()));
                Ok(())
            };
            let mut writer = ChunkWriter::new(3, len as u64, 10, &mut send).expect("writer");
            for piece in state.chunks(7) {
                writer.write_all(piece).expect("write");
            }
            writer.finish().expect("finish");
            let whole = chunks(3, &state, 10).expect("chunks");
            assert_eq!(sent.len(), len.div_ceil(10).max(1), "{len} bytes");
            for (i, (index, value)) in sent.iter().enumerate() {
                assert_eq!(*index as usize, i);
                assert_eq!(value, &whole[i], "{len} bytes, chunk {i}");
            }
            let mut assembly = Assembly::new(3, &[1]);
            for (_, value) in &sent {
                assembly.add(1, decode(value).expect("a chunk"));
            }
            assert_eq!(assembly.finish().expect("complete")[&1], state);
        }
    }

    #[test]
    fn a_state_not_of_its_measured_length_or_a_failed_send_is_an_error() {
        use std::io::Write;
        let mut send = |_: u32, _: &[u8]| Ok(());
        let mut longer = ChunkWriter::new(0, 15, 10, &mut send).expect("writer");
        longer
            .write_all(&[0; 21])
            .expect("two full chunks and a byte");
        assert!(longer.finish().is_err(), "a third chunk of two");
        let mut send = |_: u32, _: &[u8]| Ok(());
        let mut longer = ChunkWriter::new(0, 15, 10, &mut send).expect("writer");
        assert!(
            longer.write_all(&[0; 30]).is_err(),
            "a third full chunk of two"
        );
        let mut send = |_: u32, _: &[u8]| Ok(());
        let mut shorter = ChunkWriter::new(0, 25, 10, &mut send).expect("writer");
        shorter.write_all(&[0; 15]).expect("write");
        assert!(shorter.finish().is_err(), "two chunks of three");
        let mut send = |index: u32, _: &[u8]| {
            if index == 1 {
                Err(KafkaError::Config("the broker is gone".to_owned()))
            } else {
                Ok(())
            }
        };
        let mut failing = ChunkWriter::new(0, 30, 10, &mut send).expect("writer");
        assert!(failing.write_all(&[0; 30]).is_err());
        let e = failing.take_failure().expect("the send's error");
        assert!(e.to_string().contains("the broker is gone"), "{e}");
    }

    #[test]
    fn a_missing_chunk_leaves_the_state_incomplete() {
        let values = chunks(5, &[1; 30], 10).expect("chunks");
        let mut assembly = Assembly::new(5, &[9]);
        assembly.add(9, decode(&values[0]).expect("chunk"));
        assembly.add(9, decode(&values[2]).expect("chunk"));
        assert!(assembly.finish().is_none());
    }

    #[test]
    fn keys_name_the_group_and_job_and_other_values_are_not_chunks() {
        let key = chunk_key("vigil-news2", 0xabc, 3);
        assert_eq!(fingerprint_of_key("vigil-news2", &key), Some(0xabc));
        assert_eq!(fingerprint_of_key("vigil-news", &key), None);
        assert_eq!(fingerprint_of_key("vigil-news2", b"vigil-news2"), None);
        assert_eq!(decode(b"12;vigil1;x"), None);
        let mut bad = chunks(1, &[1], 10).expect("chunks").remove(0);
        bad[16] = 5; // index 5 of 1
        assert_eq!(decode(&bad), None);
    }
}
