//! What can go wrong between vigil and Kafka.

use vigil_core::Disposition;

/// Errors of the Kafka connectors.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The pipeline's Kafka tables or options are not usable (a missing option, a
    /// topic that does not exist, a broker that cannot be reached at start).
    #[error("{0}")]
    Config(String),
    /// librdkafka reported an error.
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// The broker did not acknowledge output: nothing is committed past it, and
    /// the run goes on from its last commit ([`is_recoverable`]); when it keeps
    /// failing the run stops, and whoever runs the partitions next resumes from
    /// the last commit.
    #[error("delivery to {topic} failed: {reason}")]
    Delivery {
        /// The topic written to.
        topic: String,
        /// librdkafka's reason.
        reason: String,
    },
    /// Exactly-once: another instance took this one's partitions over and
    /// fenced its transactional producer (this instance was thrown out of the
    /// group, or stalled). Its open transaction is aborted; restarting it makes
    /// it a member again.
    #[error(
        "fenced: another instance took over the partitions of transactional.id {writer}; this instance stops without committing"
    )]
    Fenced {
        /// This instance's `transactional.id`.
        writer: String,
    },
    /// The producer cannot go on after a failed delivery or transaction (a
    /// fatal librdkafka error, or messages it neither delivers nor fails):
    /// the run stops without committing, and a restart resumes from the last
    /// commit.
    #[error("the producer cannot go on: {0}")]
    Producer(String),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] vigil_engine::EngineError),
    /// Decoding or encoding failed outside a single message (a message's own
    /// failure goes to the dead-letter topic instead).
    #[error(transparent)]
    Format(#[from] vigil_formats::DecodeError),
    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

impl KafkaError {
    /// Whether trying again later could help (a broker down, a delivery timeout),
    /// as opposed to a configuration that will never work.
    pub fn disposition(&self) -> Disposition {
        match self {
            KafkaError::Client(_)
            | KafkaError::Delivery { .. }
            | KafkaError::Fenced { .. }
            | KafkaError::Producer(_) => Disposition::Retryable,
            KafkaError::Engine(e) => e.disposition(),
            KafkaError::Format(e) => e.disposition(),
            KafkaError::Config(_) | KafkaError::Arrow(_) => Disposition::Poison,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = KafkaError> = std::result::Result<T, E>;

/// Whether the run can go on from its last commit after `error` (a delivery
/// that failed, a transaction that must be aborted or timed out), once the
/// producer [recovers](crate::sink::Sink::recover), rather than stop.
pub fn is_recoverable(error: &KafkaError) -> bool {
    match error {
        KafkaError::Delivery { .. } => true,
        KafkaError::Client(rdkafka::error::KafkaError::Transaction(e)) => {
            !e.is_fatal() && (e.txn_requires_abort() || e.is_retriable())
        }
        _ => false,
    }
}

/// Whether librdkafka's error says the producer was fenced by a newer one with
/// its `transactional.id`.
pub fn is_fenced(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(Code::Fenced | Code::ProducerFenced | Code::InvalidProducerEpoch)
    )
}
