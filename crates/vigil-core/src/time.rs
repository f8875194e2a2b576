//! Event time: how `observed_at` is read and which instants are believable.
//!
//! vigil works in event time (when the vitals were observed), stored as UTC
//! milliseconds since the Unix epoch. Devices send it as an RFC 3339 string
//! (`2026-11-24T08:15:00Z`, any offset) or as epoch milliseconds.

use chrono::DateTime;

use crate::error::{Error, Result};

/// UTC milliseconds since the Unix epoch.
pub type EpochMillis = i64;

/// Milliseconds in one day.
pub const DAY_MS: EpochMillis = 86_400_000;

/// Parses an RFC 3339 timestamp (any offset) into UTC epoch milliseconds.
/// Sub-millisecond digits are truncated toward the past.
pub fn parse_rfc3339_millis(text: &str) -> Result<EpochMillis> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| Error::TimestampSyntax {
            value: text.chars().take(64).collect(),
            reason: e.to_string(),
        })
}

/// The window of event times vigil believes: readings outside it are absurd (a device
/// clock reset to 1970 or set years ahead) and are rejected rather than scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    /// Earliest accepted instant (inclusive).
    pub min: EpochMillis,
    /// Latest accepted instant (inclusive).
    pub max: EpochMillis,
}

impl TimeBounds {
    /// Accepts anything from the Unix epoch up to (not including) the year 2200; for
    /// replays of historical exports where "now" means nothing.
    pub const HISTORICAL: TimeBounds = TimeBounds {
        min: 0,
        max: 7_258_118_399_999,
    };

    /// Accepts from the Unix epoch up to `max_future` after `now`: a live feed cannot
    /// carry readings from the future beyond device clock skew.
    pub fn until(now: EpochMillis, max_future: EpochMillis) -> TimeBounds {
        TimeBounds {
            min: 0,
            max: now.saturating_add(max_future),
        }
    }

    /// Returns `millis` if it lies within the bounds, else the reason it does not.
    pub fn check(&self, millis: EpochMillis) -> Result<EpochMillis> {
        if millis < self.min || millis > self.max {
            return Err(Error::TimestampOutOfRange {
                millis,
                min: self.min,
                max: self.max,
            });
        }
        Ok(millis)
    }
}

impl Default for TimeBounds {
    fn default() -> Self {
        TimeBounds::HISTORICAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339_millis("2026-11-24T08:15:00.250Z"),
            Ok(1_795_508_100_250)
        );
        assert_eq!(
            parse_rfc3339_millis("2026-11-24T09:15:00.250+01:00"),
            Ok(1_795_508_100_250)
        );
        assert_eq!(
            parse_rfc3339_millis("2026-11-24T08:15:00.2509Z"),
            Ok(1_795_508_100_250)
        );
    }

    #[test]
    fn non_rfc3339_is_an_error_that_says_why() {
        for bad in [
            "",
            "yesterday",
            "2026-11-24",
            "2026-11-24 08:15",
            "1795508100250",
        ] {
            let err = parse_rfc3339_millis(bad).expect_err(bad);
            assert!(err.to_string().contains("RFC 3339"), "{err}");
        }
    }

    #[test]
    fn bounds_reject_before_epoch_and_far_future() {
        let b = TimeBounds::until(1_000 * DAY_MS, DAY_MS);
        assert!(b.check(-1).is_err());
        assert_eq!(b.check(0), Ok(0));
        assert_eq!(b.check(1_001 * DAY_MS), Ok(1_001 * DAY_MS));
        assert!(b.check(1_001 * DAY_MS + 1).is_err());
        assert!(TimeBounds::HISTORICAL.check(i64::MAX).is_err());
    }
}
