//! vigil's Kafka connectors.
//!
//! A pipeline whose tables say `connector = 'kafka'` runs as a member of a
//! consumer group: every instance started with the same group id takes a share of
//! the source partitions, keeps the windows of its partitions, and writes results
//! to the sink topics. A message that cannot be decoded goes to the source's
//! dead-letter topic with the reason in its headers; the stream goes on.
//!
//! Delivery is at-least-once with no loss: a source offset is committed only when
//! the broker has acknowledged everything derived from the messages before it and
//! no open window still holds their rows. A partition that moves to another
//! instance (a rebalance, a crash) is rebuilt there by replaying it from the
//! committed offset; the commit's metadata tells the new owner which replayed rows
//! and windows the old one had already dealt with (see [`offsets`]).

pub mod config;
pub mod error;
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
