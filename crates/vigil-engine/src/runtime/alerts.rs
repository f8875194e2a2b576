//! The alert policy: from a stream of graded rows (a score and its band, per
//! patient and minute) to the alerts a ward team acts on.
//!
//! A sink turns it on with `alert_key` (the column naming whom a row is about),
//! `alert_severity` (a text column: the row's grade) and `alert_time` (the row's
//! event time). `alert_levels` lists the grades that alert, lowest first
//! (default `'low-medium,medium,high'`, the NEWS2 clinical-response bands); any
//! other grade is "no concern", and a NULL grade (something could not be
//! scored) is no evidence either way: it neither raises nor resolves anything.
//!
//! Per key, rows in event-time order:
//!
//! - **raised**: a level alerts once the key's rows have stayed at or above it
//!   for `persistence` of event time (default 0), or sooner if the level is
//!   `immediate` (default: the highest level): after `confirm` (default 0, the
//!   first row), so one artefactual reading does not page anyone while a high
//!   band does. With one score row a minute, `confirm = '1 minute'` asks for a
//!   second row at that level: a motion artefact rarely lasts into the next
//!   minute's reading; a deteriorating patient does.
//! - **escalated**: while raised, a sustained level above the one last alerted
//!   alerts at once (under the same persistence rule).
//! - **repeated**: while raised, a level still sustained `cooldown` (default
//!   30 minutes) after the last alert alerts again, at the level it is now.
//! - **resolved**: once the rows have stayed below every level for
//!   `resolve_after` (default: the persistence).
//!
//! Each event is one output row: `alert_id` (deterministic: a hash of the
//! pipeline, rule, key, event, level and times, so that a consumer drops the
//! duplicates a failover replays), `event`, `pipeline` (the name the pipeline
//! was planned under: `vigil run` uses the file's stem), `rule` (option
//! `alert_rule`, default the sink's name), `severity` (the level alerted; for `resolved`, the last one), the
//! episode's `first_seen` (its first row at an alerting level) and the row's time
//! as `last_seen`, then every column of the row that caused it (score,
//! sub-scores, readings). Nothing here is specific to NEWS2.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimestampMillisecondType};

use super::checkpoint;
use crate::error::{EngineError, Result};
use crate::sql::ddl::{TableDecl, event_time_type};

/// Sink option naming the key column; its presence turns the policy on.
pub const ALERT_KEY: &str = "alert_key";

/// The policy's settings, from a sink's options, checked against its query.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Column of the query naming whom a row is about.
    pub key: usize,
    /// Column of the query with the row's grade (text).
    pub severity: usize,
    /// Column of the query with the row's event time.
    pub time: usize,
    /// Grades that alert, lowest first.
    pub levels: Vec<String>,
    /// Levels at or above this alert without waiting for persistence.
    pub immediate_from: usize,
    /// How long a level must be sustained before it alerts (ms of event time).
    pub persistence_ms: i64,
    /// How long an immediate level must be sustained before it alerts (ms; at
    /// most the persistence).
    pub confirm_ms: i64,
    /// How long after an alert a sustained level alerts again (ms).
    pub cooldown_ms: i64,
    /// How long the rows must stay below every level to resolve (ms).
    pub resolve_after_ms: i64,
    /// The rule's name, in every alert.
    pub rule: String,
    /// The pipeline's name, in every alert: which of a hospital's pipelines
    /// raised it.
    pub pipeline: String,
}

/// Columns the policy puts before the query's in every alert event.
pub const PREFIX: [&str; 7] = [
    "alert_id",
    "event",
    "pipeline",
    "rule",
    "severity",
    "first_seen",
    "last_seen",
];

