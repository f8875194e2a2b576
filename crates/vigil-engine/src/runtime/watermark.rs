//! Event-time watermarks across source partitions.
//!
//! Each partition's watermark is the largest event time it has delivered minus the
//! source's declared delay. The source's watermark is the minimum over its *active*
//! partitions: a partition that has delivered nothing for the idle timeout (in
//! processing time) stops holding the others back, and holds them again when it
//! delivers. A finished partition (end of a file) no longer counts; when every
//! partition has finished the watermark is the end of time, which closes every
//! window. The watermark never goes back.
//!
//! While partitions catch up on a backlog they are read at whatever rates the
//! broker serves them, hours of event time apart, and every window of the
//! partitions ahead waits for the slowest one: state grows with the gap (a
//! 5-million-reading replay, measured: 13-18 KB per patient, and 1.3-2.1 KB
//! with the partitions held to a 5-minute drift).
//! [`Watermarks::ahead`] says which partitions to hold back so that none runs
//! more than a drift ahead of the slowest (as Flink's watermark alignment
//! does); a partition near the wall clock is live and never held.

use std::collections::BTreeMap;

/// Watermark value meaning "the input has ended": every window may close.
pub const END_OF_TIME: i64 = i64::MAX;

#[derive(Debug, Clone, Copy)]
struct Partition {
    /// Largest event time delivered, if any.
    max_event_time: Option<i64>,
    /// Processing time (ms) of the last delivery, or of assignment.
    last_active: i64,
    finished: bool,
}

/// Tracks a source's partitions and derives its watermark.
#[derive(Debug, Clone)]
pub struct Watermarks {
    delay_ms: i64,
    idle_timeout_ms: i64,
    partitions: BTreeMap<u32, Partition>,
    current: Option<i64>,
}

impl Watermarks {
    /// A tracker for a source declaring `delay_ms` of out-of-orderness, whose
    /// partitions count as idle after `idle_timeout_ms` without data.
    pub fn new(delay_ms: i64, idle_timeout_ms: i64) -> Watermarks {
        Watermarks {
            delay_ms,
            idle_timeout_ms,
            partitions: BTreeMap::new(),
            current: None,
        }
    }

    /// Registers a partition (assigned, or first seen) at processing time `now`; it
    /// holds the watermark back until it delivers or goes idle.
    pub fn assign(&mut self, partition: u32, now: i64) {
        self.partitions.entry(partition).or_insert(Partition {
            max_event_time: None,
            last_active: now,
            finished: false,
        });
    }

    /// Forgets a partition (revoked): it no longer holds the watermark back.
    pub fn revoke(&mut self, partition: u32) {
        self.partitions.remove(&partition);
    }

