//! The trend statistics as DataFusion aggregate functions, whose partial states
//! merge: across the panes of a hop window, and across instances when a second
//! stage combines them.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type, TimeUnit};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::regression::Regression;
use super::series::{cusum, mann_kendall, sort};

/// The CUSUM allowance, in standard deviations: half the one-sd shift the
/// detector is tuned for.
pub const CUSUM_K: f64 = 0.5;

/// A trend statistic available from SQL; every one takes `(value, time)`: a
/// number and a TIMESTAMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trend {
    /// `trend_slope`: least-squares slope, value units per hour.
    Slope,
    /// `trend_p_value`: two-sided p-value of that slope (Student's t).
    PValue,
    /// `mann_kendall_z`: the Mann-Kendall normal score (sign: direction).
    MannKendallZ,
    /// `mann_kendall_p`: its two-sided p-value.
    MannKendallP,
    /// `cusum`: self-starting upper CUSUM at the last point, in standard deviations.
    Cusum,
}

impl Trend {
    /// Every trend function.
    pub const ALL: [Trend; 5] = [
        Trend::Slope,
        Trend::PValue,
        Trend::MannKendallZ,
        Trend::MannKendallP,
        Trend::Cusum,
    ];

    /// Its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Trend::Slope => "trend_slope",
            Trend::PValue => "trend_p_value",
            Trend::MannKendallZ => "mann_kendall_z",
            Trend::MannKendallP => "mann_kendall_p",
            Trend::Cusum => "cusum",
        }
    }

    fn keeps_points(self) -> bool {
        !matches!(self, Trend::Slope | Trend::PValue)
    }
}

/// The DataFusion aggregate function of one [`Trend`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TrendUdaf {
    trend: Trend,
    signature: Signature,
}

impl TrendUdaf {
    /// The function computing `trend`.
    pub fn new(trend: Trend) -> TrendUdaf {
        TrendUdaf {
            trend,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// Every trend function, ready to register.
pub fn functions() -> Vec<AggregateUDF> {
    Trend::ALL
        .iter()
        .map(|&t| AggregateUDF::from(TrendUdaf::new(t)))
        .collect()
}

const REGRESSION_STATE: [&str; 6] = ["n", "mean_t", "mean_v", "m2_t", "m2_v", "c_tv"];

impl AggregateUDFImpl for TrendUdaf {
    fn name(&self) -> &str {
        self.trend.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        let name = self.trend.name();
        match args {
            [value, DataType::Timestamp(_, _)] if value.is_numeric() || value.is_null() => {
                Ok(DataType::Float64)
            }
            [value, time] => plan_err!(
                "{name}(value, time) takes a number and a TIMESTAMP, not {value} and {time}"
            ),
            _ => plan_err!(
                "{name}(value, time) takes two arguments, not {}",
                args.len()
            ),
        }
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(if self.trend.keeps_points() {
            Box::new(SeriesAccumulator {
                trend: self.trend,
                points: Vec::new(),
            })
        } else {
            Box::new(RegressionAccumulator {
                trend: self.trend,
                state: Regression::default(),
            })
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(if self.trend.keeps_points() {
            ["times", "values"]
                .iter()
                .map(|part| {
                    Arc::new(Field::new_list(
                        format_state_name(args.name, part),
                        Field::new_list_field(DataType::Float64, true),
                        true,
                    ))
                })
                .collect()
        } else {
            REGRESSION_STATE
                .iter()
                .map(|part| {
                    Arc::new(Field::new(
                        format_state_name(args.name, part),
                        DataType::Float64,
                        true,
                    ))
                })
                .collect()
        })
    }
}

/// The (time in hours, value) points of a batch's arguments, skipping rows with
/// a NULL or a value that is not finite.
fn points(values: &[ArrayRef]) -> DfResult<Vec<(f64, f64)>> {
    let [value, time] = values else {
        return exec_err!("trend functions take (value, time)");
    };
    let per_hour = match time.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => 3_600.0,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 3_600_000.0,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 3_600_000_000.0,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 3_600_000_000_000.0,
        other => return exec_err!("trend functions take a TIMESTAMP time, not {other}"),
    };
    let value = cast(value, &DataType::Float64)?;
    let value = value.as_primitive::<Float64Type>();
    let time = cast(time, &DataType::Int64)?;
    let time = time.as_primitive::<Int64Type>();
    Ok((0..value.len())
        .filter(|&i| value.is_valid(i) && time.is_valid(i) && value.value(i).is_finite())
        .map(|i| (time.value(i) as f64 / per_hour, value.value(i)))
        .collect())
}

/// `trend_slope` and `trend_p_value`: the regression's sums.
#[derive(Debug)]
struct RegressionAccumulator {
    trend: Trend,
    state: Regression,
}

impl Accumulator for RegressionAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for (t, v) in points(values)? {
            self.state.push(t, v);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Float64(match self.trend {
            Trend::Slope => self.state.slope(),
            _ => self.state.p_value(),
        }))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let r = self.state;
        Ok([r.n, r.mean_t, r.mean_v, r.m2_t, r.m2_v, r.c_tv]
            .into_iter()
            .map(|x| ScalarValue::Float64(Some(x)))
            .collect())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        if states.len() != REGRESSION_STATE.len() {
            return exec_err!("trend state has {} columns, not 6", states.len());
        }
        let columns: Vec<&Float64Array> = states.iter().map(|s| s.as_primitive()).collect();
        for row in 0..states[0].len() {
            if columns.iter().any(|c| c.is_null(row)) {
                continue;
            }
            let x = |i: usize| columns[i].value(row);
            self.state.merge(&Regression {
                n: x(0),
                mean_t: x(1),
                mean_v: x(2),
                m2_t: x(3),
                m2_v: x(4),
                c_tv: x(5),
            });
        }
        Ok(())
    }
}

/// `mann_kendall_*` and `cusum`: the points.
#[derive(Debug)]
struct SeriesAccumulator {
    trend: Trend,
    points: Vec<(f64, f64)>,
}

impl Accumulator for SeriesAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.points.extend(points(values)?);
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        sort(&mut self.points);
        Ok(ScalarValue::Float64(match self.trend {
            Trend::MannKendallZ => mann_kendall(&self.points).map(|m| m.z),
            Trend::MannKendallP => mann_kendall(&self.points).map(|m| m.p),
            _ => cusum(&self.points, CUSUM_K),
        }))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.points.capacity() * std::mem::size_of::<(f64, f64)>()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let list = |f: fn(&(f64, f64)) -> f64| {
            let array: ArrayRef =
                Arc::new(Float64Array::from_iter_values(self.points.iter().map(f)));
            SingleRowListArrayBuilder::new(array).build_list_scalar()
        };
        Ok(vec![list(|p| p.0), list(|p| p.1)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let [times, values] = states else {
            return exec_err!("series state has {} columns, not 2", states.len());
        };
        let (times, values) = (times.as_list::<i32>(), values.as_list::<i32>());
        for row in 0..times.len() {
            if times.is_null(row) || values.is_null(row) {
                continue;
            }
            let (t, v) = (times.value(row), values.value(row));
            let (t, v) = (
                t.as_primitive::<Float64Type>(),
                v.as_primitive::<Float64Type>(),
            );
            if t.len() != v.len() {
                return exec_err!("series state with {} times and {} values", t.len(), v.len());
            }
            self.points
                .extend(t.values().iter().copied().zip(v.values().iter().copied()));
        }
        Ok(())
    }
}
