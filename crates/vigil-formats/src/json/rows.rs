//! Decoding JSON objects into any declared schema (a pipeline's source table), one
//! message at a time, so that a bad message is rejected alone.
//!
//! Every schema a vigil table declares (TEXT, DOUBLE, BIGINT, BOOLEAN,
//! TIMESTAMP columns) is read by the one-pass [`flat`](super::flat) decoder,
//! which rejects a bad message while it is fed. Any other schema goes to
//! arrow-json's `Decoder`, which is batch-minded: after a syntax error it stays
//! failed, a truncated object silently joins onto the next message, and a value of
//! the wrong type only fails at `flush`, failing the whole batch. For it this
//! wrapper checks each message as it is fed (syntax, truncation, exactly one
//! object) and, when a flush fails, decodes the batch's messages one by one to find
//! the bad ones.

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow_json::reader::{Decoder, ReaderBuilder};
use vigil_core::time::TimeBounds;

use super::flat::FlatRows;
use crate::error::{DecodeError, Result};

/// A decoded batch and the messages rejected while flushing it.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Rows of every accepted message, in feeding order (`None` if there were none).
    pub batch: Option<RecordBatch>,
    /// `(index, reason)` of messages rejected at flush, where `index` counts the
    /// messages accepted by [`RowsJsonDecoder::decode`] since the previous flush.
    pub rejected: Vec<(usize, DecodeError)>,
    /// The rejected messages' bytes (as fed, trimmed), in the order of `rejected`,
    /// for a dead-letter output.
    pub rejected_messages: Vec<Vec<u8>>,
}

/// Push-style decoder of JSON objects into a declared schema.
///
/// Feed messages with [`decode`](Self::decode) (an `Err` rejects that message only),
/// then [`flush`](Self::flush) a batch. Missing or `null` fields are NULL; a NULL in a
/// NOT NULL column, a value of the wrong type, a float that is not finite or an
/// unparsable or absurd timestamp rejects its message: while it is fed for the
/// schemas a vigil table declares, at flush (in [`Flushed::rejected`]) for others.
/// Unknown fields are ignored.
pub struct RowsJsonDecoder {
    schema: SchemaRef,
    max_message_bytes: usize,
    /// The one-pass decoder, where the schema allows it; else arrow-json's below.
    flat: Option<FlatRows>,
    decoder: Decoder,
    /// Rows the inner decoder takes before it must be flushed; doubled on demand.
    capacity: usize,
    /// The messages fed since the last flush, back to back, to replay after a failure.
    pending: Vec<u8>,
    /// End offset in `pending` of each fed message.
    ends: Vec<usize>,
    /// Messages are narrow (one measurement each; see [`narrow`](super::narrow)).
    narrow: bool,
}

impl std::fmt::Debug for RowsJsonDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowsJsonDecoder")
            .field("schema", &self.schema)
            .field("pending_messages", &self.ends.len())
            .finish_non_exhaustive()
    }
}

fn new_decoder(schema: &SchemaRef, capacity: usize) -> Result<Decoder> {
    Ok(ReaderBuilder::new(SchemaRef::clone(schema))
        .with_batch_size(capacity)
        .build_decoder()?)
}

impl RowsJsonDecoder {
    /// A decoder into `schema` rejecting messages larger than `max_message_bytes`,
    /// sized for batches of about `batch_size` messages (more are taken if fed).
    pub fn new(
        schema: SchemaRef,
        max_message_bytes: usize,
        batch_size: usize,
    ) -> Result<RowsJsonDecoder> {
        let capacity = batch_size.max(1);
        let decoder = new_decoder(&schema, capacity)?;
        Ok(RowsJsonDecoder {
            flat: FlatRows::new(&schema, capacity),
            schema,
            max_message_bytes,
            decoder,
            capacity,
            pending: Vec::new(),
            ends: Vec::new(),
            narrow: false,
        })
    }

    /// Takes narrow messages (one measurement each), widened into the schema's
    /// vitals columns (see [`narrow`](super::narrow)); rejected messages given
    /// back at flush are in their widened form.
    pub fn narrow(mut self) -> RowsJsonDecoder {
        self.narrow = true;
        self
    }

    /// Decodes with arrow-json even where the one-pass decoder could (the
    /// reference the one-pass decoder is tested and measured against).
    pub fn with_arrow_json(mut self) -> RowsJsonDecoder {
        self.flat = None;
        self
    }

    /// Whether messages accepted by [`decode`](Self::decode) may still be
    /// rejected at [`flush`](Self::flush) (arrow-json's decoder: a wrong type is
    /// found there); the one-pass decoder rejects every bad message while it is
    /// fed.
    pub fn rejects_at_flush(&self) -> bool {
        self.flat.is_none()
    }