impl AlertSettings {
    /// The settings of `sink` over rows of `query` in the pipeline named
    /// `pipeline` (None when the sink has no `alert_key`); an error names what is
    /// wrong.
    pub fn of(
        sink: &TableDecl,
        query: &Schema,
        pipeline: &str,
        line: u64,
    ) -> Result<Option<AlertSettings>> {
        if sink.option(ALERT_KEY).is_none() {
            for option in sink.options.keys() {
                if option.starts_with("alert_") {
                    return Err(EngineError::sql(
                        line,
                        format!("sink {}: {option} needs alert_key", sink.name),
                    ));
                }
            }
            return Ok(None);
        }
        let column = |option: &str, want: &dyn Fn(&DataType) -> bool, what: &str| {
            let name = sink.required(option)?;
            let index = query.index_of(name).map_err(|_| {
                EngineError::sql(
                    line,
                    format!(
                        "sink {}: {option} {name} is not a column of the query",
                        sink.name
                    ),
                )
            })?;
            if !want(query.field(index).data_type()) {
                return Err(EngineError::sql(
                    line,
                    format!("sink {}: {option} {name} must be {what}", sink.name),
                ));
            }
            Ok(index)
        };
        let text =
            |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let key = column(ALERT_KEY, &text, "TEXT")?;
        let severity = column("alert_severity", &text, "TEXT")?;
        let time = column(
            "alert_time",
            &|t| matches!(t, DataType::Timestamp(_, _)),
            "a TIMESTAMP",
        )?;
        let levels: Vec<String> = sink
            .option("alert_levels")
            .unwrap_or("low-medium,medium,high")
            .split(',')
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        if levels.is_empty() {
            return Err(EngineError::sql(
                line,
                format!("sink {}: alert_levels names no level", sink.name),
            ));
        }
        let immediate_from = match sink.option("alert_immediate") {
            None => levels.len() - 1,
            Some("none") => levels.len(),
            Some(level) => levels.iter().position(|l| l == level).ok_or_else(|| {
                EngineError::sql(
                    line,
                    format!(
                        "sink {}: alert_immediate {level} is not one of alert_levels ({})",
                        sink.name,
                        levels.join(", ")
                    ),
                )
            })?,
        };
        let persistence_ms = sink.duration_option("alert_persistence")?.unwrap_or(0);
        let confirm_ms = sink.duration_option("alert_confirm")?.unwrap_or(0);
        if confirm_ms > persistence_ms {
            return Err(EngineError::sql(
                line,
                format!(
                    "sink {}: alert_confirm ({} s) is longer than alert_persistence ({} s); immediate levels would alert later than the others",
                    sink.name,
                    confirm_ms / 1000,
                    persistence_ms / 1000
                ),
            ));
        }
        Ok(Some(AlertSettings {
            key,
            severity,
            time,
            levels,
            immediate_from,
            persistence_ms,
            confirm_ms,
            cooldown_ms: sink
                .duration_option("alert_cooldown")?
                .unwrap_or(30 * 60_000),
            resolve_after_ms: sink
                .duration_option("alert_resolve_after")?
                .unwrap_or(persistence_ms),
            rule: sink
                .option("alert_rule")
                .unwrap_or(sink.name.as_str())
                .to_owned(),
            pipeline: pipeline.to_owned(),
        }))
    }

    /// The schema of the alerts: the policy's columns, then the query's.
    pub fn output_schema(query: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = PREFIX[..5]
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, false))
            .collect();
        fields.push(Field::new("first_seen", event_time_type(), false));
        fields.push(Field::new("last_seen", event_time_type(), false));
        fields.extend(
            query
                .fields()
                .iter()
                .filter(|f| !PREFIX.contains(&f.name().as_str()))
                .map(|f| f.as_ref().clone()),
        );
        Arc::new(Schema::new(fields))
    }
}

/// An alert in force for a key.
#[derive(Debug, Clone, Copy)]
struct Active {
    level: usize,
    first_seen: i64,
    last_alert: i64,
}

/// What the policy remembers of a key.
#[derive(Debug, Clone, Default)]
struct KeyState {
    active: Option<Active>,
    /// Per level: since when every row has been at or above it.
    since: Vec<Option<i64>>,
    /// Since when every row has been below every level.
    below_since: Option<i64>,
}

/// One event to emit: the row that caused it and what it is.
struct Event {
    row: u32,
    kind: &'static str,
    level: usize,
    first_seen: i64,
    at: i64,
}

/// The policy's state for the keys of one source partition.
#[derive(Debug)]
pub struct AlertPolicy {
    settings: Arc<AlertSettings>,
    schema: SchemaRef,
    keys: HashMap<String, KeyState>,
}

impl AlertPolicy {
    /// A policy with no history, emitting rows of `schema` (from
    /// [`AlertSettings::output_schema`]).
    pub fn new(settings: Arc<AlertSettings>, schema: SchemaRef) -> AlertPolicy {
        AlertPolicy {
            settings,
            schema,
            keys: HashMap::new(),
        }
    }

