//! Source messages taken from librdkafka in batches instead of one poll each.
//!
//! rdkafka's `BaseConsumer::poll` hands out one message per call: a queue
//! event, an `Arc` and three clock reads each. Measured with the kafka bench's
//! readers (3 runs, 1 M readings on tansu): a bare consumer reads 1.97-2.10 M
//! messages/s by polling and 2.47-2.65 M/s in batches; one that also decodes
//! every message into Arrow 1.23-1.40 M/s and 1.45-1.55 M/s.
//!
//! librdkafka's batch call cannot be pointed at the consumer's own queue: that
//! queue also carries the rebalance events, and a batch call serves a
//! rebalance by dropping the assignment. So each source partition's fetched
//! messages are routed to a queue of their own, [`FetchQueue`], when it is
//! assigned, before librdkafka fetches anything for it (the rebalance callback
//! routes them before it assigns them); events stay on the consumer's
//! queue, which the run loop still polls. A message that reaches the consumer's
//! queue anyway (a partition assigned some other way) is polled from there as
//! before.
//!
//! A pause, a seek or a revocation bumps the partition's fetch version in
//! librdkafka; messages of an older version still in the queue are dropped by
//! the batch call, as a poll drops them.
//!
//! This module has `unsafe` code (as [`commits`](crate::commits) does): the
//! batch call and the routing are not in rdkafka's safe API. The rest of the
//! crate sees [`Incoming`] messages that borrow from a [`Batch`], which gives
//! them back to librdkafka when dropped.

#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::error::{KafkaError, Result};
use crate::source::{GroupContext, TopicPartition};

/// One source message, borrowed for as long as the run loop handles it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'m> {
    /// The topic it came from.
    pub topic: &'m str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp, milliseconds since the epoch, if it has one.
    pub timestamp: Option<i64>,
    /// Its key, if any.
    pub key: Option<&'m [u8]>,
    /// Its payload (empty for a message without one).
    pub payload: &'m [u8],
}

impl<'m> Incoming<'m> {
    /// The message as rdkafka hands it out (polled, or kept while paused).
    pub fn of(message: &'m impl Message) -> Incoming<'m> {
        Incoming {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key(),
            payload: message.payload().unwrap_or_default(),
        }
    }
}

/// A librdkafka queue handle that may be used from any thread (librdkafka's
/// queues lock themselves).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueuePtr(pub(crate) NonNull<rd::rd_kafka_queue_t>);

impl QueuePtr {
    /// A new queue of `consumer`'s, for the caller to destroy (before the
    /// consumer) with `rd_kafka_queue_destroy`.
    pub(crate) fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Result<QueuePtr> {
        // SAFETY: the consumer's handle is live; the new queue is the caller's.
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        NonNull::new(queue)
            .map(QueuePtr)
            .ok_or_else(|| KafkaError::Config("librdkafka made no queue".to_owned()))
    }
}

// SAFETY: a librdkafka queue is safe to use from several threads; the pointer
// is only dereferenced by librdkafka.
unsafe impl Send for QueuePtr {}
// SAFETY: as above.
unsafe impl Sync for QueuePtr {}

/// Where the rebalance callback routes newly assigned partitions: a handle
/// to the run loop's [`FetchQueue`] that does not own it. The queue clears it
/// from the consumer's context before it is destroyed; it does not leave the
/// crate, so no copy outlives the queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route(QueuePtr);

impl Route {
    /// Routes the fetched messages of `partitions` to the queue. Called before
    /// they are assigned, so that none of their messages reach the consumer's
    /// queue first (which would split a partition's messages across the two
    /// queues, out of order). A partition that cannot be routed stays on the
    /// consumer's queue, where the run loop polls it.
    pub(crate) fn route<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &TopicPartitionList,
    ) {
        forward(consumer, partitions, self.0.0.as_ptr());
    }
}

