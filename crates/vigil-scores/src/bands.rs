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

    /// Appends the points of every value in `values` to `out`.
    ///
    /// Works on fixed-size chunks with the points kept as `f64` while the cuts are
    /// applied, so that every step is a lane-wise compare-and-blend the compiler turns
    /// into SIMD instructions; only the final narrowing goes to `u8`.
    #[inline(always)]
    pub fn points_into(&self, values: &[f64], out: &mut Vec<u8>) {
        const LANES: usize = 16;
        out.reserve(values.len());
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            let mut p = [f64::from(self.lowest); LANES];
            for cut in &self.cuts {
                let points = f64::from(cut.points);
                for (p, &x) in p.iter_mut().zip(chunk) {
                    *p = if cut.passes(x) { points } else { *p };
                }
            }
            out.extend(p.map(|p| p as u8));
        }
        out.extend(rest.iter().map(|&x| self.points(x)));
    }
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
    fn slice_form_matches_scalar_form() {
        let xs = [0.0, 8.0, 8.5, 11.0, 12.0, 100.0];
        let mut out = Vec::new();
        ROW.points_into(&xs, &mut out);
        let want: Vec<u8> = xs.iter().map(|&x| ROW.points(x)).collect();
        assert_eq!(out, want);
    }
}
