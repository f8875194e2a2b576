//! Readings and episodes as the JSON messages vigil reads: wide (one object per
//! reading, several vitals) or narrow (one object per measurement, with a LOINC
//! code and a UCUM unit), both as described in README's vitals format.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat};

use crate::cohort::{Episode, patient_id, ward_name};
use crate::stream::Reading;

/// How readings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One message per reading with every vital it carries.
    Wide,
    /// One message per measurement (`code`, `value`, `unit`).
    Narrow,
}

/// RFC 3339 in UTC with milliseconds, as device gateways write it.
pub fn timestamp(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

/// The fields every message of a reading starts with: who, which device, when
/// it was taken (by the device's clock) and when the gateway received it.
fn head(reading: &Reading) -> String {
    format!(
        r#"{{"patient_id":"{}","ward":"{}","device_id":"{}-{:06}","observed_at":"{}","received_at":"{}""#,
        patient_id(reading.patient),
        ward_name(reading.ward),
        reading.kind.prefix(),
        reading.device,
        timestamp(reading.observed_at_ms),
        timestamp(reading.delivered_at_ms)
    )
}

/// A reading as one wide JSON object (no trailing newline).
pub fn wide(reading: &Reading) -> String {
    let mut out = head(reading);
    let v = &reading.values;
    for (name, value) in [
        ("heart_rate", v.heart_rate),
        ("resp_rate", v.resp_rate),
        ("spo2", v.spo2),
        ("systolic_bp", v.systolic_bp),
        ("diastolic_bp", v.diastolic_bp),
        ("temperature", v.temperature),
    ] {
        if let Some(value) = value {
            let _ = write!(out, r#","{name}":{value}"#);
        }
    }
    if let Some(scale) = v.spo2_scale {
        let _ = write!(out, r#","spo2_scale":{scale}"#);
    }
    if let Some(on) = v.on_oxygen {
        let _ = write!(out, r#","on_oxygen":{on}"#);
    }
    if let Some(level) = v.consciousness {
        let _ = write!(out, r#","consciousness":"{level}""#);
    }
    out.push('}');
    out
}

/// A reading as narrow JSON objects, one per measurement (no trailing newlines):
/// LOINC codes of the FHIR vital-signs profile with UCUM units, and the column
/// name for what has no such code.
pub fn narrow(reading: &Reading) -> Vec<String> {
    let head = head(reading);
    let v = &reading.values;
    let mut out = Vec::with_capacity(4);
    for (code, value, unit) in [
        ("8867-4", v.heart_rate, "/min"),
        ("9279-1", v.resp_rate, "/min"),
        ("59408-5", v.spo2, "%"),
        ("8480-6", v.systolic_bp, "mm[Hg]"),
        ("8462-4", v.diastolic_bp, "mm[Hg]"),
        ("8310-5", v.temperature, "Cel"),
    ] {
        if let Some(value) = value {
            out.push(format!(
                r#"{head},"code":"{code}","value":{value},"unit":"{unit}"}}"#
            ));
        }
    }
    if let Some(scale) = v.spo2_scale {
        out.push(format!(r#"{head},"code":"spo2_scale","value":{scale}}}"#));
    }
    if let Some(on) = v.on_oxygen {
        out.push(format!(r#"{head},"code":"on_oxygen","value":{on}}}"#));
    }
    if let Some(level) = v.consciousness {
        out.push(format!(
            r#"{head},"code":"consciousness","value":"{level}"}}"#
        ));
    }
    out
}

/// A reading's messages in `shape`.
pub fn messages(reading: &Reading, shape: Shape) -> Vec<String> {
    match shape {
        Shape::Wide => vec![wide(reading)],
        Shape::Narrow => narrow(reading),
    }
}

/// An episode of the ground truth as one JSON object, times in RFC 3339.
pub fn episode(episode: &Episode) -> String {
    format!(
        r#"{{"patient_id":"{}","ward":"{}","kind":"{}","onset_at":"{}","event_at":"{}"}}"#,
        episode.patient_id,
        episode.ward,
        episode.kind.label(),
        timestamp(episode.onset_ms),
        timestamp(episode.event_ms)
    )
}
