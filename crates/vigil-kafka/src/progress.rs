//! The progress log: where each source partition's input is taken in up to, and
//! what the jobs had done with it, written to a Kafka topic before the offset is
//! committed, and read back by the partition's next owner.
//!
//! A commit's metadata could carry the same, and vigil writes it there too, but
//! not every Kafka-protocol broker keeps commit metadata (tansu returns it empty),
//! and a new owner that resumes without the previous owner's progress emits
//! windows again from only part of their rows. The progress topic of a source
//! topic (table option `progress_topic`, default `<topic>.progress`; compacted,
//! with at least as many partitions as the source) holds, in partition `p`, one
//! message per commit of source partition `p`: key the consumer group, value
//! `<offset>;<metadata>` (see [`offsets::encode_metadata`](crate::offsets::encode_metadata)).
//! The newest message with the group's key is the partition's position.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::error::{KafkaError, Result};
use crate::state::{self, Assembly};
use crate::transaction;

/// How far back, in messages, each read of the progress log reaches at a time.
const CHUNK: i64 = 256;

/// The value of a progress message.
pub fn encode(offset: i64, metadata: &str) -> String {
    format!("{offset};{metadata}")
}

/// The offset and metadata of a progress message; `None` if it is not one.
pub fn decode(value: &[u8]) -> Option<(i64, String)> {
    let text = std::str::from_utf8(value).ok()?;
    let (offset, metadata) = text.split_once(';')?;
    Some((offset.parse().ok()?, metadata.to_owned()))
}

/// Reads the progress log (outside the consumer group).
pub struct ProgressReader {
    consumer: BaseConsumer,
    group: String,
    timeout: Duration,
}

impl std::fmt::Debug for ProgressReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressReader")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ProgressReader {
    /// A reader with the consumer settings `config` (its group is not joined),
    /// looking for messages keyed `group`, waiting at most `timeout` per read.
    pub fn new(config: &ClientConfig, group: &str, timeout: Duration) -> Result<ProgressReader> {
        let mut config = config.clone();
        config
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // The log is read to its end at each assignment: do not let the broker
            // wait for more (librdkafka's default waits up to 500 ms per fetch).
            .set("fetch.wait.max.ms", "10");
        Ok(ProgressReader {
            consumer: config.create()?,
            group: group.to_owned(),
            timeout,
        })
    }

    /// The newest progress of the group for partition `partition` of the source
    /// whose progress topic is `topic`.
    pub fn latest(&self, topic: &str, partition: i32) -> Result<Option<Found>> {
        let (low, high) = self
            .consumer
            .fetch_watermarks(topic, partition, self.timeout)?;
        // The first read goes on to the end of the partition, whatever the high
        // watermark said: a broker may report it short of a batch of several
        // messages (tansu 0.6 does), and the newest messages are the ones wanted.
        let mut end = i64::MAX;
        let mut start = (high - CHUNK).max(low);
        loop {
            let mut found = None;
            self.scan(topic, partition, start, end, &mut |message| {
                if message.key() == Some(self.group.as_bytes())
                    && let Some((offset, metadata)) = message.payload().and_then(decode)
                {
                    let header = |name: &str| {
                        message.headers().and_then(|headers| {
                            headers
                                .iter()
                                .find(|h| h.key == name)
                                .and_then(|h| h.value)
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                        })
                    };
                    found = Some(Found {
                        at: message.offset(),
                        offset,
                        metadata,
                        writer: header(transaction::WRITER),
                        released: header(transaction::RELEASED).is_some(),
                    });
                }
            })?;
            if found.is_some() || start <= low {
                return Ok(found);
            }
            end = start;
            start = (end - CHUNK).max(low);
        }
    }

    /// The state checkpointed with the progress `found` for the jobs
    /// `fingerprints` (see [`state`]): each job's state bytes, or
    /// `None` if some job's state is not in the log (checkpoints were off, or
    /// the pipeline changed).
    pub fn checkpoint(
        &self,
        topic: &str,
        partition: i32,
        found: &Found,
        fingerprints: &[u64],
    ) -> Result<Option<BTreeMap<u64, Vec<u8>>>> {
        let (low, _) = self
            .consumer
            .fetch_watermarks(topic, partition, self.timeout)?;
        let mut assembly = Assembly::new(found.offset, fingerprints);
        // The chunks were written just before the progress message, after the
        // group's previous progress message at another offset (one at the same
        // offset repeats it: a partition released without a new checkpoint).
        let mut end = found.at;
        let mut older_progress = false;
        while end > low && !assembly.complete() && !older_progress {
            let start = (end - CHUNK).max(low);
            self.scan(topic, partition, start, end, &mut |message| {
                let Some(key) = message.key() else { return };
                if key == self.group.as_bytes() {
                    if message
                        .payload()
                        .and_then(decode)
                        .is_none_or(|(offset, _)| offset != found.offset)
                    {
                        older_progress = true;
                    }
                } else if let Some(fingerprint) = state::fingerprint_of_key(&self.group, key)
                    && let Some(chunk) = message.payload().and_then(state::decode)
                {
                    assembly.add(fingerprint, chunk);
                }
            })?;
            end = start;
        }
        Ok(assembly.finish())
    }

    /// Reads offsets `start..end` of the partition, passing each message to `f`.
    fn scan(
        &self,
        topic: &str,
        partition: i32,
        start: i64,
        end: i64,
        f: &mut dyn FnMut(&BorrowedMessage<'_>),
    ) -> Result<()> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(start))?;
        self.consumer.assign(&list)?;
        let deadline = Instant::now() + self.timeout;
        // Consumer errors are mostly news of the cluster (a broker down, even
        // one this partition does not live on): the read goes on until the
        // deadline, and the last error explains a read that did not end.
        let mut last_error = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let cause = last_error
                    .map(|e: rdkafka::error::KafkaError| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Err(KafkaError::Config(format!(
                    "reading the progress topic {topic} partition {partition} took over {} s{cause}",
                    self.timeout.as_secs()
                )));
            }
            match self.consumer.poll(left) {
                None => continue,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    tracing::debug!(topic, partition, error = %e, "reading the progress topic");
                    last_error = Some(e);
                }
                Some(Ok(message)) => {
                    if message.offset() >= end {
                        break;
                    }
                    f(&message);
                    if message.offset() + 1 >= end {
                        break;
                    }
                }
            }
        }
        self.consumer.unassign()?;
        Ok(())
    }
}

/// A progress message found in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its offset in the progress topic.
    pub at: i64,
    /// The source offset it records.
    pub offset: i64,
    /// The jobs' progress at that offset.
    pub metadata: String,
    /// The `transactional.id` that wrote it (exactly-once mode).
    pub writer: Option<String>,
    /// Whether its writer gave the partition up after committing (see
    /// [`transaction`]).
    pub released: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_value_reads_back() {
        let value = encode(42, "vigil1;00000000000000ab=5,-");
        assert_eq!(
            decode(value.as_bytes()),
            Some((42, "vigil1;00000000000000ab=5,-".to_owned()))
        );
        assert_eq!(decode(b"garbage"), None);
        assert_eq!(decode(b"x;y"), None);
        assert_eq!(decode(&[0xff, b';']), None);
    }
}