    /// The schema rows are decoded into.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Messages accepted since the last flush.
    pub fn len(&self) -> usize {
        match &self.flat {
            Some(flat) => flat.len(),
            None => self.ends.len(),
        }
    }

    /// Whether no message is waiting for a flush.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds one message, which must hold exactly one JSON object.
    pub fn decode(&mut self, message: &[u8]) -> Result<()> {
        if message.len() > self.max_message_bytes {
            return Err(DecodeError::Oversized {
                size: message.len(),
                limit: self.max_message_bytes,
            });
        }
        let widened;
        let mut text = message.trim_ascii();
        if self.narrow && text.first() == Some(&b'{') {
            let column;
            (widened, column) = super::narrow::widen(text)?;
            if self.schema.field_with_name(column).is_err() {
                return Err(DecodeError::Field {
                    field: "code",
                    reason: format!(
                        "the measurement is {column}, which this table does not declare"
                    ),
                });
            }
            text = &widened;
        }
        if text.first() != Some(&b'{') {
            return Err(DecodeError::Json(if text.is_empty() {
                "empty message".to_owned()
            } else {
                "not a JSON object".to_owned()
            }));
        }
        if let Some(flat) = &mut self.flat {
            return flat.decode(text);
        }
        if self.ends.len() >= self.capacity {
            self.capacity *= 2;
            self.replay()?;
        }
        let before = self.decoder.len();
        let outcome = match self.decoder.decode(text) {
            Err(e) => Err(DecodeError::Json(e.to_string())),
            Ok(_) if self.decoder.has_partial_record() => {
                Err(DecodeError::Json("truncated JSON object".to_owned()))
            }
            // The decoder stops early when full, and it has room for one more row:
            // anything left over is a second value.
            Ok(read) if read != text.len() || self.decoder.len() != before + 1 => Err(
                DecodeError::Json("more than one JSON value in the message".to_owned()),
            ),
            Ok(_) => Ok(()),
        };
        match outcome {
            Ok(()) => {
                self.pending.extend_from_slice(text);
                self.ends.push(self.pending.len());
                Ok(())
            }
            Err(e) => {
                self.replay()?;
                Err(e)
            }
        }
    }

    /// Rebuilds the inner decoder from the accepted messages, after a failure left
    /// it in an unknown state.
    fn replay(&mut self) -> Result<()> {
        self.decoder = new_decoder(&self.schema, self.capacity)?;
        let mut start = 0;
        for &end in &self.ends {
            self.decoder.decode(&self.pending[start..end])?;
            start = end;
        }
        Ok(())
    }

    /// Decodes every accepted message into a batch; messages that cannot be (a wrong
    /// type, a NULL in a NOT NULL column) are returned as rejected, not in the batch.
    pub fn flush(&mut self) -> Result<Flushed> {
        if let Some(flat) = &mut self.flat {
            return Ok(Flushed {
                batch: flat.flush()?,
                ..Flushed::default()
            });
        }
        let flushed = match self.decoder.flush() {
            Ok(batch) => Flushed {
                batch,
                rejected: Vec::new(),
                rejected_messages: Vec::new(),
            },
            Err(_) => self.one_by_one()?,
        };
        let flushed = self.screen(flushed)?;
        self.pending.clear();
        self.ends.clear();
        self.decoder = new_decoder(&self.schema, self.capacity)?;
        Ok(flushed)
    }