    /// Keys with an alert in force or a level building up.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Takes rows of the query (each key's rows in event-time order) and returns
    /// the alert events they cause, if any.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let s = Arc::clone(&self.settings);
        let keys = batch
            .column(s.key)
            .as_string_opt::<i32>()
            .ok_or_else(|| EngineError::Internal("alert_key is not a UTF-8 column".to_owned()))?;
        let grades = batch
            .column(s.severity)
            .as_string_opt::<i32>()
            .ok_or_else(|| {
                EngineError::Internal("alert_severity is not a UTF-8 column".to_owned())
            })?;
        let times = arrow::compute::cast(batch.column(s.time), &event_time_type())?;
        let times = times.as_primitive::<TimestampMillisecondType>();
        let mut events = Vec::new();
        for row in 0..batch.num_rows() {
            if keys.is_null(row) || grades.is_null(row) || times.is_null(row) {
                continue; // nobody, or no evidence either way
            }
            let grade = grades.value(row);
            let level = s.levels.iter().position(|l| l == grade);
            let key = keys.value(row);
            let state = match self.keys.get_mut(key) {
                Some(state) => state,
                None if level.is_none() => continue, // nothing to remember
                None => self.keys.entry(key.to_owned()).or_insert_with(|| KeyState {
                    since: vec![None; s.levels.len()],
                    ..KeyState::default()
                }),
            };
            if let Some(event) = step(&s, state, level, times.value(row)) {
                events.push(Event {
                    row: row as u32,
                    ..event
                });
            }
            if state.active.is_none() && level.is_none() {
                self.keys.remove(key);
            }
        }
        if events.is_empty() {
            return Ok(None);
        }
        let rows = UInt32Array::from_iter_values(events.iter().map(|e| e.row));
        let ids: StringArray = events
            .iter()
            .map(|e| {
                let key = keys.value(e.row as usize);
                Some(alert_id(
                    [&s.pipeline, &s.rule, key],
                    e.kind,
                    &s.levels[e.level],
                    e.first_seen,
                    e.at,
                ))
            })
            .collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(ids),
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| e.kind))),
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|_| s.pipeline.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|_| s.rule.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| s.levels[e.level].as_str()),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(events.iter().map(|e| e.first_seen))
                    .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(events.iter().map(|e| e.at))
                    .with_timezone("UTC"),
            ),
        ];
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            if !PREFIX.contains(&field.name().as_str()) {
                columns.push(take(column.as_ref(), &rows, None)?);
            }
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?))
    }
}

/// Role of the policy's part in a checkpoint (see [`crate::runtime::checkpoint`]).
pub(crate) const CHECKPOINT_ROLE: &str = "alert_policy";

impl AlertPolicy {
    /// The policy's state as one checkpoint part: per key, the alert in force
    /// (level, first seen, last alert), since when each level has held and since
    /// when every row has been below them. A failover that restores it neither
    /// raises again an alert in force nor forgets a level building up.
    pub fn export(&self) -> Result<RecordBatch> {
        let levels = self.settings.levels.len();
        let mut keys: Vec<(&String, &KeyState)> = self.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0)); // the same state, the same bytes
        let active = |f: fn(&Active) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter(
                keys.iter().map(|(_, k)| k.active.as_ref().map(f)),
            ))
        };
        let mut fields = vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("level", DataType::Int64, true),
            Field::new("first_seen", DataType::Int64, true),
            Field::new("last_alert", DataType::Int64, true),
            Field::new("below_since", DataType::Int64, true),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|(k, _)| k.as_str()),
            )),
            active(|a| a.level as i64),
            active(|a| a.first_seen),
            active(|a| a.last_alert),
            Arc::new(Int64Array::from_iter(
                keys.iter().map(|(_, k)| k.below_since),
            )),
        ];
        for l in 0..levels {
            fields.push(Field::new(format!("since_{l}"), DataType::Int64, true));
            columns.push(Arc::new(Int64Array::from_iter(
                keys.iter().map(|(_, k)| k.since.get(l).copied().flatten()),
            )));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        checkpoint::tagged(batch, CHECKPOINT_ROLE, 0)
    }

    /// Takes the state of a part written by [`export`](Self::export) by a
    /// policy with the same levels.
    pub fn restore(&mut self, part: &RecordBatch) -> Result<()> {
        let levels = self.settings.levels.len();
        let bad = |what: &str| EngineError::Checkpoint(format!("alert policy state: {what}"));
        if part.num_columns() != 5 + levels {
            return Err(bad("another number of levels"));
        }
        let keys = part
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("keys"))?;
        let times: Vec<&Int64Array> = part.columns()[1..]
            .iter()
            .map(|c| {
                c.as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| bad("times"))
            })
            .collect::<Result<_>>()?;
        let get = |c: usize, row: usize| (!times[c].is_null(row)).then(|| times[c].value(row));
        for row in 0..part.num_rows() {
            let active = match (get(0, row), get(1, row), get(2, row)) {
                (Some(level), Some(first_seen), Some(last_alert)) => Some(Active {
                    level: usize::try_from(level)
                        .ok()
                        .filter(|&l| l < levels)
                        .ok_or_else(|| bad("a level out of range"))?,
                    first_seen,
                    last_alert,
                }),
                (None, None, None) => None,
                _ => return Err(bad("a partial alert")),
            };
            let state = KeyState {
                active,
                since: (0..levels).map(|l| get(4 + l, row)).collect(),
                below_since: get(3, row),
            };
            self.keys.insert(keys.value(row).to_owned(), state);
        }
        Ok(())
    }
}

