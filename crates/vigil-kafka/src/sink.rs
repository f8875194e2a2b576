//! Writing to Kafka: pipeline output as keyed JSON messages, and dead letters with
//! the reason in headers, through one idempotent producer whose deliveries are
//! counted so that offsets are committed only after the broker has everything.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{KafkaError, Result};

/// Header: why a message was dead-lettered (a stable label: `malformed`,
/// `oversized`, `invalid_field`, `bad_timestamp`, `late`).
pub const REASON: &str = "vigil.reason";
/// Header: the decoder's message (what is wrong and where).
pub const ERROR: &str = "vigil.error";
/// Header: the topic the message came from.
pub const SOURCE_TOPIC: &str = "vigil.source.topic";
/// Header: its partition.
pub const SOURCE_PARTITION: &str = "vigil.source.partition";
/// Header: its offset (absent for late rows).
pub const SOURCE_OFFSET: &str = "vigil.source.offset";
/// Header: its Kafka timestamp (milliseconds since the epoch), if it had one.
pub const SOURCE_TIMESTAMP: &str = "vigil.source.timestamp";

/// Header: the size in bytes of a source message whose dead letter carries only
/// its first [`DEAD_LETTER_PAYLOAD_BYTES`] (absent when the payload is whole).
pub const SOURCE_BYTES: &str = "vigil.source.bytes";

/// Largest payload a dead letter carries: a message larger than this (a 10 MB
/// upload to a vitals topic, say) is dead-lettered with its first bytes and its
/// size in [`SOURCE_BYTES`]; its source coordinates find the whole of it. Kafka
/// refuses messages over about 1 MB by default, and a dead letter that cannot
/// be written would stop the stream.
pub const DEAD_LETTER_PAYLOAD_BYTES: usize = 512 * 1024;

/// Header: the size in bytes of a source message's key, when its dead letter
/// carries only the first [`DEAD_LETTER_KEY_BYTES`] of it.
pub const SOURCE_KEY_BYTES: &str = "vigil.source.key_bytes";

/// Largest key a dead letter carries (see [`DEAD_LETTER_PAYLOAD_BYTES`]).
pub const DEAD_LETTER_KEY_BYTES: usize = 64 * 1024;

/// How long [`Sink::acknowledged`] waits for the broker before it runs its
/// `waiting` callback (and again after each further period).
const ACK_WAIT_PERIOD: Duration = Duration::from_millis(100);

/// Where a dead letter came from and why.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The reason label.
    pub reason: &'a str,
    /// The full error text.
    pub error: String,
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Source offset (`None` for a late row, which is a row, not a message).
    pub offset: Option<i64>,
    /// The source message's timestamp.
    pub timestamp: Option<i64>,
}

#[derive(Debug, Default)]
struct Deliveries {
    /// Messages handed to the producer.
    sent: u64,
    pending: u64,
    /// The step messages are being sent for (see [`Sink::begin_step`]).
    step: usize,
    /// Per step with messages not yet acknowledged, oldest first: the step and
    /// how many.
    pending_by_step: VecDeque<(usize, u64)>,
    /// The most messages pending at once.
    peak_pending: u64,
    delivered: u64,
    /// A delivery failed because a newer producer with this one's
    /// `transactional.id` fenced it.
    fenced: bool,
    failed: Option<(String, String)>,
}

/// Counts deliveries as the producer's background thread reports them.
#[derive(Debug, Default, Clone)]
pub struct DeliveryCounter(Arc<(Mutex<Deliveries>, Condvar)>);

impl ClientContext for DeliveryCounter {}

impl Deliveries {
    /// `n` more messages of the current step handed to the producer.
    fn add(&mut self, n: u64) {
        self.pending += n;
        self.peak_pending = self.peak_pending.max(self.pending);
        self.sent += n;
        match self.pending_by_step.back_mut() {
            Some((step, pending)) if *step == self.step => *pending += n,
            _ => self.pending_by_step.push_back((self.step, n)),
        }
    }

    /// `n` messages of `step` acknowledged, failed, or never handed over.
    fn remove(&mut self, step: usize, n: u64) {
        self.pending = self.pending.saturating_sub(n);
        if let Some(i) = self.pending_by_step.iter().position(|&(s, _)| s == step) {
            self.pending_by_step[i].1 = self.pending_by_step[i].1.saturating_sub(n);
            if self.pending_by_step[i].1 == 0 {
                self.pending_by_step.remove(i);
            }
        }
    }

