//! Backpressure on the consumer: while the run loop waits for its sink, it pauses
//! every assigned partition and keeps polling, so the group does not think it
//! dead (`max.poll.interval.ms`), rebalances are served, and nothing more is
//! fetched into memory.
//!
//! librdkafka purges a paused partition's prefetched messages and fetches again
//! from the next offset not yet handed to the application when it is resumed, so
//! pausing loses nothing. A partition assigned during the wait starts unpaused:
//! a message it yields is kept here, its partition paused, and the message handed
//! to the next step before anything else.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::source::GroupContext;

/// The consumer's pause state and the messages polled while paused.
pub struct Intake<'a> {
    consumer: &'a BaseConsumer<GroupContext>,
    paused: Cell<bool>,
    /// How many partitions the wait paused.
    paused_count: Cell<usize>,
    held: RefCell<VecDeque<OwnedMessage>>,
    pauses: Cell<u64>,
}

impl<'a> Intake<'a> {
    /// Backpressure for `consumer`, which starts unpaused.
    pub fn new(consumer: &'a BaseConsumer<GroupContext>) -> Intake<'a> {
        Intake {
            consumer,
            paused: Cell::new(false),
            paused_count: Cell::new(0),
            held: RefCell::new(VecDeque::new()),
            pauses: Cell::new(0),
        }
    }

    /// Called while the loop waits: pauses every assigned partition (once per
    /// wait, and again when the assignment grows during it: a partition
    /// routed to the fetch queue yields nothing here to be paused by) and
    /// serves the consumer's events.
    pub fn hold(&self) {
        let assignment = self.consumer.assignment().ok();
        let count = assignment.as_ref().map_or(0, TopicPartitionList::count);
        if !self.paused.get() || count != self.paused_count.get() {
            if let Some(assignment) = &assignment
                && let Err(e) = self.consumer.pause(assignment)
            {
                tracing::warn!(error = %e, "pausing the assignment failed");
            }
            if !self.paused.replace(true) {
                self.pauses.set(self.pauses.get() + 1);
            }
            self.paused_count.set(count);
        }
        while let Some(polled) = self.consumer.poll(Duration::ZERO) {
            match polled {
                Ok(message) => {
                    // From a partition assigned during the wait: keep it, and
                    // pause its partition too.
                    let mut list = TopicPartitionList::new();
                    list.add_partition(message.topic(), message.partition());
                    if let Err(e) = self.consumer.pause(&list) {
                        tracing::warn!(error = %e, "pausing a new partition failed");
                    }
                    self.held.borrow_mut().push_back(message.detach());
                }
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            }
        }
    }

    /// Ends a wait: resumes the whole current assignment.
    pub fn release(&self) {
        if self.paused.replace(false)
            && let Ok(assignment) = self.consumer.assignment()
            && let Err(e) = self.consumer.resume(&assignment)
        {
            tracing::warn!(error = %e, "resuming the assignment failed");
        }
    }

    /// The oldest message polled while paused, if any.
    pub fn next_held(&self) -> Option<OwnedMessage> {
        self.held.borrow_mut().pop_front()
    }

    /// Drops the held messages of `partitions` (rewound to their last commit:
    /// they are fetched again from there).
    pub fn discard(&self, partitions: &[(String, i32)]) {
        self.held.borrow_mut().retain(|m| {
            !partitions
                .iter()
                .any(|(topic, partition)| m.topic() == topic && m.partition() == *partition)
        });
    }

    /// How many waits paused the consumer.
    pub fn pauses(&self) -> u64 {
        self.pauses.get()
    }
}