/// One row of a key: its level (None: below every level) at time `t`.
fn step(s: &AlertSettings, state: &mut KeyState, level: Option<usize>, t: i64) -> Option<Event> {
    for (l, since) in state.since.iter_mut().enumerate() {
        if level.is_some_and(|level| l <= level) {
            since.get_or_insert(t);
        } else {
            *since = None;
        }
    }
    if level.is_some() {
        state.below_since = None;
    } else {
        state.below_since.get_or_insert(t);
    }
    // The highest level sustained long enough (or alerting at once).
    let sustained = (0..s.levels.len()).rev().find(|&l| {
        state.since[l].is_some_and(|since| {
            let needed = if l >= s.immediate_from {
                s.confirm_ms
            } else {
                s.persistence_ms
            };
            t - since >= needed
        })
    });
    let event = |kind, level, first_seen| {
        Some(Event {
            row: 0,
            kind,
            level,
            first_seen,
            at: t,
        })
    };
    match (&mut state.active, sustained) {
        (None, Some(l)) => {
            let first_seen = state.since[0].unwrap_or(t);
            state.active = Some(Active {
                level: l,
                first_seen,
                last_alert: t,
            });
            event("raised", l, first_seen)
        }
        (Some(active), Some(l)) if l > active.level => {
            active.level = l;
            active.last_alert = t;
            event("escalated", l, active.first_seen)
        }
        (Some(active), Some(l)) if t - active.last_alert >= s.cooldown_ms => {
            active.level = l;
            active.last_alert = t;
            event("repeated", l, active.first_seen)
        }
        (Some(active), None)
            if state
                .below_since
                .is_some_and(|since| t - since >= s.resolve_after_ms) =>
        {
            let (level, first_seen) = (active.level, active.first_seen);
            state.active = None;
            event("resolved", level, first_seen)
        }
        _ => None,
    }
}

