//! Payload decoders and encoders between vitals messages and Arrow.
//!
//! Decoders are push-style, like arrow-rs's: feed messages one at a time with
//! `decode`, then `flush` a `RecordBatch` of everything accepted. A message is accepted
//! or rejected whole, with a reason; one bad message never affects another.

pub mod error;
pub mod json;

pub use error::{DecodeError, Result};
pub use json::{Flushed, RowsJsonDecoder, VitalsJsonDecoder, write_json_lines};
