//! Statistics of a whole series of (time, value) points: the Mann-Kendall trend
//! test and a self-starting CUSUM change detector. Both need the points in time
//! order, so their state is the points themselves (16 bytes each): meant for
//! series of window summaries (a ward's share at risk every 5 minutes), not for
//! raw readings.

use statrs::distribution::{ContinuousCDF, Normal};

/// The Mann-Kendall test of a monotonic trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    /// S: concordant minus discordant pairs in time order (positive: rising).
    pub s: i64,
    /// The normal score of S, continuity-corrected, with the variance corrected
    /// for tied values.
    pub z: f64,
    /// Two-sided p-value of no trend.
    pub p: f64,
}

/// Sorts `points` by time (then value, so that the order is the same for any
/// arrival order).
pub fn sort(points: &mut [(f64, f64)]) {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
}

/// The Mann-Kendall test over `points` sorted by [`sort`]; `None` with fewer
/// than three points or no variance (every value tied). Pairs at the same time
/// count as neither concordant nor discordant. O(n log n).
pub fn mann_kendall(points: &[(f64, f64)]) -> Option<MannKendall> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    // Ranks of the distinct values, and the tie groups' sizes.
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    values.sort_by(f64::total_cmp);
    let mut distinct: Vec<f64> = Vec::with_capacity(n);
    let mut ties_term = 0.0;
    let mut run = 0usize;
    for (i, &v) in values.iter().enumerate() {
        run += 1;
        if values.get(i + 1).is_none_or(|&next| next != v) {
            let t = run as f64;
            ties_term += t * (t - 1.0) * (2.0 * t + 5.0);
            distinct.push(v);
            run = 0;
        }
    }
    let rank = |v: f64| distinct.partition_point(|&d| d < v);
    // A Fenwick tree counts the earlier points below and above each value.
    let mut tree = vec![0i64; distinct.len() + 1];
    let add = |tree: &mut Vec<i64>, r: usize| {
        let mut i = r + 1;
        while i < tree.len() {
            tree[i] += 1;
            i += i & i.wrapping_neg();
        }
    };
    let below = |tree: &Vec<i64>, r: usize| {
        // points with rank < r
        let mut i = r;
        let mut sum = 0;
        while i > 0 {
            sum += tree[i];
            i -= i & i.wrapping_neg();
        }
        sum
    };
    let mut s: i64 = 0;
    let mut seen: i64 = 0;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && points[end].0 == points[start].0 {
            end += 1;
        }
        for &(_, v) in &points[start..end] {
            let r = rank(v);
            let less = below(&tree, r);
            let not_greater = below(&tree, r + 1);
            s += less - (seen - not_greater);
        }
        for &(_, v) in &points[start..end] {
            add(&mut tree, rank(v));
        }
        seen += (end - start) as i64;
        start = end;
    }
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties_term) / 18.0;
    if var <= 0.0 {
        return None;
    }
    let z = match s {
        0 => 0.0,
        s if s > 0 => (s as f64 - 1.0) / var.sqrt(),
        s => (s as f64 + 1.0) / var.sqrt(),
    };
    let normal = Normal::standard();
    let p = (2.0 * normal.sf(z.abs())).clamp(0.0, 1.0);
    Some(MannKendall { s, z, p })
}

/// Points a self-starting CUSUM takes to learn the series' level before it
/// starts accumulating.
pub const CUSUM_WARMUP: usize = 3;

/// The self-starting upper CUSUM of `points` sorted by [`sort`], in standard
/// deviations: points at the same time are first averaged into one (rows of
/// many patients per minute make a series of the minute's mean), each point is
/// standardised by the mean and standard deviation of the points before it, and
/// S = max(0, S + z - k) with allowance `k` (0.5 detects a shift of one standard
/// deviation fastest). Returns S after the last point: 0 for a series in
/// control, above 4 to 5 for a sustained upward shift. `None` until the series
/// has [`CUSUM_WARMUP`] points with some spread. For a downward shift, negate
/// the values.
pub fn cusum(points: &[(f64, f64)], k: f64) -> Option<f64> {
    let (mut n, mut mean, mut m2) = (0.0_f64, 0.0_f64, 0.0_f64);
    let mut s = None;
    for v in means_per_time(points) {
        if n >= CUSUM_WARMUP as f64 && m2 > 0.0 {
            let sd = (m2 / (n - 1.0)).sqrt();
            let z = (v - mean) / sd;
            s = Some((s.unwrap_or(0.0) + z - k).max(0.0));
        }
        n += 1.0;
        let d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
    }
    s
}

