//! Integration tests of the streaming engine (one test binary, to keep link time low).

mod checkpoints;
mod dedup;
mod golden;
mod harness;
mod latest;
mod partitions;
mod plan;
mod replay;
mod windows;
