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
pub mod alerts;
pub mod checkpoint;
mod collapsed;
pub mod dedup;
mod intervals;
mod job;
mod latest;
mod output;
mod panes;
mod session;
mod updating;
pub mod watermark;

use arrow::array::RecordBatch;

pub use checkpoint::{Encoding, Measured, PartitionState};
pub use job::{Emitted, JobCounters, JobRunner, Progress};

use crate::error::Result;

/// The earliest and latest event time of a batch's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchTimes {
    first: i64,
    last: i64,
}

/// An operator that keeps state between batches and emits when time moves.
trait StatefulOperator: Send {
    /// Absorbs rows (none of them late) whose event times span `times`; may emit
    /// (updating aggregates do).
    fn process(
        &mut self,
        batch: &RecordBatch,
        times: Option<BatchTimes>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()>;
    /// The earliest event time a row must have to still matter to this operator:
    /// older rows are in no window, session or group it will emit again, so their
    /// input need not be replayed. `None` if the operator holds no rows' state.
    fn horizon(&self) -> Option<i64>;
    /// Emits nothing that ends at or before `end` (windows and sessions a previous
    /// owner of the partition already emitted, rebuilt here from a replay that
    /// lacks their older rows).
    fn suppress_through(&mut self, end: i64);
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
    /// Hands `each` the checkpoint parts of the state, one at a time, without
    /// consuming the operator, if its state can be read in place (no DataFusion
    /// accumulator would be drained); false (and nothing handed out) otherwise.
    /// Called again on an unchanged operator, it hands out the same parts. A
    /// checkpoint then needs no operator rebuilt from its parts (at a million
    /// keys, half a second of the run loop and a second copy of the state), and
    /// a large part may come in slices that are written out before the next is
    /// built. The parts restore like those of [`export`](Self::export).
    fn snapshot(&mut self, _each: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<bool> {
        Ok(false)
    }
    /// Loads parts written by [`export`](Self::export) of the same job into this
    /// fresh operator.
    fn restore(&mut self, parts: &[RecordBatch]) -> Result<()>;
}
