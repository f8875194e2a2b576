//! The scores as DataFusion scalar functions, callable from SQL.
//!
//! | function | returns |
//! |---|---|
//! | `news2(resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, heart_rate, consciousness, temperature)` | aggregate 0-20, NULL if any parameter is missing or invalid |
//! | `news2_partial(...)` | sum of the parameters that could be scored |
//! | `news2_band(...)` | `low`, `low-medium`, `medium`, `high`, or NULL |
//! | `news2_detail(...)` | struct: `score`, `partial`, `band`, `subscores`, `missing`, `invalid` |
//! | `qsofa(resp_rate, systolic_bp, consciousness)`, `qsofa_partial`, `qsofa_detail` | 0-3 |
//! | `mews(resp_rate, systolic_bp, heart_rate, consciousness, temperature)`, `mews_partial`, `mews_detail` | 0-14 |
//! | `sirs(resp_rate, heart_rate, temperature)`, `sirs_partial`, `sirs_detail` | 0-3 |
//!
//! Numeric arguments take any numeric type (cast to DOUBLE), `on_oxygen` a BOOLEAN,
//! `consciousness` text. A wrong argument count or type is a planning error that names
//! the function, the argument and what it expects.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::ScoreError;
use crate::input::{Arg, Flag, Num, Text, all_scalar, row_count};
use crate::mews::{MewsInputs, mews};
use crate::news2::{News2Inputs, band, news2};
use crate::qsofa::{QsofaInputs, qsofa};
use crate::sheet::{Sheet, detail_type};
use crate::sirs::{SirsInputs, sirs};

/// The kind of value a score argument takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A number (cast to DOUBLE).
    Numeric,
    /// A boolean.
    Flag,
    /// Text.
    Text,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Numeric => "a number",
            Kind::Flag => "a boolean",
            Kind::Text => "text (an ACVPU letter or word)",
        }
    }
}

/// A score available from SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Score {
    /// NEWS2.
    News2,
    /// qSOFA.
    Qsofa,
    /// MEWS.
    Mews,
    /// SIRS vital-sign criteria.
    Sirs,
}

/// What a score function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// The aggregate (NULL unless complete).
    Score,
    /// The partial sum.
    Partial,
    /// The NEWS2 clinical risk band.
    Band,
    /// The detail struct.
    Detail,
}

impl Score {
    /// Every score.
    pub const ALL: [Score; 4] = [Score::News2, Score::Qsofa, Score::Mews, Score::Sirs];

