//! Windows: `tumble`, `hop` and `session` as GROUP BY keys, and `window_start` /
//! `window_end` in the SELECT.
//!
//! ```sql
//! GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE)
//! GROUP BY ward, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '1' HOUR)  -- slide, size
//! GROUP BY patient_id, session(observed_at, INTERVAL '10' MINUTE)           -- gap
//! ```
//!
//! Windows are half-open, `[window_start, window_end)`, aligned to the Unix epoch.
//! The window functions are planned by DataFusion as scalar functions returning a
//! `{window_start, window_end}` struct; the engine recognises them in the plan and
//! assigns rows to windows itself (a hop row belongs to several windows, which no
//! scalar function can express). `window_start` and `window_end` in a SELECT are
//! rewritten to read that struct.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, Fields, IntervalUnit};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::sql::ddl::event_time_type;

/// Field name of a window's start in the window struct and in SELECTs.
pub const WINDOW_START: &str = "window_start";
/// Field name of a window's end.
pub const WINDOW_END: &str = "window_end";

/// How rows are assigned to windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size_ms`.
    Tumble {
        /// Window length.
        size_ms: i64,
    },
    /// Windows of `size_ms` starting every `slide_ms` (a multiple of it).
    Hop {
        /// Distance between window starts.
        slide_ms: i64,
        /// Window length.
        size_ms: i64,
    },
    /// Per key, rows closer than `gap_ms` to each other share a window.
    Session {
        /// Inactivity that ends a session.
        gap_ms: i64,
    },
}

impl WindowKind {
    /// The pane width: the unit of partial aggregation that windows are merged from.
    pub fn pane_ms(&self) -> Option<i64> {
        match *self {
            WindowKind::Tumble { size_ms } => Some(size_ms),
            WindowKind::Hop { slide_ms, .. } => Some(slide_ms),
            WindowKind::Session { .. } => None,
        }
    }
}

impl std::fmt::Display for WindowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowKind::Tumble { size_ms } => write!(f, "tumble(size {})", ms(*size_ms)),
            WindowKind::Hop { slide_ms, size_ms } => {
                write!(f, "hop(slide {}, size {})", ms(*slide_ms), ms(*size_ms))
            }
            WindowKind::Session { gap_ms } => write!(f, "session(gap {})", ms(*gap_ms)),
        }
    }
}

/// A duration in readable form (`90s`, `1h`, `250ms`).
pub fn ms(ms: i64) -> String {
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// The Arrow type of a window value: `{window_start, window_end}` timestamps.
pub fn window_type() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new(WINDOW_START, event_time_type(), false),
        Field::new(WINDOW_END, event_time_type(), false),
    ]))
}

/// Milliseconds of an interval literal argument (days and smaller units only).
pub fn interval_arg_ms(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            let ms = i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000;
            (v.nanoseconds % 1_000_000 == 0).then_some(ms)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        _ => None,
    }
}

/// A window function (`tumble`, `hop`, `session`) as DataFusion sees it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowFn {
    name: &'static str,
    intervals: usize,
    signature: Signature,
}

impl ScalarUDFImpl for WindowFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.len() != 1 + self.intervals {
            return plan_err!(
                "{}(event_time{}) takes {} arguments, got {}",
                self.name,
                ", INTERVAL".repeat(self.intervals),
                1 + self.intervals,
                arg_types.len()
            );
        }
        if !matches!(arg_types[0], DataType::Timestamp(_, _)) {
            return plan_err!(
                "{}: the first argument must be the event-time TIMESTAMP column, got {}",
                self.name,
                arg_types[0]
            );
        }
        let mut out = vec![event_time_type()];
        for t in &arg_types[1..] {
            if !matches!(t, DataType::Interval(_)) {
                return plan_err!("{}: window lengths must be INTERVALs, got {t}", self.name);
            }
            out.push(DataType::Interval(IntervalUnit::MonthDayNano));
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(window_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        exec_err!(
            "{}(...) is a GROUP BY key that the streaming engine evaluates; it cannot be computed row by row",
            self.name
        )
    }
}

/// `window_start(window)` / `window_end(window)`: one field of a window struct.
#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowBound {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for WindowBound {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if arg_types != [window_type()] {
            return plan_err!(
                "{} is only available in a query grouped by tumble, hop or session",
                self.name
            );
        }
        Ok(event_time_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name);
        };
        match arg {
            ColumnarValue::Array(array) => {
                let field: ArrayRef =
                    Arc::clone(array.as_struct().column_by_name(self.name).ok_or_else(|| {
                        datafusion::error::DataFusionError::Execution(format!(
                            "{}: not a window",
                            self.name
                        ))
                    })?);
                Ok(ColumnarValue::Array(field))
            }
            ColumnarValue::Scalar(ScalarValue::Struct(s)) => {
                let column = s.column_by_name(self.name).ok_or_else(|| {
                    datafusion::error::DataFusionError::Execution(format!(
                        "{}: not a window",
                        self.name
                    ))
                })?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    column, 0,
                )?))
            }
            ColumnarValue::Scalar(other) => exec_err!("{}: not a window: {other}", self.name),
        }
    }
}

/// Registers the window functions and `window_start` / `window_end` with `ctx`.
pub fn register(ctx: &SessionContext) {
    for (name, intervals) in [("tumble", 1), ("hop", 2), ("session", 1)] {
        ctx.register_udf(ScalarUDF::new_from_impl(WindowFn {
            name,
            intervals,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
    for name in [WINDOW_START, WINDOW_END] {
        ctx.register_udf(ScalarUDF::new_from_impl(WindowBound {
            name,
            signature: Signature::any(1, Volatility::Immutable),
        }));
    }
}
