//! Scoring whole batches of the canonical vitals schema.
//!
//! [`score_vitals`] takes a batch as decoded from devices and returns it with every
//! score appended, for `vigil score` and for any code that wants all scores without
//! writing SQL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use vigil_core::fields;

use crate::error::{Result, ScoreError};
use crate::input::{Flag, Num, Text};
use crate::mews::{MewsInputs, mews};
use crate::news2::{News2Inputs, band, news2};
use crate::qsofa::{QsofaInputs, qsofa};
use crate::sheet::detail_type;
use crate::sirs::{SirsInputs, sirs};

/// Names of the columns [`score_vitals`] appends, in order.
pub mod columns {
    /// NEWS2 aggregate (NULL when incomplete).
    pub const NEWS2: &str = "news2";
    /// NEWS2 clinical risk band.
    pub const NEWS2_BAND: &str = "news2_band";
    /// NEWS2 partial sum.
    pub const NEWS2_PARTIAL: &str = "news2_partial";
    /// NEWS2 sub-scores (struct).
    pub const NEWS2_SUBSCORES: &str = "news2_subscores";
    /// NEWS2 parameters that were missing (list of names).
    pub const NEWS2_MISSING: &str = "news2_missing";
    /// NEWS2 parameters that were invalid (list of names).
    pub const NEWS2_INVALID: &str = "news2_invalid";
    /// qSOFA aggregate.
    pub const QSOFA: &str = "qsofa";
    /// MEWS aggregate.
    pub const MEWS: &str = "mews";
    /// SIRS vital-sign criteria met.
    pub const SIRS: &str = "sirs";
}

fn num(a: &ArrayRef) -> Num<'_> {
    Num::Array(a.as_primitive::<Float64Type>())
}

fn column<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or(ScoreError::MissingColumn(name))
}

fn float(batch: &RecordBatch, name: &'static str) -> Result<ArrayRef> {
    let c = column(batch, name)?;
    Ok(match c.data_type() {
        DataType::Float64 => Arc::clone(c),
        _ => cast(c, &DataType::Float64)?,
    })
}

/// The schema [`score_vitals`] produces for an input batch of schema `input`.
pub fn scored_schema(input: &Schema) -> SchemaRef {
    let news2_detail = detail_type(crate::news2::params::ALL.iter().copied(), true);
    let DataType::Struct(detail) = news2_detail else {
        return Arc::new(input.clone());
    };
    let field = |name: &str| {
        detail
            .iter()
            .find(|f| f.name() == name)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null)
    };
    let mut out: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    out.extend([
        Field::new(columns::NEWS2, DataType::UInt8, true),
        Field::new(columns::NEWS2_BAND, DataType::Utf8, true),
        Field::new(columns::NEWS2_PARTIAL, DataType::UInt8, false),
        Field::new(columns::NEWS2_SUBSCORES, field("subscores"), false),
        Field::new(columns::NEWS2_MISSING, field("missing"), false),
        Field::new(columns::NEWS2_INVALID, field("invalid"), false),
        Field::new(columns::QSOFA, DataType::UInt8, true),
        Field::new(columns::MEWS, DataType::UInt8, true),
        Field::new(columns::SIRS, DataType::UInt8, true),
    ]);
    Arc::new(Schema::new(out))
}

/// Appends NEWS2 (aggregate, band, partial, sub-scores, missing, invalid), qSOFA,
/// MEWS and SIRS to a batch holding the canonical vitals columns.
pub fn score_vitals(batch: &RecordBatch) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let rr = float(batch, fields::RESP_RATE)?;
    let spo2 = float(batch, fields::SPO2)?;
    let scale = float(batch, fields::SPO2_SCALE)?;
    let sbp = float(batch, fields::SYSTOLIC_BP)?;
    let hr = float(batch, fields::HEART_RATE)?;
    let temp = float(batch, fields::TEMPERATURE)?;
    let oxygen = column(batch, fields::ON_OXYGEN)?;
    let consciousness = column(batch, fields::CONSCIOUSNESS)?;
    let on_oxygen =
        Flag::Array(
            oxygen
                .as_boolean_opt()
                .ok_or_else(|| ScoreError::ArgumentType {
                    function: "score_vitals".into(),
                    argument: 0,
                    name: fields::ON_OXYGEN,
                    expected: "a boolean",
                    actual: oxygen.data_type().to_string(),
                })?,
        );
    let text = match consciousness.data_type() {
        DataType::Utf8 => Text::Utf8(consciousness.as_string::<i32>()),
        DataType::Utf8View => Text::Utf8View(consciousness.as_string_view()),
        other => {
            return Err(ScoreError::ArgumentType {
                function: "score_vitals".into(),
                argument: 0,
                name: fields::CONSCIOUSNESS,
                expected: "text",
                actual: other.to_string(),
            });
        }
    };

    let news2 = news2(
        &News2Inputs {
            resp_rate: num(&rr),
            spo2: num(&spo2),
            spo2_scale: num(&scale),
            on_oxygen,
            systolic_bp: num(&sbp),
            heart_rate: num(&hr),
            consciousness: text,
            temperature: num(&temp),
        },
        rows,
    );
    let qsofa = qsofa(
        &QsofaInputs {
            resp_rate: num(&rr),
            systolic_bp: num(&sbp),
            consciousness: text,
        },
        rows,
    );
    let mews = mews(
        &MewsInputs {
            resp_rate: num(&rr),
            systolic_bp: num(&sbp),
            heart_rate: num(&hr),
            consciousness: text,
            temperature: num(&temp),
        },
        rows,
    );
    let sirs = sirs(
        &SirsInputs {
            resp_rate: num(&rr),
            heart_rate: num(&hr),
            temperature: num(&temp),
        },
        rows,
    );

    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.extend([
        Arc::new(news2.total()) as ArrayRef,
        Arc::new(band(&news2)),
        Arc::new(news2.partial()),
        Arc::new(news2.subscores()),
        news2.missing(),
        news2.invalid(),
        Arc::new(qsofa.total()),
        Arc::new(mews.total()),
        Arc::new(sirs.total()),
    ]);
    Ok(RecordBatch::try_new(
        scored_schema(batch.schema_ref()),
        columns,
    )?)
}