    /// The function name stem (`news2`, `qsofa`, `mews`, `sirs`).
    pub const fn name(self) -> &'static str {
        match self {
            Score::News2 => "news2",
            Score::Qsofa => "qsofa",
            Score::Mews => "mews",
            Score::Sirs => "sirs",
        }
    }

    /// The SQL arguments, in order.
    pub const fn arguments(self) -> &'static [(&'static str, Kind)] {
        use Kind::*;
        match self {
            Score::News2 => &[
                ("resp_rate", Numeric),
                ("spo2", Numeric),
                ("spo2_scale", Numeric),
                ("on_oxygen", Flag),
                ("systolic_bp", Numeric),
                ("heart_rate", Numeric),
                ("consciousness", Text),
                ("temperature", Numeric),
            ],
            Score::Qsofa => &[
                ("resp_rate", Numeric),
                ("systolic_bp", Numeric),
                ("consciousness", Text),
            ],
            Score::Mews => &[
                ("resp_rate", Numeric),
                ("systolic_bp", Numeric),
                ("heart_rate", Numeric),
                ("consciousness", Text),
                ("temperature", Numeric),
            ],
            Score::Sirs => &[
                ("resp_rate", Numeric),
                ("heart_rate", Numeric),
                ("temperature", Numeric),
            ],
        }
    }

    /// The parameters with a sub-score, in order.
    pub const fn parameters(self) -> &'static [&'static str] {
        match self {
            Score::News2 => &crate::news2::params::ALL,
            Score::Qsofa => &crate::qsofa::params::ALL,
            Score::Mews => &crate::mews::params::ALL,
            Score::Sirs => &crate::sirs::params::ALL,
        }
    }

    /// The outputs offered as functions for this score.
    pub const fn outputs(self) -> &'static [Output] {
        match self {
            Score::News2 => &[Output::Score, Output::Partial, Output::Band, Output::Detail],
            _ => &[Output::Score, Output::Partial, Output::Detail],
        }
    }

    fn has_band(self) -> bool {
        self == Score::News2
    }

    /// Computes the sheet from arguments already converted to the score's kinds.
    fn compute(self, args: &[Arg<'_>], rows: usize) -> Option<Sheet> {
        use Arg::{Flag as F, Num as N, Text as T};
        Some(match (self, args) {
            (Score::News2, &[N(rr), N(spo2), N(scale), F(o2), N(sbp), N(hr), T(c), N(t)]) => news2(
                &News2Inputs {
                    resp_rate: rr,
                    spo2,
                    spo2_scale: scale,
                    on_oxygen: o2,
                    systolic_bp: sbp,
                    heart_rate: hr,
                    consciousness: c,
                    temperature: t,
                },
                rows,
            ),
            (Score::Qsofa, &[N(rr), N(sbp), T(c)]) => qsofa(
                &QsofaInputs {
                    resp_rate: rr,
                    systolic_bp: sbp,
                    consciousness: c,
                },
                rows,
            ),
            (Score::Mews, &[N(rr), N(sbp), N(hr), T(c), N(t)]) => mews(
                &MewsInputs {
                    resp_rate: rr,
                    systolic_bp: sbp,
                    heart_rate: hr,
                    consciousness: c,
                    temperature: t,
                },
                rows,
            ),
            (Score::Sirs, &[N(rr), N(hr), N(t)]) => sirs(
                &SirsInputs {
                    resp_rate: rr,
                    heart_rate: hr,
                    temperature: t,
                },
                rows,
            ),
            _ => return None,
        })
    }
}

/// One score function (`news2`, `news2_band`, `qsofa_detail`, ...).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ScoreUdf {
    score: Score,
    output: Output,
    name: String,
    signature: Signature,
}

impl ScoreUdf {
    /// The function returning `output` of `score`.
    pub fn new(score: Score, output: Output) -> ScoreUdf {
        let suffix = match output {
            Output::Score => "",
            Output::Partial => "_partial",
            Output::Band => "_band",
            Output::Detail => "_detail",
        };
        ScoreUdf {
            score,
            output,
            name: format!("{}{suffix}", score.name()),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn usage(&self) -> String {
        let names: Vec<_> = self.score.arguments().iter().map(|(n, _)| *n).collect();
        format!("{}({})", self.name, names.join(", "))
    }

    fn to_args<'a>(&self, values: &'a [ColumnarValue]) -> DfResult<Vec<Arg<'a>>> {
        let spec = self.score.arguments();
        if values.len() != spec.len() {
            return plan_err!(
                "{} takes {} arguments, got {}",
                self.usage(),
                spec.len(),
                values.len()
            );
        }
        values
            .iter()
            .zip(spec)
            .enumerate()
            .map(|(i, (value, (name, kind)))| {
                let wrong = |actual: &DataType| {
                    DataFusionError::from(ScoreError::ArgumentType {
                        function: self.name.clone(),
                        argument: i + 1,
                        name,
                        expected: kind.describe(),
                        actual: actual.to_string(),
                    })
                };
                Ok(match (kind, value) {
                    (Kind::Numeric, ColumnarValue::Array(a)) => Arg::Num(Num::Array(
                        a.as_primitive_opt::<Float64Type>()
                            .ok_or_else(|| wrong(a.data_type()))?,
                    )),
                    (Kind::Numeric, ColumnarValue::Scalar(ScalarValue::Float64(v))) => {
                        Arg::Num(Num::Scalar(*v))
                    }
                    (Kind::Flag, ColumnarValue::Array(a)) => Arg::Flag(Flag::Array(
                        a.as_boolean_opt().ok_or_else(|| wrong(a.data_type()))?,
                    )),
                    (Kind::Flag, ColumnarValue::Scalar(ScalarValue::Boolean(v))) => {
                        Arg::Flag(Flag::Scalar(*v))
                    }
                    (Kind::Text, ColumnarValue::Array(a)) => match a.data_type() {
                        DataType::Utf8 => Arg::Text(Text::Utf8(a.as_string::<i32>())),
                        DataType::Utf8View => Arg::Text(Text::Utf8View(a.as_string_view())),
                        other => return Err(wrong(other)),
                    },
                    (
                        Kind::Text,
                        ColumnarValue::Scalar(ScalarValue::Utf8(v) | ScalarValue::Utf8View(v)),
                    ) => Arg::Text(Text::Scalar(v.as_deref())),
                    (_, ColumnarValue::Scalar(s)) if s.is_null() => match kind {
                        Kind::Numeric => Arg::Num(Num::Scalar(None)),
                        Kind::Flag => Arg::Flag(Flag::Scalar(None)),
                        Kind::Text => Arg::Text(Text::Scalar(None)),
                    },
                    (_, ColumnarValue::Scalar(s)) => return Err(wrong(&s.data_type())),
                })
            })
            .collect()
    }
}