/// A stable 64-bit FNV-1a hash of the event's identity, as 16 hex digits: the
/// same input gives the same id on every instance and every run.
/// `who` is the pipeline, the rule and the key.
fn alert_id(who: [&str; 3], kind: &str, level: &str, first_seen: i64, at: i64) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let [pipeline, rule, key] = who;
    let parts: [&[u8]; 7] = [
        pipeline.as_bytes(),
        rule.as_bytes(),
        key.as_bytes(),
        kind.as_bytes(),
        level.as_bytes(),
        &first_seen.to_le_bytes(),
        &at.to_le_bytes(),
    ];
    for part in parts {
        for &byte in part.iter().chain([0xff_u8].iter()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn settings(persistence_min: i64, cooldown_min: i64) -> AlertSettings {
        AlertSettings {
            key: 0,
            severity: 1,
            time: 2,
            levels: vec!["low-medium".into(), "medium".into(), "high".into()],
            immediate_from: 2,
            persistence_ms: persistence_min * MIN,
            confirm_ms: 0,
            cooldown_ms: cooldown_min * MIN,
            resolve_after_ms: persistence_min * MIN,
            rule: "news2".into(),
            pipeline: "news2_alerts".into(),
        }
    }

    /// Runs rows (minute, band) of one key through the policy; returns
    /// (minute, event, severity, first_seen minute) per event.
    /// Score rows (patient, minute, band) as the policy's input, and the alert
    /// schema it emits.
    fn scores(rows: &[(&str, i64, Option<&str>)]) -> (RecordBatch, SchemaRef) {
        let query = Schema::new(vec![
            Field::new("patient_id", DataType::Utf8, false),
            Field::new("news2_band", DataType::Utf8, true),
            Field::new("scored_at", event_time_type(), false),
        ]);
        let schema = AlertSettings::output_schema(&query);
        let batch = RecordBatch::try_new(
            Arc::new(query),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1 * MIN))
                        .with_timezone("UTC"),
                ),
            ],
        )
        .expect("batch");
        (batch, schema)
    }

    fn run(s: AlertSettings, rows: &[(i64, Option<&str>)]) -> Vec<(i64, String, String, i64)> {
        let rows: Vec<_> = rows.iter().map(|&(m, band)| ("p1", m, band)).collect();
        let (batch, schema) = scores(&rows);
        let mut policy = AlertPolicy::new(Arc::new(s), schema);
        let Some(out) = policy.apply(&batch).expect("apply") else {
            return Vec::new();
        };
        let column = |name: &str| out.column_by_name(name).expect("alert column");
        let text = |c: &str, r: usize| column(c).as_string::<i32>().value(r).to_owned();
        let time = |c: &str, r: usize| {
            column(c)
                .as_primitive::<TimestampMillisecondType>()
                .value(r)
                / MIN
        };
        for r in 0..out.num_rows() {
            assert_eq!(text("pipeline", r), "news2_alerts");
            assert_eq!(text("rule", r), "news2");
        }
        (0..out.num_rows())
            .map(|r| {
                let when = (time("last_seen", r), time("first_seen", r));
                (when.0, text("event", r), text("severity", r), when.1)
            })
            .collect()
    }

    fn ev(minute: i64, kind: &str, severity: &str, first: i64) -> (i64, String, String, i64) {
        (minute, kind.to_owned(), severity.to_owned(), first)
    }

    #[test]
    fn one_artefactual_minute_pages_nobody_but_a_sustained_band_does() {
        let rows = [
            (0, Some("low")),
            (1, Some("medium")), // an SpO2 artefact
            (2, Some("low")),
            (3, Some("medium")),
            (4, Some("medium")),
            (5, Some("medium")),
        ];
        assert_eq!(
            run(settings(2, 30), &rows),
            vec![ev(5, "raised", "medium", 3)]
        );
        // Without persistence the artefact alerts (and resolves at once).
        assert_eq!(
            run(settings(0, 30), &rows),
            vec![
                ev(1, "raised", "medium", 1),
                ev(2, "resolved", "medium", 1),
                ev(3, "raised", "medium", 3)
            ]
        );
    }

    #[test]
    fn a_high_band_alerts_at_once_and_escalation_is_not_held_by_cooldown() {
        let rows = [
            (0, Some("low-medium")),
            (1, Some("low-medium")),
            (2, Some("low-medium")), // sustained 2 minutes: raised
            (3, Some("medium")),
            (4, Some("medium")),
            (5, Some("medium")), // escalated after persistence
            (6, Some("high")),   // immediate
        ];
        assert_eq!(
            run(settings(2, 30), &rows),
            vec![
                ev(2, "raised", "low-medium", 0),
                ev(5, "escalated", "medium", 0),
                ev(6, "escalated", "high", 0)
            ]
        );
    }

    #[test]
    fn a_confirmed_high_band_needs_a_second_minute_and_a_single_high_minute_pages_nobody() {
        let s = AlertSettings {
            confirm_ms: MIN,
            ..settings(2, 30)
        };
        let rows = [
            (0, Some("low")),
            (1, Some("high")), // an SpO2 dip with a heart-rate jump
            (2, Some("low")),
            (3, Some("high")),
            (4, Some("high")), // confirmed one minute on
        ];
        assert_eq!(run(s.clone(), &rows), vec![ev(4, "raised", "high", 3)]);
        // Escalation waits for the same confirmation.
        let rows = [
            (0, Some("medium")),
            (2, Some("medium")),
            (3, Some("high")),
            (4, Some("medium")),
            (5, Some("high")),
            (6, Some("high")),
        ];
        assert_eq!(
            run(s, &rows),
            vec![ev(2, "raised", "medium", 0), ev(6, "escalated", "high", 0)]
        );
    }

    #[test]
    fn a_band_that_stays_repeats_only_after_the_cooldown() {
        let rows: Vec<(i64, Option<&str>)> = (0..=70).map(|m| (m, Some("medium"))).collect();
        assert_eq!(
            run(settings(0, 30), &rows),
            vec![
                ev(0, "raised", "medium", 0),
                ev(30, "repeated", "medium", 0),
                ev(60, "repeated", "medium", 0)
            ]
        );
    }

    #[test]
    fn falling_and_rising_within_the_episode_is_not_a_new_alert() {
        let rows = [
            (0, Some("high")),
            (1, Some("medium")),
            (2, Some("high")), // back up: not an escalation past what was alerted
            (3, Some("low")),
            (4, Some("low")), // 1 minute below: not resolved yet
            (5, Some("low")), // 2 minutes below: resolved
            (6, Some("high")),
        ];
        assert_eq!(
            run(settings(2, 30), &rows),
            vec![
                ev(0, "raised", "high", 0),
                ev(5, "resolved", "high", 0),
                ev(6, "raised", "high", 6)
            ]
        );
    }

    #[test]
    fn missing_grades_neither_raise_nor_resolve() {
        let rows = [
            (0, Some("high")),
            (1, None),
            (2, None),
            (3, None),
            (4, Some("low")),
            (5, None),
            (6, Some("low")), // below since 4: resolve_after 2 passed
        ];
        assert_eq!(
            run(settings(2, 30), &rows),
            vec![ev(0, "raised", "high", 0), ev(6, "resolved", "high", 0)]
        );
        // NULL grades alone never raise anything.
        assert!(run(settings(0, 30), &[(0, None), (1, None)]).is_empty());
    }

    #[test]
    fn policy_state_round_trips_and_other_levels_are_refused() {
        let (batch, schema) = scores(&[
            ("p1", 0, Some("medium")),
            ("p1", 1, Some("medium")),
            ("p1", 2, Some("medium")),
            ("p2", 2, Some("low-medium")),
        ]);
        let mut policy = AlertPolicy::new(Arc::new(settings(2, 30)), Arc::clone(&schema));
        assert!(policy.apply(&batch).expect("apply").is_some(), "p1 raised");
        let part = policy.export().expect("export");
        assert_eq!(part.num_rows(), 2, "p1 alerting, p2 building up");
        let mut restored = AlertPolicy::new(Arc::new(settings(2, 30)), Arc::clone(&schema));
        restored.restore(&part).expect("restore");
        assert_eq!(restored.export().expect("export"), part);
        let fewer = AlertSettings {
            levels: vec!["medium".into(), "high".into()],
            ..settings(2, 30)
        };
        let mut other = AlertPolicy::new(Arc::new(fewer), schema);
        assert!(matches!(
            other.restore(&part),
            Err(EngineError::Checkpoint(_))
        ));
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let id =
            |pipeline, rule, key, kind, at| alert_id([pipeline, rule, key], kind, "high", 0, at);
        let a = id("news2_alerts", "news2", "p1", "raised", 60_000);
        assert_eq!(a, id("news2_alerts", "news2", "p1", "raised", 60_000));
        assert_eq!(a.len(), 16);
        assert_ne!(a, id("news2_alerts", "news2", "p2", "raised", 60_000));
        assert_ne!(a, id("news2_alerts", "news2", "p1", "resolved", 60_000));
        assert_ne!(a, id("news2_alerts", "news2", "p1", "raised", 120_000));
        assert_ne!(a, id("news2_alerts", "mews", "p1", "raised", 60_000));
        // The same rule in another pipeline is another alert.
        assert_ne!(a, id("icu_alerts", "news2", "p1", "raised", 60_000));
        // Field boundaries count: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            id("x", "ab", "c", "raised", 0),
            id("x", "a", "bc", "raised", 0)
        );
    }
}
