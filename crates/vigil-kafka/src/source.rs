//! Reading from Kafka as a consumer-group member: which partitions this instance
//! owns, and the offsets it may commit for them, shared with librdkafka's
//! rebalance callback so that a revoked partition's safe offset is committed
//! before the partition goes to another instance.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use crate::commits::{CommitResult, CommitResults};
use crate::fetch::Route;

/// A source partition: topic and partition number.
pub type TopicPartition = (String, i32);

/// A change of this instance's assignment, seen by the run loop after a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// These partitions are now this instance's.
    Assigned(Vec<TopicPartition>),
    /// These partitions were taken away (their safe offsets already committed),
    /// or, in exactly-once mode, are to be given up once the loop has committed.
    Revoked(Vec<TopicPartition>),
}

/// What the run loop and the rebalance callback share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Assignment changes not yet handled by the run loop (recorded by the
    /// rebalance callback through [`GroupContext`], which flags them for
    /// [`GroupContext::take_changes`]).
    pub changes: Vec<Assignment>,
    /// Per partition: the offset that may be committed and its metadata, not yet
    /// in the progress log.
    pub safe: BTreeMap<TopicPartition, (i64, String)>,
    /// Per partition: an offset and metadata the progress log has (acknowledged),
    /// not yet committed to the group.
    pub written: BTreeMap<TopicPartition, (i64, String)>,
    /// Offsets committed (for the run loop's trackers and its statistics).
    pub committed: Vec<(TopicPartition, i64)>,
    /// Commits that failed.
    pub commit_failures: u64,
    /// Commits sent without waiting whose results are not in yet.
    pub commits_in_flight: usize,
    /// Where commit results come back, while the run loop's
    /// [`CommitQueue`](crate::commits::CommitQueue) lives.
    pub(crate) commit_results: Option<CommitResults>,
    /// Consumer lag per partition from librdkafka's latest statistics, not yet
    /// reported.
    pub consumer_lag: BTreeMap<TopicPartition, i64>,
    /// Brokers in state UP in the latest statistics, not yet reported.
    pub brokers_up: Option<u64>,
    /// Exactly-once, while the run loop runs: a revocation is left to the loop,
    /// which commits its transaction before the partitions go.
    pub defer_revocations: bool,
    /// Where assigned partitions' messages are routed, while the run loop's
    /// [`FetchQueue`](crate::fetch::FetchQueue) lives.
    pub(crate) route: Option<Route>,
}

/// The consumer's context: records assignment changes and commits a revoked
/// partition's safe offset before it leaves. The flag says that changes may be
/// waiting, so that the run loop, which looks after every message it polls,
/// does not take the lock when there are none.
#[derive(Debug, Default, Clone)]
pub struct GroupContext(pub Arc<Mutex<Shared>>, Arc<AtomicBool>);

impl ClientContext for GroupContext {
    /// Keeps each partition's consumer lag (the partition's end minus the
    /// application's position) and how many brokers are up (statistics arrive
    /// every `statistics.interval.ms`); partitions without both offsets known are
    /// skipped.
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Ok(mut shared) = self.0.lock() {
            let up = statistics
                .brokers
                .values()
                .filter(|b| b.nodeid >= 0 && b.state == "UP")
                .count();
            shared.brokers_up = Some(up as u64);
            for (topic, t) in statistics.topics {
                for (partition, p) in t.partitions {
                    // Behind the end from the application's position, not from
                    // the last commit (commits trail open windows by design).
                    if partition >= 0 && p.hi_offset >= 0 && p.app_offset >= 0 {
                        shared.consumer_lag.insert(
                            (topic.clone(), partition),
                            (p.hi_offset - p.app_offset).max(0),
                        );
                    }
                }
            }
        }
    }
}

impl GroupContext {
    /// Records an assignment change for the run loop (with `shared` locked).
    fn push_change(&self, shared: &mut Shared, change: Assignment) {
        shared.changes.push(change);
        self.1.store(true, Ordering::Release);
    }

    /// The assignment changes not yet taken by the run loop (none without
    /// taking the lock if none was recorded since the last call); `None` if the
    /// shared state is poisoned.
    pub fn take_changes(&self) -> Option<Vec<Assignment>> {
        // Cleared before the lock is taken: a change recorded after the take
        // sets it again.
        if !self.1.swap(false, Ordering::Acquire) {
            return Some(Vec::new());
        }
        let mut shared = self.0.lock().ok()?;
        Some(std::mem::take(&mut shared.changes))
    }

