//! Errors of the score kernels and their SQL functions.

use vigil_core::Disposition;

/// What can go wrong when computing scores.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// Argument arrays of one call have different lengths (a caller bug, not bad data).
    #[error("{function}(): argument {argument} has {actual} rows, expected {expected}")]
    LengthMismatch {
        /// The function called.
        function: String,
        /// 1-based argument position.
        argument: usize,
        /// Rows of the first array argument.
        expected: usize,
        /// Rows of this argument.
        actual: usize,
    },
    /// An argument has a type the function cannot score.
    #[error("{function}(): argument {argument} ({name}) must be {expected}, got {actual}")]
    ArgumentType {
        /// The function called.
        function: String,
        /// 1-based argument position.
        argument: usize,
        /// The parameter's name.
        name: &'static str,
        /// What was expected, in words.
        expected: &'static str,
        /// The type received.
        actual: String,
    },
    /// A batch is missing a column the scores need.
    #[error("vitals batch has no column {0:?}")]
    MissingColumn(&'static str),
    /// An Arrow operation failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

impl ScoreError {
    /// Scoring errors are about the shape of the input, so retrying never helps.
    pub fn disposition(&self) -> Disposition {
        Disposition::Poison
    }
}

/// Result alias for this crate.
pub type Result<T, E = ScoreError> = std::result::Result<T, E>;
