//! Constant intervals added to or taken from timestamps, as durations.
//!
//! Rules compare times with `window_end - INTERVAL '1' HOUR`. DataFusion plans
//! that as timestamp minus a month-day-nanosecond interval, which arrow computes
//! row by row through chrono and a time zone (calendar arithmetic: a month is
//! not a fixed length); measured, 5 % of the Kafka NEWS2 pipeline's CPU. An
//! interval without months is a fixed length on a timestamp in UTC, at a fixed
//! offset or without a time zone (a day is 86,400 s where there is no daylight
//! saving), so it is the same as a duration, which arrow subtracts as plain
//! integers. vigil's event times are UTC.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};

use crate::error::Result;

/// `expr` with every `timestamp ± constant interval` whose interval has no
/// months, on a timestamp in a zone without daylight saving (see
/// [`fixed_zone`]), written as `timestamp ±
/// duration` in the timestamp's unit (where the interval is a whole number of
/// that unit; otherwise left as it is).
pub(crate) fn intervals_as_durations(expr: &Expr, input: &DFSchema) -> Result<Expr> {
    let rewritten = expr.clone().transform_up(|e| {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
            return Ok(Transformed::no(e));
        };
        if !matches!(op, Operator::Plus | Operator::Minus) {
            return Ok(Transformed::no(e));
        }
        let Expr::Literal(interval, _) = right.as_ref() else {
            return Ok(Transformed::no(e));
        };
        let Some(nanos) = fixed_nanos(interval) else {
            return Ok(Transformed::no(e));
        };
        let Ok(DataType::Timestamp(unit, zone)) = left.get_type(input) else {
            return Ok(Transformed::no(e));
        };
        if !zone.as_deref().is_none_or(fixed_zone) {
            return Ok(Transformed::no(e));
        }
        let Some(duration) = duration_in(unit, nanos) else {
            return Ok(Transformed::no(e));
        };
        Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
            left.clone(),
            *op,
            Box::new(Expr::Literal(duration, None)),
        ))))
    })?;
    Ok(rewritten.data)
}

/// Whether time zone `zone` (as arrow names it) has no daylight saving: UTC or
/// a fixed offset such as `+01:00`. Named zones other than UTC are assumed to
/// have it.
fn fixed_zone(zone: &str) -> bool {
    matches!(zone, "UTC" | "Z" | "Etc/UTC" | "GMT" | "Etc/GMT")
        || (zone.starts_with(['+', '-'])
            && zone.len() > 1
            && zone[1..].bytes().all(|b| b.is_ascii_digit() || b == b':'))
}

/// The length of a constant interval without months, in nanoseconds.
fn fixed_nanos(interval: &ScalarValue) -> Option<i128> {
    const DAY_NANOS: i128 = 86_400 * 1_000_000_000;
    match interval {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(i128::from(v.days) * DAY_NANOS + i128::from(v.nanoseconds))
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i128::from(v.days) * DAY_NANOS + i128::from(v.milliseconds) * 1_000_000)
        }
        _ => None,
    }
}

/// `nanos` as a duration scalar in `unit`, if it is a whole number of them.
fn duration_in(unit: TimeUnit, nanos: i128) -> Option<ScalarValue> {
    let per_unit: i128 = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    if nanos % per_unit != 0 {
        return None;
    }
    let n = i64::try_from(nanos / per_unit).ok()?;
    Some(match unit {
        TimeUnit::Second => ScalarValue::DurationSecond(Some(n)),
        TimeUnit::Millisecond => ScalarValue::DurationMillisecond(Some(n)),
        TimeUnit::Microsecond => ScalarValue::DurationMicrosecond(Some(n)),
        TimeUnit::Nanosecond => ScalarValue::DurationNanosecond(Some(n)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
    use arrow::datatypes::{Field, IntervalDayTime, IntervalMonthDayNano, Schema};
    use datafusion::execution::context::ExecutionProps;
    use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
    use datafusion::physical_expr::create_physical_expr;
    use datafusion::prelude::{col, lit};

    use super::*;

    fn schema(tz: Option<&str>) -> Schema {
        Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Millisecond, tz.map(Into::into)),
            true,
        )])
    }

    fn evaluate(expr: &Expr, schema: &Schema, times: &TimestampMillisecondArray) -> ArrayRef {
        let df = DFSchema::try_from(schema.clone()).expect("schema");
        let physical = create_physical_expr(
            expr,
            &df,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
        .expect("physical");
        let column = match schema.field(0).data_type() {
            DataType::Timestamp(_, Some(zone)) => times.clone().with_timezone(zone.as_ref()),
            _ => times.clone(),
        };
        let batch =
            RecordBatch::try_new(Arc::new(schema.clone()), vec![Arc::new(column)]).expect("batch");
        physical
            .evaluate(&batch)
            .expect("evaluate")
            .into_array(times.len())
            .expect("array")
    }

    fn interval(days: i32, nanos: i64) -> Expr {
        lit(ScalarValue::IntervalMonthDayNano(Some(
            IntervalMonthDayNano::new(0, days, nanos),
        )))
    }

    /// Rewritten or not, the same times come out, NULLs included, on both
    /// sides of the epoch.
    #[test]
    fn fixed_intervals_become_durations_with_the_same_results() {
        for zone in [None, Some("UTC"), Some("+05:30"), Some("-08:00")] {
            same_results_in(zone);
        }
    }

    fn same_results_in(zone: Option<&str>) {
        let schema = schema(zone);
        let df = DFSchema::try_from(schema.clone()).expect("schema");
        let times = TimestampMillisecondArray::from(vec![
            Some(1_795_507_200_123),
            None,
            Some(0),
            Some(-86_400_001),
            Some(951_782_400_000), // 2000-02-29
        ]);
        let cases = [
            col("t") - interval(0, 3_600_000_000_000),
            col("t") + interval(1, 500_000_000),
            col("t") - interval(-2, 0),
            col("t")
                - lit(ScalarValue::IntervalDayTime(Some(IntervalDayTime::new(
                    1, 250,
                )))),
        ];
        for case in cases {
            let rewritten = intervals_as_durations(&case, &df).expect("rewrite");
            assert_ne!(rewritten, case, "{case} was not rewritten");
            assert!(rewritten.to_string().contains("Duration"), "{rewritten}");
            assert_eq!(
                evaluate(&rewritten, &schema, &times).as_ref(),
                evaluate(&case, &schema, &times).as_ref(),
                "{case}"
            );
        }
    }

    /// Months (calendar lengths), time zones (daylight saving) and parts of
    /// the timestamp's unit stay intervals.
    #[test]
    fn calendar_and_zoned_intervals_stay() {
        let naive = DFSchema::try_from(schema(None)).expect("schema");
        let zoned = DFSchema::try_from(schema(Some("Europe/London"))).expect("schema");
        let month = col("t")
            - lit(ScalarValue::IntervalMonthDayNano(Some(
                IntervalMonthDayNano::new(1, 0, 0),
            )));
        assert_eq!(
            intervals_as_durations(&month, &naive).expect("rewrite"),
            month
        );
        let day = col("t") - interval(1, 0);
        assert_eq!(intervals_as_durations(&day, &zoned).expect("rewrite"), day);
        assert!(!fixed_zone("America/New_York"));
        assert!(!fixed_zone("+"));
        assert!(fixed_zone("+0100"));
        let sub_ms = col("t") - interval(0, 1_500);
        assert_eq!(
            intervals_as_durations(&sub_ms, &naive).expect("rewrite"),
            sub_ms
        );
    }
}
