//! Event-time watermarks across source partitions.
//!
//! Each partition's watermark is the largest event time it has delivered minus the
//! source's declared delay. The source's watermark is the minimum over its *active*
//! partitions: a partition that has delivered nothing for the idle timeout (in
//! processing time) stops holding the others back, and holds them again when it
//! delivers. A finished partition (end of a file) no longer counts; when every
//! partition has finished the watermark is the end of time, which closes every
//! window. The watermark never goes back.

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