    /// Rejects the rows arrow-json accepted but vigil must not: a float that is
    /// not finite (`1e400`, `"NaN"`, `"inf"` parse as numbers; a NaN vital sign
    /// would fall outside every scoring band) and an event time before 1970 or
    /// from the year 2200 on (a device clock reset or set years ahead, see
    /// [`TimeBounds::HISTORICAL`]).
    fn screen(&self, mut flushed: Flushed) -> Result<Flushed> {
        let Some(batch) = flushed.batch.take() else {
            return Ok(flushed);
        };
        // The message index of each row: the accepted messages less those
        // rejected at flush.
        let mut rows_of = Vec::with_capacity(batch.num_rows());
        let mut rejected_at = flushed.rejected.iter().map(|(i, _)| *i).peekable();
        for i in 0..self.ends.len() {
            if rejected_at.peek() == Some(&i) {
                rejected_at.next();
            } else {
                rows_of.push(i);
            }
        }
        let mut problems: Vec<Option<DecodeError>> = (0..batch.num_rows()).map(|_| None).collect();
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            match column.data_type() {
                DataType::Float64 | DataType::Float32 => {
                    let values = arrow::compute::cast(column, &DataType::Float64)?;
                    for (row, value) in values.as_primitive::<Float64Type>().iter().enumerate() {
                        if value.is_some_and(|v| !v.is_finite()) && problems[row].is_none() {
                            problems[row] = Some(DecodeError::Value {
                                column: field.name().clone(),
                                reason: "not a finite number".to_owned(),
                            });
                        }
                    }
                }
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    let times = column.as_primitive::<TimestampMillisecondType>();
                    for (row, millis) in times.iter().enumerate() {
                        if let Some(millis) = millis
                            && let Err(e) = TimeBounds::HISTORICAL.check(millis)
                            && problems[row].is_none()
                        {
                            problems[row] = Some(DecodeError::Time(e));
                        }
                    }
                }
                _ => {}
            }
        }
        if problems.iter().all(Option::is_none) {
            flushed.batch = Some(batch);
            return Ok(flushed);
        }
        let keep: BooleanArray = problems.iter().map(|p| Some(p.is_none())).collect();
        for (row, problem) in problems.into_iter().enumerate() {
            if let (Some(problem), Some(&i)) = (problem, rows_of.get(row)) {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                flushed.rejected.push((i, problem));
                flushed
                    .rejected_messages
                    .push(self.pending[start..self.ends[i]].to_vec());
            }
        }
        let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
        flushed.batch = (kept.num_rows() > 0).then_some(kept);
        // In message order, as the caller may expect.
        let mut both: Vec<_> = std::mem::take(&mut flushed.rejected)
            .into_iter()
            .zip(std::mem::take(&mut flushed.rejected_messages))
            .collect();
        both.sort_by_key(|((i, _), _)| *i);
        (flushed.rejected, flushed.rejected_messages) = both.into_iter().unzip();
        Ok(flushed)
    }

    fn one_by_one(&self) -> Result<Flushed> {
        let mut batches = Vec::with_capacity(self.ends.len());
        let mut rejected = Vec::new();
        let mut rejected_messages = Vec::new();
        let mut start = 0;
        for (i, &end) in self.ends.iter().enumerate() {
            let mut single = new_decoder(&self.schema, 1)?;
            let row = single
                .decode(&self.pending[start..end])
                .and_then(|_| single.flush());
            match row {
                Ok(Some(batch)) => batches.push(batch),
                Ok(None) => {
                    rejected.push((i, DecodeError::Json("no row".to_owned())));
                    rejected_messages.push(self.pending[start..end].to_vec());
                }
                Err(e) => {
                    rejected.push((i, readable(&e.to_string())));
                    rejected_messages.push(self.pending[start..end].to_vec());
                }
            }
            start = end;
        }
        let batch = if batches.is_empty() {
            None
        } else {
            Some(arrow::compute::concat_batches(&self.schema, &batches)?)
        };
        Ok(Flushed {
            batch,
            rejected,
            rejected_messages,
        })
    }
}

