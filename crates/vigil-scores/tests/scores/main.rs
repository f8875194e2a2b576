//! Tests of the score kernels, their SQL functions and the row-by-row reference.
//! One test binary for the crate, so DataFusion is linked once.

mod common;
mod edges;
mod missing;
mod property;
mod sql;
mod trend;
