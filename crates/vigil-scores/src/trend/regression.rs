//! Least-squares trend of a value over time, with the p-value of its slope.
//!
//! The state is the count, the means and the co-moments (Welford's update,
//! Chan's merge), so that partial states of panes or instances merge exactly and
//! epoch-sized times lose no precision to cancellation.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Running sums of a regression of `v` on `t` (t in hours).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Regression {
    /// Points.
    pub n: f64,
    /// Mean time (hours).
    pub mean_t: f64,
    /// Mean value.
    pub mean_v: f64,
    /// Sum of squared deviations of time.
    pub m2_t: f64,
    /// Sum of squared deviations of value.
    pub m2_v: f64,
    /// Sum of products of the deviations.
    pub c_tv: f64,
}

impl Regression {
    /// Adds one point (non-finite points are the caller's to skip).
    pub fn push(&mut self, t: f64, v: f64) {
        self.n += 1.0;
        let dt = t - self.mean_t;
        let dv = v - self.mean_v;
        self.mean_t += dt / self.n;
        self.mean_v += dv / self.n;
        self.m2_t += dt * (t - self.mean_t);
        self.m2_v += dv * (v - self.mean_v);
        self.c_tv += dt * (v - self.mean_v);
    }

    /// Adds another partial state (of disjoint points).
    pub fn merge(&mut self, other: &Regression) {
        if other.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = *other;
            return;
        }
        let n = self.n + other.n;
        let dt = other.mean_t - self.mean_t;
        let dv = other.mean_v - self.mean_v;
        let w = self.n * other.n / n;
        self.m2_t += other.m2_t + dt * dt * w;
        self.m2_v += other.m2_v + dv * dv * w;
        self.c_tv += other.c_tv + dt * dv * w;
        self.mean_t += dt * other.n / n;
        self.mean_v += dv * other.n / n;
        self.n = n;
    }

    /// The slope, value units per hour; `None` with fewer than two distinct
    /// times.
    pub fn slope(&self) -> Option<f64> {
        (self.n >= 2.0 && self.m2_t > 0.0).then(|| self.c_tv / self.m2_t)
    }

    /// Two-sided p-value of the slope against no trend (Student's t with n - 2
    /// degrees of freedom); `None` with fewer than three points or two distinct
    /// times. A flat series has p = 1; an exact non-flat line has p = 0.
    pub fn p_value(&self) -> Option<f64> {
        let slope = self.slope()?;
        if self.n < 3.0 {
            return None;
        }
        let sse = (self.m2_v - slope * self.c_tv).max(0.0);
        let df = self.n - 2.0;
        let se = (sse / df / self.m2_t).sqrt();
        // Residuals at rounding level of the values: an exact line.
        if se <= f64::EPSILON * slope.abs().max(f64::MIN_POSITIVE) * 16.0 || se == 0.0 {
            return Some(if slope == 0.0 { 1.0 } else { 0.0 });
        }
        let t = slope / se;
        let dist = StudentsT::new(0.0, 1.0, df).ok()?;
        Some((2.0 * dist.sf(t.abs())).clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(points: &[(f64, f64)]) -> Regression {
        let mut r = Regression::default();
        for &(t, v) in points {
            r.push(t, v);
        }
        r
    }

    #[test]
    fn slope_and_p_value_match_a_textbook_fit() {
        // y = 2 + 0.5 t with residuals +-0.1: slope 0.5.
        let points = [(0.0, 2.1), (1.0, 2.4), (2.0, 3.1), (3.0, 3.4), (4.0, 4.1)];
        let r = of(&points);
        let slope = r.slope().expect("slope");
        assert!((slope - 0.5).abs() < 1e-12, "{slope}");
        // The p-value from the residuals computed directly (sum of squared time
        // deviations 10, 3 degrees of freedom).
        let intercept = r.mean_v - slope * r.mean_t;
        let sse: f64 = points
            .iter()
            .map(|(t, v)| (v - intercept - slope * t).powi(2))
            .sum();
        let se = (sse / 3.0 / 10.0_f64).sqrt();
        let t = slope / se;
        let expected = 2.0 * StudentsT::new(0.0, 1.0, 3.0).expect("t").sf(t);
        let p = r.p_value().expect("p");
        assert!((p - expected).abs() < 1e-12, "{p} vs {expected}");
        // t = 0.5 / 0.04 = 12.5 on 3 degrees of freedom.
        assert!((0.001..0.002).contains(&p), "{p}");
    }

    #[test]
    fn merged_partial_states_equal_one_pass_even_at_epoch_times() {
        let base = 491_000.0; // hours since 1970, as in 2026
        let points: Vec<(f64, f64)> = (0..200)
            .map(|i| {
                (
                    base + f64::from(i) / 60.0,
                    70.0 + f64::from(i % 7) + 0.01 * f64::from(i),
                )
            })
            .collect();
        let whole = of(&points);
        let mut merged = of(&points[..37]);
        merged.merge(&of(&points[37..150]));
        merged.merge(&Regression::default());
        merged.merge(&of(&points[150..]));
        let (a, b) = (whole.slope().expect("a"), merged.slope().expect("b"));
        assert!((a - b).abs() < 1e-9 * a.abs().max(1.0), "{a} vs {b}");
        let (a, b) = (whole.p_value().expect("a"), merged.p_value().expect("b"));
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        // 0.01 a minute = 0.6 an hour, recovered despite the epoch offset.
        assert!((whole.slope().expect("slope") - 0.6).abs() < 0.2);
    }

    #[test]
    fn degenerate_series_give_no_figure_or_the_obvious_one() {
        assert_eq!(of(&[]).slope(), None);
        assert_eq!(of(&[(1.0, 5.0)]).slope(), None);
        assert_eq!(of(&[(1.0, 5.0), (1.0, 6.0), (1.0, 7.0)]).slope(), None);
        assert_eq!(of(&[(1.0, 5.0), (2.0, 6.0)]).p_value(), None);
        assert_eq!(
            of(&[(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)]).p_value(),
            Some(1.0)
        );
        assert_eq!(
            of(&[(1.0, 5.0), (2.0, 6.0), (3.0, 7.0)]).p_value(),
            Some(0.0)
        );
        // Noise without a trend is not significant.
        let noise = of(&[
            (0.0, 1.0),
            (1.0, -1.0),
            (2.0, 1.0),
            (3.0, -1.0),
            (4.0, 1.0),
            (5.0, -1.0),
        ]);
        assert!(noise.p_value().expect("p") > 0.5);
    }
}
