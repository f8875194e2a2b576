//! The allocator's setting for a long-running process that holds a large state.
//!
//! glibc raises its mmap threshold each time a large block is freed, so the
//! old blocks of growing hash tables and Arrow buffers stay in its heap
//! instead of going back to the system. Fixed at 128 KiB they go back: the
//! kafka bench's 1 M-patient, 1-hour hop NEWS2 phase peaked at 635-699 MiB
//! with the threshold fixed (by `MALLOC_MMAP_THRESHOLD_=131072`) and at
//! 866-874 MiB without, with the same latency (README, Performance).
//! `mallopt(M_MMAP_THRESHOLD)` is the same setting as that variable (both fix
//! the threshold and stop glibc from moving it), made by vigil itself so
//! that a run outside the Docker image gets it too.
//!
//! The one `unsafe` call of the binary, allowed in this module only.

#![allow(unsafe_code)]

/// The threshold vigil fixes: blocks of 128 KiB and more are mapped on their
/// own and returned to the system when freed.
pub const MMAP_THRESHOLD: i32 = 131_072;

/// What [`fix_mmap_threshold`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// Fixed at [`MMAP_THRESHOLD`] bytes.
    Fixed,
    /// Left to `MALLOC_MMAP_THRESHOLD_`, which the environment sets.
    FromEnvironment,
    /// Not glibc, or glibc refused: the allocator's own behaviour.
    Unchanged,
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] unless the
/// environment sets `MALLOC_MMAP_THRESHOLD_` (which wins). Call it first
/// thing in `main`, before other threads start.
pub fn fix_mmap_threshold() -> Threshold {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return Threshold::FromEnvironment;
    }
    set()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set() -> Threshold {
    // SAFETY: mallopt only changes an allocator parameter; glibc takes its
    // own lock, so it is sound at any time.
    if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) } == 1 {
        Threshold::Fixed
    } else {
        Threshold::Unchanged
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set() -> Threshold {
    Threshold::Unchanged
}
