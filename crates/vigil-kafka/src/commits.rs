//! Offset commits to the consumer group that do not hold the run loop.
//!
//! rdkafka's safe API commits either blocking (until the group's coordinator
//! answers, however long librdkafka takes to find it again) or without any
//! result at all (librdkafka reports a manual commit only to a queue named in
//! the call, which rdkafka does not name). After a broker restart, with the
//! coordinator answering `COORDINATOR_NOT_AVAILABLE` for a while, a blocking
//! commit held the run loop for 20 to more than 90 seconds in the fault tests:
//! no reading was processed and no alert raised meanwhile. So commits are sent
//! with librdkafka's `rd_kafka_commit_queue`, naming a queue of our own, and
//! their results are read from it at later steps (see
//! [`GroupContext::serve_commits`](crate::source::GroupContext::serve_commits)).
//!
//! This module and [`fetch`](crate::fetch) are the crate's only `unsafe` code.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::Result;
use crate::fetch::QueuePtr;
use crate::source::{GroupContext, TopicPartition};

/// The queue the group's commit results come back on, owned by the run: made
/// after the consumer and destroyed before it (it borrows the consumer). While
/// it lives, the consumer's context sends commits through it.
pub struct CommitQueue<'c> {
    queue: QueuePtr,
    consumer: &'c BaseConsumer<GroupContext>,
}

impl<'c> CommitQueue<'c> {
    /// A queue for `consumer`'s commit results, registered with its context.
    pub fn new(consumer: &'c BaseConsumer<GroupContext>) -> Result<CommitQueue<'c>> {
        // Ours to destroy (in `drop`).
        let queue = QueuePtr::new(consumer)?;
        consumer
            .context()
            .set_commit_results(Some(CommitResults(queue)));
        Ok(CommitQueue { queue, consumer })
    }
}

impl Drop for CommitQueue<'_> {
    fn drop(&mut self) {
        // Commits from here on block (the context has no queue to name).
        self.consumer.context().set_commit_results(None);
        // SAFETY: the queue is ours and no handle to it is left in the
        // context. A commit still under way holds its own reference to the
        // queue; its result is dropped with it.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.0.as_ptr()) };
    }
}

/// A handle to the [`CommitQueue`] that does not own it: the context holds it
/// while the queue lives (the queue clears it before it is destroyed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitResults(QueuePtr);

/// What the group answered to one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitResult {
    /// The request's error, if it failed as a whole.
    pub error: Option<RDKafkaErrorCode>,
    /// Each partition's offset, and its error if it was not committed.
    pub partitions: Vec<(TopicPartition, i64, Option<RDKafkaErrorCode>)>,
}

impl CommitResults {
    /// Sends a commit of `offsets` for `consumer` without waiting; its result
    /// comes back through [`next`](Self::next).
    pub(crate) fn send<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        offsets: &TopicPartitionList,
    ) -> std::result::Result<(), RDKafkaErrorCode> {
        // SAFETY: the consumer's handle and the list are live for the call,
        // which copies the list; the queue is live (the context holds this
        // handle only while it is), and the commit keeps its own reference.
        let err = unsafe {
            rd::rd_kafka_commit_queue(
                consumer.client().native_ptr(),
                offsets.ptr(),
                self.0.0.as_ptr(),
                None,
                std::ptr::null_mut(),
            )
        };
        match RDKafkaErrorCode::from(err) {
            RDKafkaErrorCode::NoError => Ok(()),
            code => Err(code),
        }
    }

    /// The next commit result, waiting at most `wait` for one.
    pub(crate) fn next(&self, wait: Duration) -> Option<CommitResult> {
        let timeout_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the queue is live (see `send`); the event is ours to destroy,
        // and its partition list is read before it is.
        unsafe {
            let event = rd::rd_kafka_queue_poll(self.0.0.as_ptr(), timeout_ms);
            if event.is_null() {
                return None;
            }
            let result =
                (rd::rd_kafka_event_type(event) == rd::RD_KAFKA_EVENT_OFFSET_COMMIT).then(|| {
                    let error = code(rd::rd_kafka_event_error(event));
                    let list = rd::rd_kafka_event_topic_partition_list(event);
                    CommitResult {
                        error,
                        partitions: partitions(list),
                    }
                });
            rd::rd_kafka_event_destroy(event);
            result
        }
    }
}

/// The error code, unless it says there was none.
fn code(err: rd::rd_kafka_resp_err_t) -> Option<RDKafkaErrorCode> {
    match RDKafkaErrorCode::from(err) {
        RDKafkaErrorCode::NoError => None,
        code => Some(code),
    }
}

/// The partitions, offsets and errors of a librdkafka list (none if null).
///
/// # Safety
///
/// `list` is null or a live list, not changed during the call.
unsafe fn partitions(
    list: *const rd::rd_kafka_topic_partition_list_t,
) -> Vec<(TopicPartition, i64, Option<RDKafkaErrorCode>)> {
    // SAFETY: the caller's promise; librdkafka keeps `cnt` elements at `elems`,
    // each with a nul-terminated topic name.
    unsafe {
        let Some(list) = list.as_ref() else {
            return Vec::new();
        };
        let count = usize::try_from(list.cnt).unwrap_or(0);
        if list.elems.is_null() {
            return Vec::new();
        }
        std::slice::from_raw_parts(list.elems, count)
            .iter()
            .filter(|e| !e.topic.is_null())
            .map(|e| {
                let topic = CStr::from_ptr(e.topic).to_string_lossy().into_owned();
                ((topic, e.partition), e.offset, code(e.err))
            })
            .collect()
    }
}