    /// Whether every message of the steps before `step` is acknowledged (or
    /// failed).
    fn settled_before(&self, step: usize) -> bool {
        self.pending_by_step.front().is_none_or(|&(s, _)| s >= step)
    }
}

impl ProducerContext for DeliveryCounter {
    /// The step the message was sent in.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, step: usize) {
        let (lock, wake) = &*self.0;
        let Ok(mut d) = lock.lock() else { return };
        d.remove(step, 1);
        match result {
            Ok(_) => d.delivered += 1,
            Err((error, message)) => {
                d.fenced |= crate::error::is_fenced(error);
                if d.failed.is_none() {
                    use rdkafka::Message;
                    d.failed = Some((message.topic().to_owned(), error.to_string()));
                }
            }
        }
        wake.notify_all();
    }
}

/// The producer of a pipeline run.
pub struct Sink {
    producer: ThreadedProducer<DeliveryCounter>,
    deliveries: DeliveryCounter,
    /// The producer's `transactional.id` (exactly-once mode).
    transactional_id: Option<String>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

impl Sink {
    /// A producer with `config`.
    pub fn new(config: &ClientConfig) -> Result<Sink> {
        let deliveries = DeliveryCounter::default();
        let producer = config.create_with_context(deliveries.clone())?;
        Ok(Sink {
            producer,
            deliveries,
            transactional_id: config.get("transactional.id").map(str::to_owned),
        })
    }

    /// Messages acknowledged so far.
    pub fn delivered(&self) -> u64 {
        self.deliveries
            .0
            .0
            .lock()
            .map(|d| d.delivered)
            .unwrap_or_default()
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
        waiting: &dyn Fn(),
    ) -> Result<()> {
        let step = self.count(1)?;
        self.hand_over(topic, partition, key, payload, headers, step, waiting)
    }

    /// Counts `n` messages of the current step as handed to the producer, before
    /// they are (one lock for a batch of them, not one each: the producer's
    /// delivery thread takes the same lock for every acknowledgement); returns
    /// the step.
    fn count(&self, n: u64) -> Result<usize> {
        let (lock, _) = &*self.deliveries.0;
        let mut d = lock
            .lock()
            .map_err(|_| KafkaError::Config("delivery counter poisoned".to_owned()))?;
        d.add(n);
        Ok(d.step)
    }

    /// Takes back `n` messages of `step` counted but never handed over.
    fn uncount(&self, step: usize, n: u64) {
        let (lock, _) = &*self.deliveries.0;
        if n > 0
            && let Ok(mut d) = lock.lock()
        {
            d.remove(step, n);
        }
    }

