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

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::error::{KafkaError, Result};

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
    /// whose progress topic is `topic`: its offset and metadata.
    pub fn latest(&self, topic: &str, partition: i32) -> Result<Option<(i64, String)>> {
        let (low, high) = self
            .consumer
            .fetch_watermarks(topic, partition, self.timeout)?;
        let mut end = high;
        while end > low {
            let start = (end - CHUNK).max(low);
            if let Some(found) = self.newest_in(topic, partition, start, end)? {
                return Ok(Some(found));
            }
            end = start;
        }
        Ok(None)
    }

    /// The newest of the group's messages in offsets `start..end`.
    fn newest_in(
        &self,
        topic: &str,
        partition: i32,
        start: i64,
        end: i64,
    ) -> Result<Option<(i64, String)>> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(start))?;
        self.consumer.assign(&list)?;
        let mut found = None;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KafkaError::Config(format!(
                    "reading the progress topic {topic} partition {partition} took over {} s",
                    self.timeout.as_secs()
                )));
            }
            match self.consumer.poll(left) {
                None => continue,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(message)) => {
                    if message.offset() >= end {
                        break;
                    }
                    if message.key() == Some(self.group.as_bytes())
                        && let Some(progress) = message.payload().and_then(decode)
                    {
                        found = Some(progress);
                    }
                    if message.offset() + 1 >= end {
                        break;
                    }
                }
            }
        }
        self.consumer.unassign()?;
        Ok(found)
    }
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
