//! Which source offsets can be committed, and what a commit tells the next owner.
//!
//! At-least-once without loss: an offset is committed only when every message
//! before it is done, meaning its outputs (and dead letters) are acknowledged by
//! the broker and its rows are older than the job's horizon (no open window,
//! session or group still holds them; see [`Progress`]). The [`Progress`] of each
//! job rides in the commit's metadata, so the instance that takes the partition
//! over next replays from the commit knowing which replayed rows to skip and which
//! windows were already emitted.

use std::collections::VecDeque;

use vigil_engine::runtime::Progress;

/// One source partition's processed input, not yet committed.
#[derive(Debug, Default, Clone)]
pub struct OffsetTracker {
    /// Processed spans in offset order: the offset after the span's last message,
    /// and the latest event time among its rows (`None` if no row of it reached a
    /// job: every message dead-lettered).
    spans: VecDeque<(i64, Option<i64>)>,
    /// The last offset committed (or found committed at assignment).
    committed: Option<i64>,
    /// The offset after the last message processed.
    end: Option<i64>,
}

impl OffsetTracker {
    /// A tracker for a partition whose committed offset is `committed`.
    pub fn new(committed: Option<i64>) -> OffsetTracker {
        OffsetTracker {
            spans: VecDeque::new(),
            committed,
            end: committed,
        }
    }

    /// Records that messages up to `end` (exclusive) were taken in, the latest
    /// event time among their rows being `latest`, and their outputs are
    /// acknowledged.
    pub fn processed(&mut self, end: i64, latest: Option<i64>) {
        self.end = Some(self.end.map_or(end, |e| e.max(end)));
        match self.spans.back_mut() {
            // Merge spans that would leave together anyway: one entry per batch of
            // a quiet partition instead of a growing queue.
            Some((last_end, last_latest)) if *last_latest == latest => *last_end = end,
            _ => self.spans.push_back((end, latest)),
        }
    }

    /// The offset that can be committed now that rows older than `horizon` no
    /// longer matter (`None`: no row matters), if it is past the last commit.
    /// Spans it covers are forgotten.
    pub fn committable(&mut self, horizon: Option<i64>) -> Option<i64> {
        let mut to = None;
        while let Some(&(end, latest)) = self.spans.front() {
            let done = match (latest, horizon) {
                (None, _) | (_, None) => true,
                (Some(latest), Some(horizon)) => latest < horizon,
            };
            if !done {
                break;
            }
            to = Some(end);
            self.spans.pop_front();
        }
        to.filter(|&to| self.committed.is_none_or(|c| to > c))
    }

    /// Records a successful commit of `offset`.
    pub fn committed(&mut self, offset: i64) {
        self.committed = Some(self.committed.map_or(offset, |c| c.max(offset)));
    }

    /// The offset after everything processed (or the commit found at
    /// assignment, if nothing was): where a checkpoint of the state stands.
    /// Spans up to it are forgotten (the state holds what they need).
    pub fn checkpointable(&mut self) -> Option<i64> {
        self.spans.clear();
        self.end
    }

    /// The last offset committed.
    pub fn last_commit(&self) -> Option<i64> {
        self.committed
    }

    /// Spans waiting for the horizon.
    pub fn pending(&self) -> usize {
        self.spans.len()
    }
}

/// The horizon of several jobs reading one partition: the earliest.
pub fn earliest_horizon(progress: impl IntoIterator<Item = Progress>) -> Option<i64> {
    progress.into_iter().filter_map(|p| p.horizon).min()
}

const METADATA_VERSION: &str = "vigil1";

/// Commit metadata: each job's progress, by job fingerprint.
pub fn encode_metadata(jobs: &[(u64, Progress)]) -> String {
    let field = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut out = METADATA_VERSION.to_owned();
    for (fingerprint, progress) in jobs {
        out.push_str(&format!(
            ";{fingerprint:016x}={},{}",
            field(progress.horizon),
            field(progress.emitted_through)
        ));
    }
    out
}

