//! Running a planned job: streaming operators over Arrow batches, driven by batches
//! and watermarks.
//!
//! A [`JobRunner`] holds a job's stages in physical form: stateless filters and
//! projections before and after at most one stateful operator (windows over panes,
//! session windows, or an updating aggregate). Callers push source batches with
//! [`JobRunner::process`], move time forward with [`JobRunner::advance`], and end a
//! finite input with [`JobRunner::finish`]. Rows older than the watermark (minus the
//! allowed lateness) never reach the stateful operator: they are returned as late,
//! as they came from the source.

mod aggregates;
pub mod checkpoint;
mod collapsed;
mod job;
mod latest;
mod output;
mod panes;
mod session;
mod updating;
pub mod watermark;

use arrow::array::RecordBatch;

pub use checkpoint::PartitionState;
pub use job::{Emitted, JobRunner};

use crate::error::Result;

/// An operator that keeps state between batches and emits when time moves.
trait StatefulOperator: Send {
    /// Absorbs rows (none of them late) whose latest event time is `batch_time`; may
    /// emit (updating aggregates do).
    fn process(
        &mut self,
        batch: &RecordBatch,
        batch_time: Option<i64>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()>;
    /// The (effective) watermark moved to `watermark`: emit what it completes.
    fn advance(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> Result<()>;
    /// Bytes of state held (an estimate from the accumulators' own accounting).
    fn state_bytes(&self) -> usize;
    /// Groups (keys, or key-pane pairs) held.
    fn state_groups(&self) -> usize;
    /// Writes the whole state out as checkpoint parts (see [`checkpoint`]). Taking
    /// DataFusion accumulator state consumes it, so the operator is consumed too; a
    /// caller that goes on running restores a fresh operator from the parts.
    fn export(self: Box<Self>) -> Result<Vec<RecordBatch>>;
    /// Loads parts written by [`export`](Self::export) of the same job into this
    /// fresh operator.
    fn restore(&mut self, parts: &[RecordBatch]) -> Result<()>;
}
