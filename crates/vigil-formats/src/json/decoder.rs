//! Decoding JSON vitals messages into the canonical Arrow schema.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder, UInt8Builder,
};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use vigil_core::time::{EpochMillis, TimeBounds, parse_rfc3339_millis};
use vigil_core::{Acvpu, fields, vitals_schema};

use crate::error::{DecodeError, Result};

/// Messages larger than this are rejected unless configured otherwise: a vitals
/// object is a few hundred bytes, so 64 KiB only stops garbage.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Event time as sent: RFC 3339 text or epoch milliseconds.
enum ObservedAt<'a> {
    Millis(i64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ObservedAt<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ObservedAt<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or integer epoch milliseconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(ObservedAt::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
                i64::try_from(v)
                    .map(ObservedAt::Millis)
                    .map_err(|_| E::custom("epoch milliseconds out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
                // 1.7e12 is how some encoders write integral epoch milliseconds.
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(ObservedAt::Millis(v as i64))
                } else {
                    Err(E::custom("epoch milliseconds must be an integer"))
                }
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(ObservedAt::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(ObservedAt::Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

/// One message as it appears on the wire. Strings borrow from the message when they
/// contain no escapes, so decoding allocates nothing per message in the common case.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    patient_id: Cow<'a, str>,
    #[serde(borrow, default)]
    ward: Option<Cow<'a, str>>,
    #[serde(borrow)]
    observed_at: ObservedAt<'a>,
    #[serde(default)]
    resp_rate: Option<f64>,
    #[serde(default)]
    spo2: Option<f64>,
    #[serde(default)]
    spo2_scale: Option<u8>,
    #[serde(default)]
    on_oxygen: Option<bool>,
    #[serde(default)]
    systolic_bp: Option<f64>,
    #[serde(default)]
    diastolic_bp: Option<f64>,
    #[serde(default)]
    heart_rate: Option<f64>,
    #[serde(borrow, default)]
    consciousness: Option<Cow<'a, str>>,
    #[serde(default)]
    temperature: Option<f64>,
}

/// Push-style decoder of JSON vitals messages into batches of the canonical schema.
///
/// Each [`decode`](Self::decode) call takes one complete message and either appends
/// one row or rejects the message with the reason, leaving the decoder exactly as it
/// was: a bad message never corrupts the rows around it. [`flush`](Self::flush)
/// returns the rows decoded so far.
#[derive(Debug)]
pub struct VitalsJsonDecoder {
    bounds: TimeBounds,
    max_message_bytes: usize,
    patient_id: StringBuilder,
    ward: StringBuilder,
    observed_at: TimestampMillisecondBuilder,
    resp_rate: Float64Builder,
    spo2: Float64Builder,
    spo2_scale: UInt8Builder,
    on_oxygen: BooleanBuilder,
    systolic_bp: Float64Builder,
    diastolic_bp: Float64Builder,
    heart_rate: Float64Builder,
    consciousness: StringBuilder,
    temperature: Float64Builder,
}

impl VitalsJsonDecoder {
    /// A decoder accepting event times within `bounds`.
    pub fn new(bounds: TimeBounds) -> Self {
        VitalsJsonDecoder {
            bounds,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            patient_id: StringBuilder::new(),
            ward: StringBuilder::new(),
            observed_at: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            resp_rate: Float64Builder::new(),
            spo2: Float64Builder::new(),
            spo2_scale: UInt8Builder::new(),
            on_oxygen: BooleanBuilder::new(),
            systolic_bp: Float64Builder::new(),
            diastolic_bp: Float64Builder::new(),
            heart_rate: Float64Builder::new(),
            consciousness: StringBuilder::new(),
            temperature: Float64Builder::new(),
        }
    }

    /// Sets the largest message accepted, in bytes.
    pub fn with_max_message_bytes(mut self, limit: usize) -> Self {
        self.max_message_bytes = limit;
        self
    }

    /// Rows decoded and not yet flushed.
    pub fn len(&self) -> usize {
        self.observed_at.len()
    }

    /// Whether no rows are waiting to be flushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes one message (one JSON object, surrounding whitespace allowed) and
    /// appends it as a row, or returns why it was rejected and appends nothing.
    pub fn decode(&mut self, message: &[u8]) -> Result<()> {
        if message.len() > self.max_message_bytes {
            return Err(DecodeError::Oversized {
                size: message.len(),
                limit: self.max_message_bytes,
            });
        }
        let wire: Wire<'_> = serde_json::from_slice(message).map_err(json_error)?;
        // Validate everything before touching a builder, so a rejection appends nothing.
        let patient_id = wire.patient_id.trim();
        if patient_id.is_empty() {
            return Err(DecodeError::Field {
                field: fields::PATIENT_ID,
                reason: "must not be empty".into(),
            });
        }
        let millis: EpochMillis = match &wire.observed_at {
            ObservedAt::Millis(ms) => *ms,
            ObservedAt::Text(t) => parse_rfc3339_millis(t)?,
        };
        let millis = self.bounds.check(millis)?;
        let consciousness = wire
            .consciousness
            .as_deref()
            .map(|c| match Acvpu::parse(c) {
                Some(level) => level.letter(),
                None => c.trim(),
            });

        self.patient_id.append_value(patient_id);
        self.ward.append_option(wire.ward.as_deref());
        self.observed_at.append_value(millis);
        self.resp_rate.append_option(wire.resp_rate);
        self.spo2.append_option(wire.spo2);
        self.spo2_scale.append_value(wire.spo2_scale.unwrap_or(1));
        self.on_oxygen.append_option(wire.on_oxygen);
        self.systolic_bp.append_option(wire.systolic_bp);
        self.diastolic_bp.append_option(wire.diastolic_bp);
        self.heart_rate.append_option(wire.heart_rate);
        self.consciousness.append_option(consciousness);
        self.temperature.append_option(wire.temperature);
        Ok(())
    }

    /// Returns the rows decoded since the last flush as a batch of the canonical
    /// vitals schema (possibly empty).
    pub fn flush(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.patient_id.finish()),
            Arc::new(self.ward.finish()),
            Arc::new(self.observed_at.finish()),
            Arc::new(self.resp_rate.finish()),
            Arc::new(self.spo2.finish()),
            Arc::new(self.spo2_scale.finish()),
            Arc::new(self.on_oxygen.finish()),
            Arc::new(self.systolic_bp.finish()),
            Arc::new(self.diastolic_bp.finish()),
            Arc::new(self.heart_rate.finish()),
            Arc::new(self.consciousness.finish()),
            Arc::new(self.temperature.finish()),
        ];
        Ok(RecordBatch::try_new(vitals_schema(), columns)?)
    }
}

/// serde's message without its "line 1": a message is one line, and callers that read
/// files report their own line numbers.
fn json_error(e: serde_json::Error) -> DecodeError {
    let text = e.to_string();
    let text = match text.rsplit_once(" at line 1 column ") {
        Some((what, column)) => format!("{what} at column {column}"),
        None => text,
    };
    DecodeError::Json(text)
}

#[cfg(test)]
mod tests;
