//! The canonical vitals schema: one row per observation set of one patient at one time.
//!
//! Every decoder produces this schema and every pipeline reads it, so its JSON field
//! names are a public contract (see [`fields`]). Vital-sign columns are nullable: a
//! reading that carries only a heart rate leaves the other vitals NULL, and NULL means
//! *not measured*, never *normal*.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The column (and JSON field) names of the canonical vitals schema.
pub mod fields {
    /// Patient identifier (text, required). Never logged or used as a metric label.
    pub const PATIENT_ID: &str = "patient_id";
    /// Ward or cohort the patient belongs to (text, optional).
    pub const WARD: &str = "ward";
    /// When the vitals were observed (event time), UTC milliseconds.
    pub const OBSERVED_AT: &str = "observed_at";
    /// Respiration rate, breaths per minute.
    pub const RESP_RATE: &str = "resp_rate";
    /// Peripheral oxygen saturation, percent.
    pub const SPO2: &str = "spo2";
    /// Which NEWS2 SpO2 scale applies to the patient: 1 (default) or 2 (hypercapnic
    /// respiratory failure, target 88-92 %).
    pub const SPO2_SCALE: &str = "spo2_scale";
    /// Whether the patient is receiving supplemental oxygen (true) or breathing air.
    pub const ON_OXYGEN: &str = "on_oxygen";
    /// Systolic blood pressure, mmHg.
    pub const SYSTOLIC_BP: &str = "systolic_bp";
    /// Diastolic blood pressure, mmHg.
    pub const DIASTOLIC_BP: &str = "diastolic_bp";
    /// Pulse / heart rate, beats per minute.
    pub const HEART_RATE: &str = "heart_rate";
    /// Level of consciousness on the ACVPU scale, stored as its letter (`A`, `C`, `V`,
    /// `P`, `U`); see [`crate::Acvpu`].
    pub const CONSCIOUSNESS: &str = "consciousness";
    /// Body temperature, degrees Celsius.
    pub const TEMPERATURE: &str = "temperature";
}

/// The Arrow type of `observed_at`: UTC milliseconds since the Unix epoch.
pub fn observed_at_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The canonical vitals schema, shared (built once).
///
/// Column order: `patient_id`, `ward`, `observed_at`, `resp_rate`, `spo2`,
/// `spo2_scale`, `on_oxygen`, `systolic_bp`, `diastolic_bp`, `heart_rate`,
/// `consciousness`, `temperature`.
pub fn vitals_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(fields::PATIENT_ID, DataType::Utf8, false),
                Field::new(fields::WARD, DataType::Utf8, true),
                Field::new(fields::OBSERVED_AT, observed_at_type(), false),
                Field::new(fields::RESP_RATE, DataType::Float64, true),
                Field::new(fields::SPO2, DataType::Float64, true),
                Field::new(fields::SPO2_SCALE, DataType::UInt8, true),
                Field::new(fields::ON_OXYGEN, DataType::Boolean, true),
                Field::new(fields::SYSTOLIC_BP, DataType::Float64, true),
                Field::new(fields::DIASTOLIC_BP, DataType::Float64, true),
                Field::new(fields::HEART_RATE, DataType::Float64, true),
                Field::new(fields::CONSCIOUSNESS, DataType::Utf8, true),
                Field::new(fields::TEMPERATURE, DataType::Float64, true),
            ]))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_the_json_contract() {
        let names: Vec<_> = vitals_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "patient_id",
                "ward",
                "observed_at",
                "resp_rate",
                "spo2",
                "spo2_scale",
                "on_oxygen",
                "systolic_bp",
                "diastolic_bp",
                "heart_rate",
                "consciousness",
                "temperature"
            ]
        );
    }

    #[test]
    fn identity_and_time_are_required_vitals_are_not() {
        let schema = vitals_schema();
        for f in schema.fields() {
            let required = matches!(f.name().as_str(), "patient_id" | "observed_at");
            assert_eq!(!f.is_nullable(), required, "{}", f.name());
        }
    }
}