    /// Hands one message, already counted for `step`, to the producer; one
    /// that it refuses is taken back.
    #[allow(clippy::too_many_arguments)]
    fn hand_over(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
        step: usize,
        waiting: &dyn Fn(),
    ) -> Result<()> {
        let mut record = BaseRecord::with_opaque_to(topic, step).payload(payload);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    // Backpressure: the local queue is full until the broker
                    // acknowledges some of it.
                    record = back;
                    waiting();
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    self.uncount(step, 1);
                    if crate::error::is_fenced(&e) || self.fatally_fenced() {
                        return Err(self.fenced());
                    }
                    return Err(KafkaError::Delivery {
                        topic: topic.to_owned(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// Sends every row of `batch` to `topic` as a JSON object, keyed by the value
    /// of column `key` (text; other types cast) when given. Returns the rows sent.
    /// `waiting` runs while the producer's queue is full.
    pub fn send_rows(
        &self,
        topic: &str,
        key: Option<usize>,
        batch: &RecordBatch,
        waiting: &dyn Fn(),
    ) -> Result<usize> {
        if batch.num_rows() == 0 {
            return Ok(0);
        }
        let bytes = vigil_formats::write_json_lines(Vec::new(), &[batch])?;
        let keys = match key {
            Some(i) => {
                let column = batch.column(i);
                Some(if column.data_type() == &DataType::Utf8 {
                    column.clone()
                } else {
                    cast(column, &DataType::Utf8)?
                })
            }
            None => None,
        };
        let keys = keys.as_ref().map(|k| k.as_string::<i32>());
        let counted = batch.num_rows() as u64;
        let step = self.count(counted)?;
        let mut rows = 0;
        for (row, line) in bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let key = keys
                .filter(|k| k.is_valid(row))
                .map(|k| k.value(row).as_bytes());
            if let Err(e) = self.hand_over(topic, None, key, line, None, step, waiting) {
                // This one is taken back already; the rest were never sent.
                self.uncount(step, counted - rows as u64 - 1);
                return Err(e);
            }
            rows += 1;
        }
        self.uncount(step, counted.saturating_sub(rows as u64));
        Ok(rows)
    }

    /// Sends a message that could not be used to `topic`, as it came (payload and
    /// key; a payload over [`DEAD_LETTER_PAYLOAD_BYTES`] cut to that and its size
    /// in [`SOURCE_BYTES`], a key over [`DEAD_LETTER_KEY_BYTES`] likewise), with where it came from and why in headers.
    /// `waiting` runs while the producer's queue is full.
    pub fn send_dead_letter(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        letter: &DeadLetter<'_>,
        waiting: &dyn Fn(),
    ) -> Result<()> {
        let partition = letter.partition.to_string();
        let offset = letter.offset.map(|o| o.to_string());
        let timestamp = letter.timestamp.map(|t| t.to_string());
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: REASON,
                value: Some(letter.reason),
            })
            .insert(Header {
                key: ERROR,
                value: Some(letter.error.as_str()),
            })
            .insert(Header {
                key: SOURCE_TOPIC,
                value: Some(letter.topic),
            })
            .insert(Header {
                key: SOURCE_PARTITION,
                value: Some(partition.as_str()),
            });
        if let Some(offset) = &offset {
            headers = headers.insert(Header {
                key: SOURCE_OFFSET,
                value: Some(offset.as_str()),
            });
        }
        if let Some(timestamp) = &timestamp {
            headers = headers.insert(Header {
                key: SOURCE_TIMESTAMP,
                value: Some(timestamp.as_str()),
            });
        }
        let (mut payload, mut key) = (payload, key);
        let (size, key_size) = (
            payload.len().to_string(),
            key.map_or(0, <[u8]>::len).to_string(),
        );
        if payload.len() > DEAD_LETTER_PAYLOAD_BYTES {
            payload = &payload[..DEAD_LETTER_PAYLOAD_BYTES];
            headers = headers.insert(Header {
                key: SOURCE_BYTES,
                value: Some(size.as_str()),
            });
        }
        if let Some(whole) = key.filter(|k| k.len() > DEAD_LETTER_KEY_BYTES) {
            key = Some(&whole[..DEAD_LETTER_KEY_BYTES]);
            headers = headers.insert(Header {
                key: SOURCE_KEY_BYTES,
                value: Some(key_size.as_str()),
            });
        }
        self.send(topic, None, key, payload, Some(headers), waiting)
    }

    /// Sends a message of the progress log to `partition` of `topic`: a
    /// progress message keyed by the consumer group (see
    /// [`progress`](crate::progress)), with `headers`, or a chunk of state (see
    /// [`state`](crate::state)).
    pub fn send_progress(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: &[u8],
        headers: &[(&str, &str)],
        waiting: &dyn Fn(),
    ) -> Result<()> {
        let headers = (!headers.is_empty()).then(|| {
            headers
                .iter()
                .fold(OwnedHeaders::new(), |all, &(key, value)| {
                    all.insert(Header {
                        key,
                        value: Some(value),
                    })
                })
        });
        self.send(topic, Some(partition), Some(key), value, headers, waiting)
    }

    /// Messages handed to the producer so far.
    pub fn sent(&self) -> u64 {
        self.deliveries
            .0
            .0
            .lock()
            .map(|d| d.sent)
            .unwrap_or_default()
    }

    /// The most messages handed to the producer and not yet acknowledged at
    /// once: what a slow broker makes this process hold (bounded, as the loop
    /// waits for acknowledgements before it takes more input).
    pub fn peak_unacknowledged(&self) -> u64 {
        self.deliveries
            .0
            .0
            .lock()
            .map(|d| d.peak_pending)
            .unwrap_or_default()
    }

    /// The error of a producer fenced by a newer one with its
    /// `transactional.id`.
    fn fenced(&self) -> KafkaError {
        KafkaError::Fenced {
            writer: self.transactional_id.clone().unwrap_or_default(),
        }
    }

    /// Whether the producer's fatal error, if it has one, is that it was fenced.
    fn fatally_fenced(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode as Code;
        matches!(
            self.producer.client().fatal_error(),
            Some((
                Code::Fenced | Code::ProducerFenced | Code::InvalidProducerEpoch,
                _
            ))
        )
    }

    /// The producer's `transactional.id`, if it is transactional.
    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// Exactly-once: registers the transactional producer with the broker
    /// (fencing an older producer with the same `transactional.id`) and opens
    /// the first transaction.
    pub fn init_transactions(&self, timeout: Duration) -> Result<()> {
        self.producer.init_transactions(timeout)?;
        self.producer.begin_transaction()?;
        Ok(())
    }

    /// Exactly-once: commits the open transaction with the source `offsets`
    /// (consumed by the group `group`), then opens the next one unless `last`.
    /// A failure leaves the transaction to [`Sink::abort`].
    pub fn commit_transaction(
        &self,
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
        last: bool,
        timeout: Duration,
    ) -> Result<()> {
        let fenced = |e: rdkafka::error::KafkaError| self.fenced_or(e);
        if offsets.count() > 0 {
            let group = group.ok_or_else(|| {
                KafkaError::Config("the consumer has no group metadata to commit with".to_owned())
            })?;
            self.producer
                .send_offsets_to_transaction(offsets, group, timeout)
                .map_err(fenced)?;
        }
        self.producer.commit_transaction(timeout).map_err(fenced)?;
        if !last {
            self.producer.begin_transaction().map_err(fenced)?;
        }
        Ok(())
    }

    /// Exactly-once: aborts the open transaction (its messages are purged).
    pub fn abort(&self, timeout: Duration) -> Result<()> {
        Ok(self.producer.abort_transaction(timeout)?)
    }

    /// Makes the producer usable again after a failed delivery or transaction,
    /// for the run to go on from its last commit: in exactly-once mode aborts
    /// the open transaction and opens the next; in both modes waits (at most
    /// `timeout`) until every message sent has been acknowledged or has
    /// failed, and forgets the failures. An error if the producer cannot go on
    /// (fenced, or a fatal error such as an idempotent producer's broken
    /// sequence).
    pub fn recover(&self, timeout: Duration) -> Result<()> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            if self.fatally_fenced() {
                return Err(self.fenced());
            }
            return Err(KafkaError::Producer(format!("{code:?}: {reason}")));
        }
        if self.transactional_id.is_some() {
            self.producer
                .abort_transaction(timeout)
                .map_err(|e| self.fenced_or(e))?;
        }
        let deadline = Instant::now() + timeout;
        let (lock, wake) = &*self.deliveries.0;
        let mut d = lock
            .lock()
            .map_err(|_| KafkaError::Config("delivery counter poisoned".to_owned()))?;
        while d.pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KafkaError::Producer(format!(
                    "{} messages still unacknowledged after {timeout:?}",
                    d.pending
                )));
            }
            d = wake
                .wait_timeout(d, left)
                .map_err(|_| KafkaError::Config("delivery counter poisoned".to_owned()))?
                .0;
        }
        if d.fenced {
            return Err(self.fenced());
        }
        d.failed = None;
        d.pending_by_step.clear();
        drop(d);
        if self.transactional_id.is_some() {
            self.producer
                .begin_transaction()
                .map_err(|e| self.fenced_or(e))?;
        }
        Ok(())
    }

    /// `error`, or [`KafkaError::Fenced`] if it says this producer was fenced.
    fn fenced_or(&self, error: rdkafka::error::KafkaError) -> KafkaError {
        if crate::error::is_fenced(&error) {
            self.fenced()
        } else {
            KafkaError::Client(error)
        }
    }

    /// Waits until the broker has acknowledged every message sent, or fails with
    /// the first delivery that failed (after librdkafka's own retries, within
    /// `message.timeout.ms`). `waiting` runs every 100 ms of the wait, outside
    /// any lock (the run loop keeps its consumer alive there).
    pub fn acknowledged(&self, waiting: &dyn Fn()) -> Result<()> {
        self.settled(None, waiting)
    }

    /// Starts a step: the messages sent from here on are its own, until the
    /// next step begins. Returns the step's number.
    pub fn begin_step(&self) -> usize {
        let (lock, _) = &*self.deliveries.0;
        match lock.lock() {
            Ok(mut d) => {
                d.step = d.step.wrapping_add(1);
                d.step
            }
            Err(_) => 0,
        }
    }

    /// Like [`Sink::acknowledged`], for the messages of the steps before
    /// `step` only: the step's own messages stay in flight while the run loop
    /// goes on with the next one (a step's outputs are acknowledged while the
    /// next is taken in and processed; at most two steps' messages are
    /// awaited at once). A failure of any message, of any step, is reported.
    pub fn acknowledged_before(&self, step: usize, waiting: &dyn Fn()) -> Result<()> {
        self.settled(Some(step), waiting)
    }

    /// Whether every message of the steps before `step` is acknowledged, without
    /// waiting; a failure of any message, of any step, is reported.
    pub fn is_acknowledged_before(&self, step: usize) -> Result<bool> {
        let (lock, _) = &*self.deliveries.0;
        let mut d = lock
            .lock()
            .map_err(|_| KafkaError::Config("delivery counter poisoned".to_owned()))?;
        self.failure(&mut d)?;
        Ok(d.settled_before(step))
    }

    /// The first delivery that failed since the last call, as an error.
    fn failure(&self, d: &mut Deliveries) -> Result<()> {
        match d.failed.take() {
            // Messages purged because the producer was fenced fail with the
            // purge, not the fencing.
            Some(_) if d.fenced || self.fatally_fenced() => Err(self.fenced()),
            Some((topic, reason)) => Err(KafkaError::Delivery { topic, reason }),
            None => Ok(()),
        }
    }

    /// Waits until the messages of the steps before `before` (all of them if
    /// `None`) are acknowledged; see [`Sink::acknowledged`].
    fn settled(&self, before: Option<usize>, waiting: &dyn Fn()) -> Result<()> {
        let (lock, wake) = &*self.deliveries.0;
        // Every delivery report wakes this wait; `waiting` (which pauses the
        // consumer, purging its prefetched messages) is for a sink that is really
        // slow, so it runs only once a whole period has passed without the last
        // acknowledgement.
        let mut next_call = Instant::now() + ACK_WAIT_PERIOD;
        loop {
            {
                let mut d = lock
                    .lock()
                    .map_err(|_| KafkaError::Config("delivery counter poisoned".to_owned()))?;
                loop {
                    self.failure(&mut d)?;
                    let done = match before {
                        None => d.pending == 0,
                        Some(step) => d.settled_before(step),
                    };
                    if done {
                        return Ok(());
                    }
                    let left = next_call.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    d = wake
                        .wait_timeout(d, left)
                        .map_err(|_| KafkaError::Config("delivery counter poisoned".to_owned()))?
                        .0;
                }
            }
            waiting();
            next_call = Instant::now() + ACK_WAIT_PERIOD;
        }
    }

    /// Flushes the producer (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        Ok(self.producer.flush(timeout)?)
    }
}