    /// Records that `partition` delivered rows whose latest event time is
    /// `max_event_time` (None if the rows had none) at processing time `now`.
    pub fn observe(&mut self, partition: u32, max_event_time: Option<i64>, now: i64) {
        self.assign(partition, now);
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.last_active = now;
            if let Some(t) = max_event_time {
                p.max_event_time = Some(p.max_event_time.map_or(t, |m| m.max(t)));
            }
        }
    }

    /// Marks `partition` as finished: its input has ended.
    pub fn finish(&mut self, partition: u32) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.finished = true;
        }
    }

    /// The watermark at processing time `now`, or `None` before one can be derived.
    /// Rows with an event time before it are late.
    pub fn watermark(&mut self, now: i64) -> Option<i64> {
        if !self.partitions.is_empty() && self.partitions.values().all(|p| p.finished) {
            self.current = Some(END_OF_TIME);
            return self.current;
        }
        let mut lowest: Option<i64> = None;
        let mut holding = false;
        for p in self.partitions.values() {
            if p.finished || now.saturating_sub(p.last_active) >= self.idle_timeout_ms {
                continue;
            }
            holding = true;
            match p.max_event_time {
                // An active partition with no data yet holds everything back.
                None => return self.current,
                Some(t) => {
                    let mark = t.saturating_sub(self.delay_ms);
                    lowest = Some(lowest.map_or(mark, |l| l.min(mark)));
                }
            }
        }
        if !holding {
            // Everything idle: nothing to wait for, but no evidence of progress
            // either; the watermark stays where it is.
            return self.current;
        }
        if let Some(mark) = lowest {
            self.current = Some(self.current.map_or(mark, |c| c.max(mark)));
        }
        self.current
    }

    /// The last watermark derived.
    pub fn current(&self) -> Option<i64> {
        self.current
    }

    /// The partitions to hold back (not take in) at processing time `now` and wall
    /// clock `wall_ms`: those whose latest event time is more than `drift_ms`
    /// ahead of the slowest active partition's, more than `drift_ms / 2` for
    /// those in `held` (held until the slowest is within half the drift, so
    /// that a partition is not paused and resumed at every step). The slowest
    /// is taken over the active partitions with data that are not held: an
    /// idle or finished partition holds nothing back, so when the slowest
    /// runs out of data the others go on after the idle timeout. A partition
    /// whose latest event time is within `drift_ms` of the wall clock is live:
    /// holding it would only delay its outputs, so it never is.
    pub fn ahead(&self, drift_ms: i64, now: i64, wall_ms: i64, held: &[u32]) -> Vec<u32> {
        let slowest = self
            .partitions
            .iter()
            .filter(|(n, p)| {
                !p.finished
                    && now.saturating_sub(p.last_active) < self.idle_timeout_ms
                    && !held.contains(n)
            })
            .filter_map(|(_, p)| p.max_event_time)
            .min();
        let Some(slowest) = slowest else {
            return Vec::new();
        };
        let live_from = wall_ms.saturating_sub(drift_ms);
        self.partitions
            .iter()
            .filter(|(_, p)| !p.finished)
            .filter_map(|(&n, p)| {
                let t = p.max_event_time?;
                let allowed = if held.contains(&n) {
                    drift_ms / 2
                } else {
                    drift_ms
                };
                (t < live_from && t.saturating_sub(slowest) > allowed).then_some(n)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_active_partitions_minus_the_delay() {
        let mut w = Watermarks::new(10, 1_000);
        w.assign(0, 0);
        w.assign(1, 0);
        w.observe(0, Some(100), 0);
        assert_eq!(w.watermark(0), None, "partition 1 has not delivered yet");
        w.observe(1, Some(50), 1);
        assert_eq!(w.watermark(1), Some(40));
        w.observe(1, Some(200), 2);
        assert_eq!(w.watermark(2), Some(90));
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back_until_it_returns() {
        let mut w = Watermarks::new(0, 1_000);
        w.observe(0, Some(100), 0);
        w.observe(1, Some(10), 0);
        assert_eq!(w.watermark(0), Some(10));
        w.observe(0, Some(500), 999);
        assert_eq!(w.watermark(999), Some(10), "not idle yet");
        w.observe(0, Some(600), 1_000);
        assert_eq!(w.watermark(1_000), Some(600), "partition 1 idle");
        w.observe(1, Some(20), 1_001);
        assert_eq!(w.watermark(1_001), Some(600), "never goes back");
        w.observe(1, Some(700), 1_002);
        w.observe(0, Some(900), 1_002);
        assert_eq!(w.watermark(1_002), Some(700));
    }

    /// Wall clock far past every event time below: the partitions replay.
    const REPLAY: i64 = 1_000_000_000;

    #[test]
    fn a_partition_more_than_the_drift_ahead_of_the_slowest_is_held() {
        let mut w = Watermarks::new(0, 1_000);
        w.observe(0, Some(10_000), 0);
        w.observe(1, Some(5_000), 0);
        w.observe(2, Some(6_000), 0);
        assert_eq!(
            w.ahead(5_000, 0, REPLAY, &[]),
            Vec::<u32>::new(),
            "exactly the drift"
        );
        assert_eq!(w.ahead(4_999, 0, REPLAY, &[]), vec![0]);
        assert_eq!(w.ahead(999, 0, REPLAY, &[]), vec![0, 2]);
    }

    #[test]
    fn a_held_partition_goes_on_once_within_half_the_drift() {
        let mut w = Watermarks::new(0, 1_000);
        w.observe(0, Some(10_000), 0);
        w.observe(1, Some(1_000), 0);
        assert_eq!(w.ahead(4_000, 0, REPLAY, &[]), vec![0]);
        w.observe(1, Some(7_000), 10);
        assert_eq!(
            w.ahead(4_000, 10, REPLAY, &[]),
            Vec::<u32>::new(),
            "not held: within the drift"
        );
        assert_eq!(
            w.ahead(4_000, 10, REPLAY, &[0]),
            vec![0],
            "held: not yet within half"
        );
        w.observe(1, Some(8_000), 20);
        assert_eq!(
            w.ahead(4_000, 20, REPLAY, &[0]),
            Vec::<u32>::new(),
            "exactly half"
        );
    }

    #[test]
    fn idle_finished_and_dataless_partitions_hold_nothing_back() {
        let mut w = Watermarks::new(0, 1_000);
        w.assign(3, 0);
        w.observe(0, Some(100_000), 0);
        w.observe(1, Some(1_000), 0);
        assert_eq!(
            w.ahead(10_000, 0, REPLAY, &[]),
            vec![0],
            "3 has no data: not the slowest"
        );
        w.observe(0, Some(100_000), 1_000);
        assert_eq!(
            w.ahead(10_000, 1_000, REPLAY, &[]),
            Vec::<u32>::new(),
            "1 idle: 0 is the slowest active"
        );
        w.observe(1, Some(2_000), 1_500);
        w.finish(1);
        assert_eq!(
            w.ahead(10_000, 1_500, REPLAY, &[]),
            Vec::<u32>::new(),
            "1 finished"
        );
    }

    #[test]
    fn a_held_partition_going_idle_is_still_held_while_the_slowest_catches_up() {
        let mut w = Watermarks::new(0, 1_000);
        w.observe(0, Some(100_000), 0);
        w.observe(1, Some(1_000), 0);
        w.observe(1, Some(2_000), 5_000);
        assert_eq!(w.ahead(10_000, 5_000, REPLAY, &[0]), vec![0]);
        assert_eq!(
            w.ahead(10_000, 7_000, REPLAY, &[0]),
            Vec::<u32>::new(),
            "the slowest idle too: nothing to wait for"
        );
    }

    #[test]
    fn a_live_partition_is_never_held() {
        let mut w = Watermarks::new(0, 1_000);
        let wall = 50_000_000;
        w.observe(0, Some(wall - 1_000), 0);
        w.observe(1, Some(wall - 3_600_000), 0);
        assert_eq!(
            w.ahead(60_000, 0, wall, &[]),
            Vec::<u32>::new(),
            "0 is live"
        );
        assert_eq!(
            w.ahead(60_000, 0, wall + 60_000, &[]),
            vec![0],
            "0 a drift behind the clock"
        );
    }

    #[test]
    fn a_partition_assigned_without_data_holds_until_idle() {
        let mut w = Watermarks::new(0, 100);
        w.assign(3, 0);
        w.observe(0, Some(50), 0);
        assert_eq!(w.watermark(50), None);
        w.observe(0, Some(60), 90);
        assert_eq!(w.watermark(100), Some(60), "partition 3 idle, 0 active");
    }

    #[test]
    fn all_idle_keeps_the_watermark_and_all_finished_ends_time() {
        let mut w = Watermarks::new(5, 100);
        w.observe(0, Some(50), 0);
        assert_eq!(w.watermark(0), Some(45));
        assert_eq!(w.watermark(1_000), Some(45));
        w.finish(0);
        assert_eq!(w.watermark(1_000), Some(END_OF_TIME));
    }

    #[test]
    fn revoked_partitions_no_longer_count() {
        let mut w = Watermarks::new(0, 1_000);
        w.observe(0, Some(100), 0);
        w.observe(1, Some(10), 0);
        assert_eq!(w.watermark(0), Some(10));
        w.revoke(1);
        assert_eq!(w.watermark(0), Some(100));
    }
}
