//! Errors of the data model, and the retry-or-dead-letter vocabulary shared by every crate.

/// What the streaming layer should do with the input that caused an error.
///
/// Every library error in vigil can say which of these it is, because the Kafka layer
/// must choose between retrying (the broker or a sink is briefly unavailable) and
/// dead-lettering (the message itself is bad and will never succeed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// A transient condition; trying the same input again may succeed.
    Retryable,
    /// The input itself is bad; it goes to the dead-letter output with the reason.
    Poison,
}

/// Errors raised while interpreting vitals data.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// A timestamp string is not RFC 3339.
    #[error("observed_at {value:?} is not an RFC 3339 timestamp: {reason}")]
    TimestampSyntax {
        /// The offending text (a timestamp, not an identifier).
        value: String,
        /// What the parser objected to.
        reason: String,
    },
    /// A timestamp parses but lies outside the range vigil accepts.
    #[error("observed_at {millis} ms since the epoch is outside the accepted range [{min}, {max}]")]
    TimestampOutOfRange {
        /// The timestamp, in UTC milliseconds since the Unix epoch.
        millis: i64,
        /// The earliest accepted timestamp (inclusive).
        min: i64,
        /// The latest accepted timestamp (inclusive).
        max: i64,
    },
}

impl Error {
    /// Whether retrying could help; data-model errors never can.
    pub fn disposition(&self) -> Disposition {
        Disposition::Poison
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
