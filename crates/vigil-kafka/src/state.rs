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

/// The chunk messages (values) of `state`, the state at source offset `offset`.
pub fn chunks(offset: i64, state: &[u8], chunk_bytes: usize) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = if state.is_empty() {
        vec![&[]]
    } else {
        state.chunks(chunk_bytes.max(1)).collect()
    };
    let count = pieces.len() as u32;
    pieces
        .iter()
        .enumerate()
        .map(|(index, piece)| {
            let mut value = Vec::with_capacity(HEADER + piece.len());
            value.extend_from_slice(MAGIC);
            value.extend_from_slice(&offset.to_le_bytes());
            value.extend_from_slice(&(index as u32).to_le_bytes());
            value.extend_from_slice(&count.to_le_bytes());
            value.extend_from_slice(piece);
            value
        })
        .collect()
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
        let values = chunks(77, &state, 1000);
        assert_eq!(values.len(), 3);
        let mut assembly = Assembly::new(77, &[1, 2]);
        for value in values.iter().rev() {
            assembly.add(1, decode(value).expect("a chunk"));
        }
        assert!(!assembly.complete(), "job 2 is missing");
        // An empty state is one empty chunk.
        let empty = chunks(77, &[], 1000);
        assert_eq!(empty.len(), 1);
        assembly.add(2, decode(&empty[0]).expect("a chunk"));
        // A leftover of an older checkpoint is ignored.
        assembly.add(1, decode(&chunks(70, &[9; 10], 1000)[0]).expect("a chunk"));
        let states = assembly.finish().expect("complete");
        assert_eq!(states[&1], state);
        assert!(states[&2].is_empty());
    }

    #[test]
    fn a_missing_chunk_leaves_the_state_incomplete() {
        let values = chunks(5, &[1; 30], 10);
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
        let mut bad = chunks(1, &[1], 10).remove(0);
        bad[16] = 5; // index 5 of 1
        assert_eq!(decode(&bad), None);
    }
}