    /// Commits the offsets of `partitions` (all of them if `None`) that the
    /// progress log has (so the group's commit never runs ahead of the log).
    ///
    /// Without `wait` (the run loop) the commit is sent and its result served
    /// by a later [`serve_commits`](Self::serve_commits); while an earlier one
    /// has not reported back none is sent, so commits reach the group in order,
    /// and what is written stays for the next round. With `wait` (a partition
    /// leaving) the one under way is waited for first, then this one, each at
    /// most `wait`. Without a [`CommitQueue`](crate::commits::CommitQueue)
    /// (before the run loop's or after it) the commit blocks until it is done.
    pub fn commit_safe(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        partitions: Option<&[TopicPartition]>,
        wait: Option<Duration>,
    ) {
        let Ok(mut shared) = self.0.lock() else {
            return;
        };
        let results = shared.commit_results;
        if let Some(results) = results {
            serve(&mut shared, results, wait.unwrap_or(Duration::ZERO));
            if wait.is_none() && shared.commits_in_flight > 0 {
                return;
            }
        }
        let chosen: Vec<(TopicPartition, (i64, String))> = shared
            .written
            .iter()
            .filter(|(tp, _)| partitions.is_none_or(|ps| ps.contains(tp)))
            .map(|(tp, v)| (tp.clone(), v.clone()))
            .collect();
        if chosen.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), (offset, metadata)) in &chosen {
            if let Ok(mut elem) = list
                .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .and_then(|()| {
                    list.find_partition(topic, *partition).ok_or(
                        rdkafka::error::KafkaError::Subscription("partition vanished".to_owned()),
                    )
                })
            {
                elem.set_metadata(metadata.as_str());
            }
        }
        let Some(results) = results else {
            let result = consumer.commit(&list, CommitMode::Sync).map_err(|e| {
                e.rdkafka_error_code()
                    .unwrap_or(rdkafka::types::RDKafkaErrorCode::Fail)
            });
            settle(
                &mut shared,
                CommitResult {
                    error: result.err(),
                    partitions: chosen
                        .into_iter()
                        .map(|(tp, (offset, _))| (tp, offset, None))
                        .collect(),
                },
            );
            return;
        };
        match results.send(consumer, &list) {
            Ok(()) => {
                shared.commits_in_flight += 1;
                if let Some(wait) = wait {
                    serve(&mut shared, results, wait);
                }
            }
            Err(code) => {
                shared.commit_failures += 1;
                tracing::warn!(error = %code, "offset commit failed; it is retried at the next commit");
            }
        }
    }

    /// Takes in the results of commits sent without waiting (see
    /// [`commit_safe`](Self::commit_safe)): what they committed is in
    /// [`Shared::committed`] afterwards, what failed stays written for the next
    /// commit. The run loop calls it at every step.
    pub fn serve_commits(&self) {
        if let Ok(mut shared) = self.0.lock()
            && let Some(results) = shared.commit_results
        {
            serve(&mut shared, results, Duration::ZERO);
        }
    }

    /// Sets (or clears) where commit results come back.
    pub(crate) fn set_commit_results(&self, results: Option<CommitResults>) {
        if let Ok(mut shared) = self.0.lock() {
            shared.commit_results = results;
        }
    }
}

/// Takes in the results of the commits under way that are in (waiting at most
/// `wait` for each while some are not).
fn serve(shared: &mut Shared, results: CommitResults, wait: Duration) {
    while shared.commits_in_flight > 0 {
        let Some(result) = results.next(wait) else {
            return;
        };
        shared.commits_in_flight -= 1;
        settle(shared, result);
    }
}

/// Records what the group answered to a commit: each partition committed is
/// no longer written-but-uncommitted (unless a newer offset was written since)
/// and is counted; a failure is counted and logged, and what it held stays
/// written, to be committed at the next round.
fn settle(shared: &mut Shared, result: CommitResult) {
    let failed = result
        .error
        .or_else(|| result.partitions.iter().find_map(|(_, _, e)| *e));
    if let Some(code) = failed {
        shared.commit_failures += 1;
        tracing::warn!(error = %code, "offset commit failed; it is retried at the next commit");
    }
    if result.error.is_some() {
        return;
    }
    for (tp, offset, error) in result.partitions {
        if error.is_some() {
            continue;
        }
        if shared.written.get(&tp).is_some_and(|(o, _)| *o == offset) {
            shared.written.remove(&tp);
        }
        shared.committed.push((tp, offset));
    }
}

