//! vigil's Kafka connectors.
//!
//! A pipeline whose tables say `connector = 'kafka'` runs as a member of a
//! consumer group: every instance started with the same group id takes a share of
//! the source partitions, keeps the windows of its partitions, and writes results
//! to the sink topics. A message that cannot be decoded goes to the source's
//! dead-letter topic with the reason in its headers; the stream goes on.
//!
//! Delivery is at-least-once with no loss: a source offset is committed only when
//! the broker has acknowledged everything derived from the messages before it.
//! By default each commit first writes the jobs' state to the source's progress
//! topic ([`state`], [`progress`]), so a partition that moves to another
//! instance (a rebalance, a crash) is restored there and read on from the
//! commit; without checkpoints commits stop before what open windows hold, and
//! the new owner replays from there, the commit's progress telling it which
//! replayed rows and windows the old one had already dealt with ([`offsets`]).
//! In exactly-once mode each commit is one Kafka transaction of outputs, state,
//! progress and offsets, and a partition taken over without release fences its
//! previous writer ([`transaction`]).

pub mod commits;
pub mod config;
pub mod error;
pub mod fetch;
pub mod intake;
pub mod metrics;
pub mod offsets;
pub mod progress;
pub mod run;
pub mod sink;
pub mod source;
pub mod state;
pub mod transaction;

pub use config::KafkaConfig;
pub use error::{KafkaError, Result};
pub use metrics::RunMetrics;
pub use run::{KafkaRun, LiveCounters, RunStats};