/// arrow-json's messages, made readable where they are not: a missing NOT NULL
/// field is reported by arrow as "unmasked nulls in non-nullable ... Field { \"name\" ...".
fn readable(message: &str) -> DecodeError {
    if message.contains("non-nullable")
        && let Some(rest) = message.split("Field { \"").nth(1)
        && let Some(name) = rest.split('"').next()
    {
        return DecodeError::Json(format!("required field {name} is missing or null"));
    }
    DecodeError::Json(message.trim_start_matches("Json error: ").to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Float64Array};
    use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("x", DataType::Float64, true),
        ]))
    }

    fn decoder() -> RowsJsonDecoder {
        RowsJsonDecoder::new(schema(), 1024, 2).expect("decoder")
    }

    #[test]
    fn good_messages_decode_into_the_declared_schema() {
        let mut d = decoder();
        d.decode(br#"{"id":"a","at":"2026-11-24T08:00:00Z","x":1.5}"#)
            .expect("ok");
        d.decode(br#"{"id":"b","at":1764000000000,"extra":[1,2]}"#)
            .expect("ok");
        let f = d.flush().expect("flush");
        assert!(f.rejected.is_empty());
        let batch = f.batch.expect("rows");
        assert_eq!(batch.num_rows(), 2);
        let x = batch.column(2).as_primitive::<Float64Type>();
        assert_eq!(x, &Float64Array::from(vec![Some(1.5), None]));
    }

    #[test]
    fn a_truncated_message_does_not_join_the_next() {
        let mut d = decoder();
        assert!(d.decode(br#"{"id":"a","at":1,"x":"#).is_err());
        d.decode(br#"{"id":"b","at":2,"x":2}"#).expect("ok");
        let batch = d.flush().expect("flush").batch.expect("rows");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "b");
    }

    #[test]
    fn syntax_errors_leave_the_decoder_usable() {
        let mut d = decoder();
        d.decode(br#"{"id":"a","at":1}"#).expect("ok");
        assert!(d.decode(br#"{"id": nope}"#).is_err());
        assert!(d.decode(b"").is_err());
        assert!(d.decode(b"[1,2]").is_err());
        assert!(d.decode(br#"{"id":"c","at":3}{"id":"d","at":4}"#).is_err());
        d.decode(br#"{"id":"b","at":2}"#).expect("ok");
        let batch = d.flush().expect("flush").batch.expect("rows");
        assert_eq!(batch.num_rows(), 2);
    }

    /// Feeds `messages` to `d` and flushes: the rejected messages (index,
    /// reason label, reason), whether at decode or at flush, and the rows.
    fn outcome(
        d: &mut RowsJsonDecoder,
        messages: &[&[u8]],
    ) -> (Vec<(usize, &'static str, String)>, Option<RecordBatch>) {
        let mut rejected = Vec::new();
        let mut fed = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match d.decode(m) {
                Ok(()) => fed.push(i),
                Err(e) => rejected.push((i, e.reason_label(), e.to_string())),
            }
        }
        let f = d.flush().expect("flush");
        for ((at, e), bytes) in f.rejected.iter().zip(&f.rejected_messages) {
            assert_eq!(bytes.as_slice(), messages[fed[*at]]);
            rejected.push((fed[*at], e.reason_label(), e.to_string()));
        }
        rejected.sort_by_key(|r| r.0);
        (rejected, f.batch)
    }

    /// The one-pass decoder and arrow-json's.
    fn both() -> [RowsJsonDecoder; 2] {
        [decoder(), decoder().with_arrow_json()]
    }

    #[test]
    fn type_errors_reject_only_their_message() {
        for mut d in both() {
            let messages: [&[u8]; 5] = [
                br#"{"id":"a","at":1,"x":1}"#,
                br#"{"id":"b","at":2,"x":{"no":1}}"#,
                br#"{"at":3,"x":3}"#, // id is NOT NULL
                br#"{"id":"d","at":"yesterday"}"#,
                br#"{"id":"e","at":5,"x":5}"#,
            ];
            let (rejected, batch) = outcome(&mut d, &messages);
            let at: Vec<usize> = rejected.iter().map(|r| r.0).collect();
            assert_eq!(at, [1, 2, 3]);
            assert_eq!(rejected[1].2, "required field id is missing or null");
            assert_eq!(batch.expect("rows").num_rows(), 2);
            // And the next batch starts clean.
            d.decode(br#"{"id":"f","at":6}"#).expect("ok");
            assert_eq!(d.flush().expect("flush").batch.expect("rows").num_rows(), 1);
        }
    }

    #[test]
    fn infinities_nans_and_absurd_times_are_rejected_alone() {
        let messages: [&[u8]; 9] = [
            br#"{"id":"a","at":1,"x":1}"#,
            br#"{"id":"b","at":2,"x":1e400}"#,
            br#"{"id":"c","at":3,"x":"NaN"}"#,
            br#"{"id":"d","at":4,"x":"-inf"}"#,
            br#"{"id":"e","at":-86400000,"x":1}"#,
            br#"{"id":"f","at":"9999-12-31T00:00:00Z","x":1}"#,
            br#"{"id":"g","at":{"no":1}}"#,
            br#"{"id":"h","at":9223372036854775807}"#,
            br#"{"id":"i","at":"2026-11-24T08:00:00Z","x":2}"#,
        ];
        for mut d in both() {
            let (rejected, batch) = outcome(&mut d, &messages);
            let labels: Vec<(usize, &str)> = rejected.iter().map(|r| (r.0, r.1)).collect();
            assert_eq!(
                labels,
                [
                    (1, "invalid_field"),
                    (2, "invalid_field"),
                    (3, "invalid_field"),
                    (4, "bad_timestamp"),
                    (5, "bad_timestamp"),
                    (6, "malformed"),
                    (7, "bad_timestamp"),
                ]
            );
            assert_eq!(rejected[0].2, "x: not a finite number");
            let batch = batch.expect("rows");
            let ids: Vec<_> = batch
                .column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .collect();
            assert_eq!(ids, ["a", "i"]);
        }
    }

    #[test]
    fn oversized_messages_are_rejected() {
        let mut d = RowsJsonDecoder::new(schema(), 16, 2).expect("decoder");
        let err = d
            .decode(br#"{"id":"a","at":1,"x":1.0}"#)
            .expect_err("too big");
        assert_eq!(err.reason_label(), "oversized");
        assert!(d.flush().expect("flush").batch.is_none());
    }
}