/// The mean value at each distinct time of `points` sorted by time.
fn means_per_time(points: &[(f64, f64)]) -> impl Iterator<Item = f64> + '_ {
    points
        .chunk_by(|a, b| a.0 == b.0)
        .map(|same| same.iter().map(|p| p.1).sum::<f64>() / same.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64, v))
            .collect()
    }

    /// S by its definition, over all pairs: O(n^2).
    fn s_by_pairs(points: &[(f64, f64)]) -> i64 {
        let mut s = 0;
        for i in 0..points.len() {
            for j in 0..points.len() {
                if points[i].0 < points[j].0 {
                    s += match points[j].1.total_cmp(&points[i].1) {
                        std::cmp::Ordering::Greater => 1,
                        std::cmp::Ordering::Less => -1,
                        std::cmp::Ordering::Equal => 0,
                    };
                }
            }
        }
        s
    }

    #[test]
    fn a_known_series_gives_the_published_statistic() {
        // Ten points; S by hand: 1 2 3 5 4 6 7 9 8 10 has 45 pairs, 2 discordant.
        let points = series(&[1.0, 2.0, 3.0, 5.0, 4.0, 6.0, 7.0, 9.0, 8.0, 10.0]);
        let mk = mann_kendall(&points).expect("mk");
        assert_eq!(mk.s, 41);
        // Var = 10 * 9 * 25 / 18 = 125; z = 40 / sqrt(125).
        assert!((mk.z - 40.0 / 125.0_f64.sqrt()).abs() < 1e-12);
        assert!(mk.p < 0.001, "{}", mk.p);
        let falling: Vec<_> = points.iter().map(|&(t, v)| (t, -v)).collect();
        let down = mann_kendall(&falling).expect("mk");
        assert_eq!((down.s, down.p), (-41, mk.p));
    }

    #[test]
    fn ties_in_value_and_time_match_the_pairwise_definition() {
        let mut points = vec![
            (0.0, 3.0),
            (1.0, 3.0),
            (1.0, 5.0),
            (2.0, 1.0),
            (3.0, 3.0),
            (3.0, 3.0),
            (4.0, 8.0),
            (5.0, 5.0),
            (5.0, 2.0),
        ];
        sort(&mut points);
        let mk = mann_kendall(&points).expect("mk");
        assert_eq!(mk.s, s_by_pairs(&points));
        // Tie groups in value: 3.0 x4, 5.0 x2.
        let var: f64 = (9.0 * 8.0 * 23.0 - (4.0 * 3.0 * 13.0) - (2.0 * 1.0 * 9.0)) / 18.0;
        let expected_z = match mk.s {
            0 => 0.0,
            s if s > 0 => (s as f64 - 1.0) / var.sqrt(),
            s => (s as f64 + 1.0) / var.sqrt(),
        };
        assert!((mk.z - expected_z).abs() < 1e-12);
    }

    #[test]
    fn pseudo_random_series_agree_with_the_pairwise_count() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in [3usize, 4, 17, 64, 200] {
            let mut points: Vec<(f64, f64)> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ((x % 50) as f64, (x >> 20) as f64 % 9.0)
                })
                .collect();
            sort(&mut points);
            if let Some(mk) = mann_kendall(&points) {
                assert_eq!(mk.s, s_by_pairs(&points), "len {len}");
                assert!((0.0..=1.0).contains(&mk.p));
            }
        }
    }

    #[test]
    fn too_few_or_all_tied_values_give_no_figure() {
        assert_eq!(mann_kendall(&series(&[1.0, 2.0])), None);
        assert_eq!(mann_kendall(&series(&[4.0, 4.0, 4.0, 4.0])), None);
    }

    #[test]
    fn cusum_stays_low_in_control_and_climbs_after_a_shift() {
        let steady = [
            10.0, 11.0, 9.0, 10.0, 11.0, 9.0, 10.0, 11.0, 9.0, 10.0, 11.0, 9.0,
        ];
        let s = cusum(&series(&steady), 0.5).expect("cusum");
        assert!(s < 2.0, "{s}");
        let mut shifted = steady.to_vec();
        shifted.extend([14.0, 15.0, 14.0, 15.0, 14.0, 15.0]);
        let s = cusum(&series(&shifted), 0.5).expect("cusum");
        assert!(s > 5.0, "{s}");
        // A downward shift shows in the negated series only.
        let down: Vec<f64> = steady
            .iter()
            .chain([6.0, 5.0, 6.0, 5.0].iter())
            .copied()
            .collect();
        assert!(cusum(&series(&down), 0.5).expect("up") < 1.0);
        let negated: Vec<f64> = down.iter().map(|v| -v).collect();
        assert!(cusum(&series(&negated), 0.5).expect("down") > 4.0);
    }

    #[test]
    fn cusum_averages_points_at_the_same_time() {
        // Two patients a minute, their mean steady then up: the same as the
        // series of means, whatever the spread within a minute.
        let means = [10.0, 11.0, 9.0, 10.0, 11.0, 9.0, 10.0, 14.0, 15.0, 14.0];
        let mut pooled: Vec<(f64, f64)> = means
            .iter()
            .enumerate()
            .flat_map(|(i, &m)| [(i as f64, m - 3.0), (i as f64, m + 3.0)])
            .collect();
        sort(&mut pooled);
        assert_eq!(cusum(&pooled, 0.5), cusum(&series(&means), 0.5));
    }

    #[test]
    fn cusum_needs_a_warm_up_with_spread() {
        assert_eq!(cusum(&series(&[1.0, 2.0, 3.0]), 0.5), None);
        assert_eq!(cusum(&series(&[2.0, 2.0, 2.0, 2.0, 2.0]), 0.5), None);
        assert!(cusum(&series(&[1.0, 2.0, 3.0, 2.0]), 0.5).is_some());
    }
}
