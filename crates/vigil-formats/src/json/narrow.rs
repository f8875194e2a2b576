//! Narrow JSON: one measurement per message, as many device gateways and FHIR
//! Observation feeds send them, widened into the canonical vitals columns.
//!
//! A narrow message names the measurement by `code` (a LOINC code of the FHIR
//! vital-signs profile, or the canonical column name) with its `value` and
//! `unit` (UCUM, or a common spelling); every other field (`patient_id`,
//! `observed_at`, `ward`, a device id) passes through as it is:
//!
//! ```json
//! {"patient_id":"p1","observed_at":"2026-11-24T08:00:00Z","code":"8310-5","value":101.3,"unit":"[degF]"}
//! ```
//!
//! becomes `{"patient_id":"p1","observed_at":"2026-11-24T08:00:00Z","temperature":38.5}`
//! (Fahrenheit converted to Celsius), which is then decoded like a wide message,
//! every other vital NULL (missing, never normal). A code vigil does not know, a
//! numeric vital without a unit or in a unit that is not one of its own, and a
//! value of the wrong kind reject the message (it is dead-lettered with the
//! reason): a temperature in Fahrenheit read as Celsius is exactly the error that
//! must not pass.

use serde_json::{Map, Number, Value};

use crate::error::{DecodeError, Result};

