//! Population trend statistics as SQL aggregate functions, over any group (a
//! ward, a cohort) and any window:
//!
//! | function | returns |
//! |---|---|
//! | `trend_slope(value, time)` | least-squares slope, value units per hour |
//! | `trend_p_value(value, time)` | two-sided p-value of that slope (Student's t, n - 2 df) |
//! | `mann_kendall_z(value, time)` | Mann-Kendall normal score: positive rising, negative falling |
//! | `mann_kendall_p(value, time)` | its two-sided p-value (ties corrected) |
//! | `cusum(value, time)` | self-starting upper CUSUM at the last point, in standard deviations (k = 0.5) |
//!
//! `value` is any number, `time` a TIMESTAMP; NULL and non-finite values are
//! skipped. Each returns NULL when there is too little data for a figure (see
//! [`regression`] and [`series`]), never a made-up zero. Every partial state
//! merges exactly, so a hop window's panes and two stages across instances give
//! the figure one pass over all the rows would.

pub mod regression;
pub mod series;
pub mod udaf;
