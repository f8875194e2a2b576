//! JSON vitals: one object per message (a Kafka message or a line of a file).
//!
//! ```json
//! {"patient_id": "p-17", "ward": "4B", "observed_at": "2026-11-24T08:15:00Z",
//!  "resp_rate": 22, "spo2": 93, "spo2_scale": 1, "on_oxygen": false,
//!  "systolic_bp": 104, "diastolic_bp": 68, "heart_rate": 112,
//!  "consciousness": "alert", "temperature": 38.4}
//! ```
//!
//! `patient_id` and `observed_at` are required; every vital is optional (absent or
//! `null` is *not measured*). `observed_at` is an RFC 3339 string or epoch
//! milliseconds. `consciousness` is an ACVPU letter or word in any case, stored as its
//! letter; unknown text is kept so that scoring reports it invalid. `spo2_scale`
//! defaults to 1. Unknown fields are ignored; a wrong JSON type is an error.

mod decoder;
mod encoder;
mod flat;
pub mod narrow;
mod rows;

pub use decoder::{DEFAULT_MAX_MESSAGE_BYTES, VitalsJsonDecoder};
pub use encoder::write_json_lines;
pub use rows::{Flushed, RowsJsonDecoder};