/// What a code measures and how its value becomes a canonical column value.
#[derive(Debug, Clone, Copy)]
enum Measure {
    /// A numeric vital: column and accepted units with their conversion.
    Numeric(&'static str, &'static [(&'static str, Convert)]),
    /// Supplemental oxygen flow (L/min): `on_oxygen` is whether it is above 0.
    OxygenFlow,
    /// A column taken as it comes, without a unit (a boolean, the SpO2 scale, an
    /// ACVPU letter).
    Plain(&'static str),
}

/// A unit conversion into the canonical unit.
#[derive(Debug, Clone, Copy)]
enum Convert {
    Same,
    Scale(f64),
    FahrenheitToCelsius,
}

const PER_MINUTE: &[(&str, Convert)] = &[
    ("/min", Convert::Same),
    ("1/min", Convert::Same),
    ("{beats}/min", Convert::Same),
    ("{breaths}/min", Convert::Same),
    ("bpm", Convert::Same),
];
const PERCENT: &[(&str, Convert)] = &[("%", Convert::Same), ("1", Convert::Scale(100.0))];
const PRESSURE: &[(&str, Convert)] = &[
    ("mm[Hg]", Convert::Same),
    ("mmHg", Convert::Same),
    ("kPa", Convert::Scale(7.500_615_758)),
];
const TEMPERATURE: &[(&str, Convert)] = &[
    ("Cel", Convert::Same),
    ("°C", Convert::Same),
    ("C", Convert::Same),
    ("[degF]", Convert::FahrenheitToCelsius),
    ("°F", Convert::FahrenheitToCelsius),
    ("F", Convert::FahrenheitToCelsius),
];

/// The codes a narrow message may carry.
fn measure(code: &str) -> Option<Measure> {
    Some(match code {
        "8867-4" | "heart_rate" => Measure::Numeric("heart_rate", PER_MINUTE),
        "9279-1" | "resp_rate" => Measure::Numeric("resp_rate", PER_MINUTE),
        "59408-5" | "2708-6" | "spo2" => Measure::Numeric("spo2", PERCENT),
        "8480-6" | "systolic_bp" => Measure::Numeric("systolic_bp", PRESSURE),
        "8462-4" | "diastolic_bp" => Measure::Numeric("diastolic_bp", PRESSURE),
        "8310-5" | "temperature" => Measure::Numeric("temperature", TEMPERATURE),
        "3151-8" => Measure::OxygenFlow,
        "on_oxygen" => Measure::Plain("on_oxygen"),
        "spo2_scale" => Measure::Plain("spo2_scale"),
        "consciousness" => Measure::Plain("consciousness"),
        _ => return None,
    })
}

fn field(field: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Field {
        field,
        reason: reason.into(),
    }
}

/// Rewrites one narrow message as the wide JSON object it stands for; returns it
/// with the column the measurement went to.
pub fn widen(message: &[u8]) -> Result<(Vec<u8>, &'static str)> {
    let mut object: Map<String, Value> = match serde_json::from_slice(message) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(DecodeError::Json("not a JSON object".to_owned())),
        Err(e) => return Err(DecodeError::Json(e.to_string())),
    };
    let code = match object.remove("code") {
        Some(Value::String(code)) => code,
        Some(_) => return Err(field("code", "must be a string")),
        None => {
            return Err(field(
                "code",
                "is missing (a narrow message names its measurement)",
            ));
        }
    };
    let value = object.remove("value").unwrap_or(Value::Null);
    let unit = match object.remove("unit") {
        Some(Value::String(unit)) => Some(unit),
        None | Some(Value::Null) => None,
        Some(_) => return Err(field("unit", "must be a string")),
    };
    let Some(measure) = measure(&code) else {
        return Err(field(
            "code",
            format!("{code} is not a vital sign vigil knows"),
        ));
    };
    let (column, value) = match measure {
        Measure::Numeric(column, units) => {
            let Some(unit) = unit else {
                return Err(field("unit", format!("is required for {column} ({code})")));
            };
            let Some(&(_, convert)) = units.iter().find(|(u, _)| *u == unit) else {
                let known: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
                return Err(field(
                    "unit",
                    format!("{unit} is not a unit of {column} ({code}); expected one of {known:?}"),
                ));
            };
            let x = match &value {
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::Null => return Err(field("value", "is missing")),
                _ => return Err(field("value", format!("must be a number for {column}"))),
            };
            let x = match convert {
                Convert::Same => x,
                Convert::Scale(k) => x * k,
                Convert::FahrenheitToCelsius => (x - 32.0) * 5.0 / 9.0,
            };
            let Some(number) = Number::from_f64(x) else {
                return Err(field("value", "is not a finite number"));
            };
            (column, Value::Number(number))
        }
        Measure::OxygenFlow => {
            if unit.as_deref() != Some("L/min") {
                return Err(field(
                    "unit",
                    format!(
                        "{} is not a unit of oxygen flow (3151-8); expected L/min",
                        unit.unwrap_or_default()
                    ),
                ));
            }
            match value.as_f64() {
                Some(flow) if flow.is_finite() && flow >= 0.0 => {
                    ("on_oxygen", Value::Bool(flow > 0.0))
                }
                _ => return Err(field("value", "oxygen flow must be a number, 0 or more")),
            }
        }
        Measure::Plain(column) => {
            if value.is_null() {
                return Err(field("value", "is missing"));
            }
            (column, value)
        }
    };
    object.insert(column.to_owned(), value);
    let bytes =
        serde_json::to_vec(&Value::Object(object)).map_err(|e| DecodeError::Json(e.to_string()))?;
    Ok((bytes, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(message: &str) -> Value {
        serde_json::from_slice(&widen(message.as_bytes()).expect("widens").0).expect("json")
    }

    fn rejected(message: &str) -> String {
        widen(message.as_bytes()).expect_err("rejected").to_string()
    }

    #[test]
    fn loinc_codes_and_column_names_become_columns() {
        let v = wide(
            r#"{"patient_id":"p1","observed_at":5,"ward":"4B","code":"8867-4","value":72,"unit":"/min"}"#,
        );
        assert_eq!(
            v,
            serde_json::json!({"patient_id":"p1","observed_at":5,"ward":"4B","heart_rate":72.0})
        );
        assert_eq!(
            wide(r#"{"code":"resp_rate","value":18,"unit":"{breaths}/min"}"#)["resp_rate"],
            18.0
        );
        assert_eq!(
            wide(r#"{"code":"59408-5","value":97,"unit":"%"}"#)["spo2"],
            97.0
        );
        assert_eq!(
            wide(r#"{"code":"2708-6","value":0.95,"unit":"1"}"#)["spo2"],
            95.0
        );
        assert_eq!(
            wide(r#"{"code":"8480-6","value":120,"unit":"mm[Hg]"}"#)["systolic_bp"],
            120.0
        );
        assert_eq!(
            wide(r#"{"code":"consciousness","value":"V"}"#)["consciousness"],
            "V"
        );
        assert_eq!(
            wide(r#"{"code":"on_oxygen","value":true}"#)["on_oxygen"],
            true
        );
        assert_eq!(wide(r#"{"code":"spo2_scale","value":2}"#)["spo2_scale"], 2);
    }

    #[test]
    fn units_are_converted_to_the_canonical_ones() {
        let t = wide(r#"{"code":"8310-5","value":101.3,"unit":"[degF]"}"#)["temperature"]
            .as_f64()
            .expect("number");
        assert!((t - 38.5).abs() < 1e-9, "{t}");
        let bp = wide(r#"{"code":"8462-4","value":10,"unit":"kPa"}"#)["diastolic_bp"]
            .as_f64()
            .expect("number");
        assert!((bp - 75.006).abs() < 1e-3, "{bp}");
        assert_eq!(
            wide(r#"{"code":"3151-8","value":2,"unit":"L/min"}"#)["on_oxygen"],
            true
        );
        assert_eq!(
            wide(r#"{"code":"3151-8","value":0,"unit":"L/min"}"#)["on_oxygen"],
            false
        );
    }

    #[test]
    fn wrong_units_unknown_codes_and_bad_values_are_rejected() {
        assert!(
            rejected(r#"{"code":"8310-5","value":38,"unit":"K"}"#)
                .contains("K is not a unit of temperature")
        );
        assert!(rejected(r#"{"code":"8310-5","value":38}"#).contains("unit: is required"));
        assert!(
            rejected(r#"{"code":"8867-4","value":72,"unit":"mm[Hg]"}"#)
                .contains("not a unit of heart_rate")
        );
        assert!(
            rejected(r#"{"code":"29463-7","value":70,"unit":"kg"}"#)
                .contains("not a vital sign vigil knows")
        );
        assert!(rejected(r#"{"value":70,"unit":"/min"}"#).contains("code: is missing"));
        assert!(
            rejected(r#"{"code":"8867-4","value":"fast","unit":"/min"}"#)
                .contains("must be a number")
        );
        assert!(rejected(r#"{"code":"8867-4","unit":"/min"}"#).contains("value: is missing"));
        assert!(rejected(r#"{"code":"3151-8","value":-1,"unit":"L/min"}"#).contains("0 or more"));
        assert!(rejected(r#"{"code":"consciousness"}"#).contains("value: is missing"));
        assert!(rejected(r#"[1,2]"#).contains("not a JSON object"));
        assert!(rejected(r#"{"code":"8867-4","#).contains("EOF"));
    }
}