/// Forwards the fetched messages of `partitions` to queue `to`, or, when `to`
/// is null, keeps them in each partition's own queue (where librdkafka stops
/// fetching once `queued.min.messages` or `queued.max.messages.kbytes` are
/// there). Forwarding again appends what a partition's queue holds, in order.
/// A partition that cannot be forwarded is left as it is, with a warning.
fn forward<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &TopicPartitionList,
    to: *mut rd::rd_kafka_queue_t,
) {
    let client = consumer.client().native_ptr();
    for element in partitions.elements() {
        let Ok(topic) = CString::new(element.topic()) else {
            continue;
        };
        // SAFETY: `client` is the live consumer's handle; `to` is null or a
        // live queue; the partition's queue handle is released right after
        // its forward is set, which the partition keeps (it holds its own
        // reference to the queue it forwards to). A forward set by the
        // application is never replaced by librdkafka's own.
        unsafe {
            let queue =
                rd::rd_kafka_queue_get_partition(client, topic.as_ptr(), element.partition());
            if queue.is_null() {
                tracing::warn!(
                    partition = element.partition(),
                    "a partition's queue could not be routed"
                );
                continue;
            }
            rd::rd_kafka_queue_forward(queue, to);
            rd::rd_kafka_queue_destroy(queue);
        }
    }
}

/// The queue every assigned source partition's fetched messages are routed
/// to, drained in batches by the run loop. It borrows the consumer, so it is
/// destroyed before the consumer is.
pub struct FetchQueue<'c> {
    queue: QueuePtr,
    consumer: &'c BaseConsumer<GroupContext>,
    /// Partitions held back: their messages kept in their own queues.
    held: BTreeSet<TopicPartition>,
    /// Times a partition was held back.
    holds: u64,
}

impl<'c> FetchQueue<'c> {
    /// A queue for `consumer`'s source partitions, registered with its
    /// context so that the rebalance callback routes partitions to it. Make
    /// it before the consumer subscribes.
    pub fn new(consumer: &'c BaseConsumer<GroupContext>) -> Result<FetchQueue<'c>> {
        // Ours to destroy (in `drop`).
        let queue = QueuePtr::new(consumer)?;
        consumer.context().set_route(Some(Route(queue)));
        Ok(FetchQueue {
            queue,
            consumer,
            held: BTreeSet::new(),
            holds: 0,
        })
    }

    /// Holds back exactly the partitions of `ahead` from now on: the messages
    /// of those newly in it stay in their partitions' own queues (fetching
    /// stops once those are full, and nothing fetched is dropped, unlike a
    /// pause, which would fetch it all again at resume), those no longer in it
    /// are routed here again, what their queues hold first. A wait that
    /// pauses every partition does not change which are held back.
    pub fn hold_back(&mut self, ahead: BTreeSet<TopicPartition>) {
        if self.held == ahead {
            return;
        }
        let list = |tps: &[&TopicPartition]| {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in tps {
                list.add_partition(topic, *partition);
            }
            list
        };
        let hold: Vec<&TopicPartition> = ahead.difference(&self.held).collect();
        if !hold.is_empty() {
            tracing::debug!(partitions = ?hold, "held back: ahead of the slowest partition");
            self.holds += hold.len() as u64;
            forward(self.consumer, &list(&hold), std::ptr::null_mut());
        }
        let release: Vec<&TopicPartition> = self.held.difference(&ahead).collect();
        if !release.is_empty() {
            tracing::debug!(partitions = ?release, "no longer held back");
            forward(self.consumer, &list(&release), self.queue.0.as_ptr());
        }
        self.held = ahead;
    }

    /// Forgets partition `tp` (revoked): librdkafka drops what its queue
    /// holds, and the rebalance callback routes it here if it comes back.
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.held.remove(tp);
    }

    /// Whether partition `tp` is held back now.
    pub fn is_held_back(&self, tp: &TopicPartition) -> bool {
        self.held.contains(tp)
    }

    /// How many partitions are held back now.
    pub fn held_back(&self) -> usize {
        self.held.len()
    }

    /// Times a partition was held back.
    pub fn holds_back(&self) -> u64 {
        self.holds
    }

    /// Routes `partitions` to this queue, for a consumer that assigns them
    /// itself rather than through a group's rebalance (call it before the
    /// assignment).
    pub fn route(&self, partitions: &TopicPartitionList) {
        Route(self.queue).route(self.consumer, partitions);
    }

    /// The messages at hand, at most `max` of them, waiting up to `wait`
    /// (rounded up to a millisecond) for the first if none is. A message's
    /// partition order is kept; partitions come in runs.
    pub fn next_batch(&mut self, max: usize, wait: Duration) -> Batch<'c> {
        let max = max.clamp(1, MAX_BATCH);
        let mut messages: Vec<*mut rd::rd_kafka_message_t> = Vec::with_capacity(max);
        let queue = self.queue.0.as_ptr();
        // SAFETY: the buffer has room for `max` pointers, librdkafka writes at
        // most the count it returns (never more than it was given room for),
        // and the length is set to that count.
        unsafe {
            let mut taken = take(queue, 0, messages.as_mut_ptr(), max);
            if taken == 0 && !wait.is_zero() {
                let millis = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                taken = take(queue, millis, messages.as_mut_ptr(), 1);
                if taken == 1 && max > 1 {
                    taken += take(queue, 0, messages.as_mut_ptr().add(1), max - 1);
                }
            }
            messages.set_len(taken);
        }
        Batch {
            messages,
            _consumer: PhantomData,
        }
    }
}

