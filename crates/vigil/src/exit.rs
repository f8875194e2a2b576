//! Exit codes, documented in README: scripts rely on them.

/// Something failed (unreadable input, unwritable output).
pub const FAILURE: u8 = 1;
/// The command line is invalid (as clap itself exits for a flag it rejects).
pub const USAGE: u8 = 2;
/// Every line was processed, but some input lines were rejected (sysexits EX_DATAERR).
pub const SOME_REJECTED: u8 = 65;
/// The pipeline file is not valid (sysexits' EX_CONFIG).
pub const INVALID_PIPELINE: u8 = 78;