#[cfg(test)]
mod tests {
    use super::Deliveries;

    /// Acknowledgements come back in any order across partitions: a step is
    /// settled only once every message of it and of every step before it is.
    #[test]
    fn steps_settle_in_order_whatever_order_their_messages_are_acknowledged_in() {
        let mut d = Deliveries {
            step: 1,
            ..Deliveries::default()
        };
        d.add(1);
        d.add(1);
        d.step = 2;
        d.add(1);
        d.step = 3;
        assert!(!d.settled_before(2) && !d.settled_before(3));
        d.remove(2, 1); // step 2's only message first
        assert!(!d.settled_before(2) && !d.settled_before(3), "{d:?}");
        d.remove(1, 1);
        assert!(!d.settled_before(2), "one of step 1's messages is out");
        d.remove(1, 1);
        assert!(d.settled_before(2) && d.settled_before(3), "{d:?}");
        assert_eq!((d.pending, d.sent, d.peak_pending), (0, 3, 3));
        // A step without messages is settled at once; a later one is not.
        d.step = 5;
        d.add(1);
        assert!(d.settled_before(5) && !d.settled_before(6));
    }

    /// A batch counted at once settles only when its last message is
    /// acknowledged, and what was counted but never sent can be taken back.
    #[test]
    fn a_batch_counted_at_once_settles_message_by_message() {
        let mut d = Deliveries {
            step: 1,
            ..Deliveries::default()
        };
        d.add(5);
        d.step = 2;
        assert_eq!((d.pending, d.sent, d.peak_pending), (5, 5, 5));
        d.remove(1, 1);
        d.remove(1, 2);
        assert!(!d.settled_before(2), "{d:?}");
        // The last two were never handed over.
        d.remove(1, 2);
        assert!(d.settled_before(2), "{d:?}");
        assert_eq!(d.pending, 0);
        // More taken back than pending leaves nothing negative.
        d.add(1);
        d.remove(2, 3);
        assert_eq!(d.pending, 0);
        assert!(d.settled_before(3));
    }
}
