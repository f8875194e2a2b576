//! Why a message could not be decoded.

use vigil_core::Disposition;

/// The reason a message was rejected (or an encoder failed).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The message is larger than the decoder accepts.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Size of the message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The message is not a JSON object of the expected shape (syntax, wrong type,
    /// missing required field); serde's message says where.
    #[error("{0}")]
    Json(String),
    /// A field has the right JSON type but an unacceptable value.
    #[error("{field}: {reason}")]
    Field {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A column of a declared schema holds an unacceptable value.
    #[error("{column}: {reason}")]
    Value {
        /// The column.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The event time is not a believable timestamp.
    #[error(transparent)]
    Time(#[from] vigil_core::Error),
    /// Building or writing Arrow data failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// Writing output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl DecodeError {
    /// Bad messages are poison (dead-letter them); I/O failures may be retried.
    pub fn disposition(&self) -> Disposition {
        match self {
            DecodeError::Io(_) => Disposition::Retryable,
            _ => Disposition::Poison,
        }
    }

    /// A short, stable label for the kind of failure, for metrics and dead-letter
    /// headers (never contains data from the message).
    pub fn reason_label(&self) -> &'static str {
        match self {
            DecodeError::Oversized { .. } => "oversized",
            DecodeError::Json(_) => "malformed",
            DecodeError::Field { .. } | DecodeError::Value { .. } => "invalid_field",
            DecodeError::Time(_) => "bad_timestamp",
            DecodeError::Arrow(_) => "arrow",
            DecodeError::Io(_) => "io",
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