impl From<ScoreError> for DataFusionError {
    fn from(e: ScoreError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

impl ScalarUDFImpl for ScoreUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let spec = self.score.arguments();
        if arg_types.len() != spec.len() {
            return plan_err!(
                "{} takes {} arguments, got {}",
                self.usage(),
                spec.len(),
                arg_types.len()
            );
        }
        arg_types
            .iter()
            .zip(spec)
            .enumerate()
            .map(|(i, (t, (name, kind)))| {
                let coerced = match (kind, t) {
                    (Kind::Numeric, t) if t.is_numeric() || t.is_null() => Some(DataType::Float64),
                    (Kind::Flag, DataType::Boolean | DataType::Null) => Some(DataType::Boolean),
                    (Kind::Text, DataType::Utf8 | DataType::Utf8View) => Some(t.clone()),
                    (Kind::Text, DataType::LargeUtf8 | DataType::Null) => Some(DataType::Utf8),
                    (Kind::Text, DataType::Dictionary(_, v))
                        if matches!(
                            **v,
                            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                        ) =>
                    {
                        Some(DataType::Utf8)
                    }
                    _ => None,
                };
                coerced.map_or_else(
                    || {
                        plan_err!(
                            "{}: argument {} ({name}) must be {}, got {t}",
                            self.usage(),
                            i + 1,
                            kind.describe()
                        )
                    },
                    Ok,
                )
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.output {
            Output::Score | Output::Partial => DataType::UInt8,
            Output::Band => DataType::Utf8,
            Output::Detail => detail_type(
                self.score.parameters().iter().copied(),
                self.score.has_band(),
            ),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let converted = self.to_args(&args.args)?;
        let rows = if all_scalar(&converted) {
            1
        } else {
            row_count(&self.name, &converted)?
        };
        let sheet = self.score.compute(&converted, rows).ok_or_else(|| {
            DataFusionError::Internal(format!("{}: arguments do not match", self.usage()))
        })?;
        let result: ArrayRef = match self.output {
            Output::Score => Arc::new(sheet.total()),
            Output::Partial => Arc::new(sheet.partial()),
            Output::Band => Arc::new(band(&sheet)),
            Output::Detail => {
                let band = self
                    .score
                    .has_band()
                    .then(|| Arc::new(band(&sheet)) as ArrayRef);
                Arc::new(sheet.detail(band))
            }
        };
        if all_scalar(&converted) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// Every score function, ready to register with a DataFusion context.
pub fn all_functions() -> Vec<ScalarUDF> {
    Score::ALL
        .iter()
        .flat_map(|&s| {
            s.outputs()
                .iter()
                .map(move |&o| ScalarUDF::from(ScoreUdf::new(s, o)))
        })
        .collect()
}

/// Registers every score function, and the trend aggregates of
/// [`trend`](crate::trend), with `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in all_functions() {
        ctx.register_udf(f);
    }
    for f in crate::trend::udaf::functions() {
        ctx.register_udaf(f);
    }
}
