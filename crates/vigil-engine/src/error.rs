//! Errors of the engine: pipeline SQL that cannot run, and failures while running.

use vigil_core::Disposition;

/// Everything that can go wrong planning or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The pipeline file is not valid, or asks for something the engine cannot run
    /// correctly on an unbounded stream. `line` is 1-based, in the pipeline file.
    #[error("line {line}: {message}")]
    Sql {
        /// Line of the offending construct.
        line: u64,
        /// What is wrong, naming the construct.
        message: String,
    },
    /// A table binding (a command-line replacement of `WITH` options) names a
    /// table the pipeline does not declare.
    #[error("{0}")]
    Binding(String),
    /// DataFusion rejected or failed to plan or evaluate something.
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// An Arrow kernel failed.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// An invariant of the engine did not hold: a bug, reported rather than panicking.
    #[error("internal error: {0}")]
    Internal(String),
    /// A checkpoint could not be read or does not belong to this job (written by an
    /// edited pipeline, truncated, or not a vigil checkpoint). The caller rebuilds the
    /// state another way (by replaying the partition from its committed offset).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Reading a source or writing a sink failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read or written (a connector and its path).
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl EngineError {
    /// A SQL error at `line`.
    pub fn sql(line: u64, message: impl Into<String>) -> EngineError {
        EngineError::Sql {
            line,
            message: message.into(),
        }
    }

    /// Whether retrying could help: I/O may be transient, a bad pipeline never is.
    pub fn disposition(&self) -> Disposition {
        match self {
            EngineError::Io { .. } => Disposition::Retryable,
            _ => Disposition::Poison,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