/// How long a revocation waits for the commit under way and then for its own
/// (the rebalance waits for the callback meanwhile). Past it the partitions go
/// anyway: their next owner starts from the group's last commit and reads again
/// what came after it (at least once, nothing lost).
const REVOKED_COMMIT_WAIT: Duration = Duration::from_secs(30);

fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl GroupContext {
    /// Before partitions leave (at-least-once): commits what the progress log
    /// has for them and tells the run loop.
    fn revoking(&self, consumer: &BaseConsumer<Self>, revoked: Vec<TopicPartition>) {
        self.commit_safe(consumer, Some(&revoked), Some(REVOKED_COMMIT_WAIT));
        if let Ok(mut shared) = self.0.lock() {
            for tp in &revoked {
                shared.safe.remove(tp);
                shared.written.remove(tp);
            }
            self.push_change(&mut shared, Assignment::Revoked(revoked));
        }
    }

    /// Sets (or clears) where assigned partitions' messages are routed.
    pub(crate) fn set_route(&self, route: Option<Route>) {
        if let Ok(mut shared) = self.0.lock() {
            shared.route = route;
        }
    }

    /// Whether a revocation waits for the run loop (exactly-once while it runs).
    fn defers_revocations(&self) -> bool {
        self.0.lock().map(|s| s.defer_revocations).unwrap_or(false)
    }
}

/// Gives librdkafka's assignment back to it: `partitions` leave the consumer
/// (all of them under the eager protocol). Called by the rebalance callback, or
/// by the run loop once it has committed a revocation it deferred.
pub fn unassign(consumer: &BaseConsumer<GroupContext>, partitions: &[TopicPartition]) {
    let result = match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in partitions {
                list.add_partition(topic, *partition);
            }
            consumer.incremental_unassign(&list)
        }
        _ => consumer.unassign(),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "giving up revoked partitions failed");
    }
}

impl ConsumerContext for GroupContext {
    /// Serves a rebalance. Assigned partitions are taken at once and handed to
    /// the run loop. Revoked ones are, at least once, committed and given up in
    /// the callback; in exactly-once mode the callback only tells the run loop,
    /// which commits its transaction (outputs, state and offsets of everything
    /// processed) and then gives them up (see [`unassign`]): the rebalance
    /// waits for that, so no other instance reads them before the commit.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Routed before they are assigned: nothing is fetched for them
                // until then (the lock is not held across librdkafka calls).
                let route = self.0.lock().ok().and_then(|shared| shared.route);
                if let Some(route) = route {
                    route.route(consumer, tpl);
                }
                let result = match consumer.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
                    _ => consumer.assign(tpl),
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "taking the assignment failed");
                }
                if let Ok(mut shared) = self.0.lock() {
                    self.push_change(&mut shared, Assignment::Assigned(partitions_of(tpl)));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked = partitions_of(tpl);
                if self.defers_revocations() {
                    if let Ok(mut shared) = self.0.lock() {
                        self.push_change(&mut shared, Assignment::Revoked(revoked));
                    }
                } else {
                    self.revoking(consumer, revoked.clone());
                    unassign(consumer, &revoked);
                }
            }
            other => {
                let code: rdkafka::types::RDKafkaErrorCode = other.into();
                tracing::warn!(error = %code, "rebalance error");
                unassign(consumer, &partitions_of(tpl));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(partition: i32) -> Assignment {
        Assignment::Assigned(vec![("t".to_owned(), partition)])
    }

    /// Changes are taken once, in order; with none recorded nothing is
    /// taken, and one recorded after a take is there at the next.
    #[test]
    fn changes_are_taken_once_and_none_are_missed() {
        let context = GroupContext::default();
        assert_eq!(context.take_changes(), Some(Vec::new()));
        {
            let mut shared = context.0.lock().expect("lock");
            context.push_change(&mut shared, assigned(0));
            context.push_change(&mut shared, assigned(1));
        }
        assert_eq!(context.take_changes(), Some(vec![assigned(0), assigned(1)]));
        assert_eq!(context.take_changes(), Some(Vec::new()));
        {
            let mut shared = context.0.lock().expect("lock");
            context.push_change(&mut shared, assigned(2));
        }
        assert_eq!(context.take_changes(), Some(vec![assigned(2)]));
        // Pushed around the flag, a change waits until one is flagged.
        context.0.lock().expect("lock").changes.push(assigned(3));
        assert_eq!(context.take_changes(), Some(Vec::new()));
        {
            let mut shared = context.0.lock().expect("lock");
            context.push_change(&mut shared, assigned(4));
        }
        assert_eq!(context.take_changes(), Some(vec![assigned(3), assigned(4)]));
    }
}