/// The progress of job `fingerprint` in commit metadata written by
/// [`encode_metadata`]; `None` if the metadata is not vigil's or does not name the
/// job (committed by another tool, or by an edited pipeline).
pub fn decode_metadata(metadata: &str, fingerprint: u64) -> Option<Progress> {
    let mut parts = metadata.split(';');
    if parts.next() != Some(METADATA_VERSION) {
        return None;
    }
    let wanted = format!("{fingerprint:016x}");
    let field = |v: &str| -> Option<Option<i64>> {
        if v == "-" {
            Some(None)
        } else {
            v.parse().ok().map(Some)
        }
    };
    for part in parts {
        let (job, values) = part.split_once('=')?;
        if job != wanted {
            continue;
        }
        let (horizon, emitted) = values.split_once(',')?;
        return Some(Progress {
            horizon: field(horizon)?,
            emitted_through: field(emitted)?,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stop_at_the_first_span_still_in_state() {
        let mut t = OffsetTracker::new(None);
        t.processed(10, Some(100));
        t.processed(20, Some(300));
        t.processed(30, Some(150));
        t.processed(35, None);
        // Rows before 200 no longer matter: the first span goes, the second holds.
        assert_eq!(t.committable(Some(200)), Some(10));
        assert_eq!(t.committable(Some(200)), None, "nothing new");
        assert_eq!(t.pending(), 3);
        // Everything older than 301 is done, and the dead-lettered tail with it.
        assert_eq!(t.committable(Some(301)), Some(35));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn nothing_held_commits_everything_processed_but_never_backwards() {
        let mut t = OffsetTracker::new(Some(50));
        t.processed(40, Some(1));
        assert_eq!(t.committable(None), None, "behind the existing commit");
        t.processed(60, Some(1_000));
        assert_eq!(t.committable(Some(10)), None, "held by the state");
        assert_eq!(t.committable(None), Some(60));
        t.committed(60);
        assert_eq!(t.last_commit(), Some(60));
    }

    #[test]
    fn equal_spans_merge() {
        let mut t = OffsetTracker::new(None);
        for end in 1..=1000 {
            t.processed(end, None);
        }
        assert_eq!(t.pending(), 1);
        assert_eq!(t.committable(Some(0)), Some(1000));
    }

    #[test]
    fn metadata_round_trips_per_job() {
        let a = Progress {
            horizon: Some(-5),
            emitted_through: Some(1_795_507_200_000),
        };
        let b = Progress {
            horizon: None,
            emitted_through: None,
        };
        let text = encode_metadata(&[(1, a), (0xfeed, b)]);
        assert_eq!(decode_metadata(&text, 1), Some(a));
        assert_eq!(decode_metadata(&text, 0xfeed), Some(b));
        assert_eq!(decode_metadata(&text, 2), None);
        assert_eq!(decode_metadata("", 1), None);
        assert_eq!(decode_metadata("other tool", 1), None);
        assert_eq!(decode_metadata("vigil1;0000000000000001=x,1", 1), None);
    }

    #[test]
    fn a_checkpoint_stands_after_everything_processed_even_when_a_commit_was_lost() {
        let mut t = OffsetTracker::new(Some(10));
        assert_eq!(
            t.checkpointable(),
            Some(10),
            "nothing processed: the commit"
        );
        t.processed(20, Some(5));
        assert_eq!(t.checkpointable(), Some(20));
        // The commit of 20 never happened (the partition was revoked first): the
        // next checkpoint is still after everything processed, never the old
        // commit with newer state.
        t.processed(25, Some(6));
        assert_eq!(t.checkpointable(), Some(25));
        assert_eq!(t.checkpointable(), Some(25));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn the_earliest_horizon_of_several_jobs() {
        let p = |h| Progress {
            horizon: h,
            emitted_through: None,
        };
        assert_eq!(earliest_horizon([p(Some(5)), p(None), p(Some(3))]), Some(3));
        assert_eq!(earliest_horizon([p(None)]), None);
    }
}