/// The most messages one batch call takes: a step's worth at the default
/// batch size, and a buffer of 64 KiB.
const MAX_BATCH: usize = 8192;

/// librdkafka's batch call on `queue`; the number of messages written to
/// `into` (none on an error, which it reports only for a bad queue).
///
/// # Safety
/// `queue` is a live queue handle and `into` has room for `size` pointers.
unsafe fn take(
    queue: *mut rd::rd_kafka_queue_t,
    timeout_ms: i32,
    into: *mut *mut rd::rd_kafka_message_t,
    size: usize,
) -> usize {
    // SAFETY: upheld by the caller.
    let got = unsafe { rd::rd_kafka_consume_batch_queue(queue, timeout_ms, into, size) };
    usize::try_from(got).unwrap_or(0).min(size)
}

impl Drop for FetchQueue<'_> {
    fn drop(&mut self) {
        self.consumer.context().set_route(None);
        // SAFETY: the queue is ours and no longer reachable from the context;
        // partitions still routed to it hold their own reference, and
        // librdkafka drops what they send to a destroyed queue.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.0.as_ptr()) };
    }
}

/// Messages taken in one batch call, given back to librdkafka when dropped.
/// It cannot outlive the consumer they came from.
pub struct Batch<'c> {
    messages: Vec<*mut rd::rd_kafka_message_t>,
    _consumer: PhantomData<&'c ()>,
}

impl Batch<'_> {
    /// How many messages (errors included) the batch holds.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the batch holds none.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The batch's messages in order: each a message, or the error librdkafka
    /// reported in its place (a consume error of a partition).
    pub fn iter(&self) -> impl Iterator<Item = std::result::Result<Incoming<'_>, String>> + '_ {
        // A batch comes in runs of one partition: the topic's name is read
        // once per run, not once per message.
        let mut last: Option<(*mut rd::rd_kafka_topic_t, &str)> = None;
        self.messages.iter().map(move |&message| {
            // SAFETY: the message is live until the batch is dropped, and
            // everything borrowed from it is tied to the batch.
            unsafe { view(message, &mut last) }
        })
    }
}

/// The message `message` as an [`Incoming`], or its error.
///
/// # Safety
/// `message` is a live message from librdkafka that outlives `'m`, and `last`
/// holds only topics of such messages.
unsafe fn view<'m>(
    message: *mut rd::rd_kafka_message_t,
    last: &mut Option<(*mut rd::rd_kafka_topic_t, &'m str)>,
) -> std::result::Result<Incoming<'m>, String> {
    // SAFETY: upheld by the caller.
    let m = unsafe { &*message };
    if m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        let code: rdkafka::error::RDKafkaErrorCode = m.err.into();
        return Err(code.to_string());
    }
    let topic = match *last {
        Some((rkt, name)) if rkt == m.rkt => name,
        _ => {
            // SAFETY: a message's topic handle and its name live as long as
            // the message.
            let name = unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(m.rkt)) }
                .to_str()
                .map_err(|_| "a topic name that is not UTF-8".to_owned())?;
            *last = Some((m.rkt, name));
            name
        }
    };
    let bytes = |ptr: *mut std::ffi::c_void, len: usize| -> Option<&'m [u8]> {
        // SAFETY: librdkafka's key and payload are `len` bytes at `ptr`, or
        // null, and live as long as the message.
        (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr as *const u8, len) })
    };
    let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    // SAFETY: the message is live; `kind` is written by librdkafka.
    let timestamp = unsafe { rd::rd_kafka_message_timestamp(message, &mut kind) };
    Ok(Incoming {
        topic,
        partition: m.partition,
        offset: m.offset,
        timestamp: (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            && timestamp != -1)
            .then_some(timestamp),
        key: bytes(m.key, m.key_len),
        payload: bytes(m.payload, m.len).unwrap_or_default(),
    })
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        for &message in &self.messages {
            // SAFETY: each message was handed to us by the batch call and is
            // given back once.
            unsafe { rd::rd_kafka_message_destroy(message) };
        }
    }
}
