//! Exactly-once mode: one Kafka transaction per commit.
//!
//! With [`KafkaConfig::exactly_once`](crate::KafkaConfig::exactly_once) the sink's
//! producer is transactional. Everything a commit interval produces goes into
//! one transaction: output rows, dead letters and late rows, then each owned
//! partition's state checkpoint and progress message, then the source offsets
//! (`send_offsets_to_transaction` with the consumer's group metadata). A
//! consumer reading vigil's topics with `isolation.level=read_committed` sees a
//! commit interval's results all at once or not at all, and a new owner of a
//! partition resumes from the state and offset of the last committed
//! transaction, so each result is seen once across crashes and rebalances.
//!
//! Two rules keep it so:
//!
//! - **Revocations wait for the commit.** The rebalance callback does not give
//!   revoked partitions up; the run loop first commits its transaction, marking
//!   the revoked partitions' progress as released (header [`RELEASED`]), then
//!   gives them up (see [`source::unassign`](crate::source::unassign)). No other
//!   instance can read them before the commit.
//! - **A partition taken over without a release fences its previous writer.**
//!   Each progress message names the `transactional.id` that wrote it (header
//!   [`WRITER`]). If the newest committed progress of a partition being assigned
//!   was not released, its writer died or was thrown out of the group (a zombie)
//!   with a transaction perhaps open. The new owner then initialises a producer
//!   with that writer's `transactional.id`, which aborts the open transaction and
//!   fences the writer: its next transaction fails and it stops, instead of
//!   committing results the new owner is about to produce again. A crashed
//!   writer's open transaction stops blocking `read_committed` readers at once,
//!   not after `transaction.timeout.ms`.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use crate::error::Result;

/// Header of a progress message: the `transactional.id` that wrote it.
pub const WRITER: &str = "vigil.writer";
/// Header of a progress message: present (value `1`) when the writer gave the
/// partition up in a rebalance or at shutdown, after committing everything.
pub const RELEASED: &str = "vigil.released";

/// A `transactional.id` unique to this run of group `group`: process id and the
/// wall clock in nanoseconds. A restarted instance needs no stable id: whoever
/// takes its partitions fences the old one.
pub fn default_transactional_id(group: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{group}.{}.{nanos:x}", std::process::id())
}

/// Fences the producer with `transactional.id` `writer`: a producer with that
/// id is initialised (the broker aborts the writer's open transaction and bumps
/// its epoch) and dropped. `config` is the producer configuration of the run.
pub fn fence(config: &ClientConfig, writer: &str, timeout: Duration) -> Result<()> {
    let mut config = config.clone();
    config.set("transactional.id", writer);
    let producer: BaseProducer = config.create()?;
    producer.init_transactions(timeout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_name_the_group_and_differ_between_runs() {
        let a = default_transactional_id("wards");
        std::thread::sleep(Duration::from_millis(2));
        let b = default_transactional_id("wards");
        assert!(a.starts_with("wards."), "{a}");
        assert_ne!(a, b);
    }
}
