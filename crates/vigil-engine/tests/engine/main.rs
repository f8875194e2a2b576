//! Integration tests of the streaming engine (one test binary, to keep link time low).

mod harness;
mod plan;
mod windows;
