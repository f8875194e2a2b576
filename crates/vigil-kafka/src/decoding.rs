//! Decoding on a second thread: while the run loop polls a step's messages,
//! a worker decodes the ones polled before into Arrow.
//!
//! Polling and decoding were each about a fifth of the loop's time, one after
//! the other for every message. Now the loop copies each message it takes
//! (payload, key, offset, timestamp) into a chunk, hands full chunks to the
//! worker over a bounded channel, and at the end of the step collects what the
//! worker decoded: per partition, the flushed batch, the accepted messages'
//! offsets and timestamps, and the messages that did not decode (sent to the
//! dead-letter topic by the loop, which owns the producer).
//!
//! A step's partition is known to the worker by an id the loop gives it: a
//! partition revoked and assigned again within one step gets a new id and a new
//! decoder, and what the worker decoded for a step the loop dropped is dropped.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use vigil_formats::{DecodeError, Flushed, RowsJsonDecoder};

use crate::error::{KafkaError, Result};

/// Messages per chunk handed to the worker: few enough that the worker starts
/// early and the step's tail is short, many enough that the channel's cost per
/// message is nothing.
const CHUNK_MESSAGES: usize = 256;
/// A chunk is also handed over once its bytes reach this.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks in the channel at once (the memory the worker may lag by).
const CHUNKS_IN_FLIGHT: usize = 8;

/// One message copied for the worker.
struct Copied {
    step: u64,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Range<usize>>,
    payload: Range<usize>,
}

/// Messages for the worker, and the decoders of the steps they start.
#[derive(Default)]
struct Chunk {
    new: Vec<(u64, RowsJsonDecoder)>,
    data: Vec<u8>,
    messages: Vec<Copied>,
}

enum Work {
    Chunk(Chunk),
    /// The step ends: flush every decoder and send what was decoded.
    Finish,
}

/// A message that did not decode, for the dead-letter topic.
#[derive(Debug)]
pub struct Failure {
    /// Its offset.
    pub offset: i64,
    /// Its Kafka timestamp.
    pub timestamp: Option<i64>,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Why it did not decode.
    pub error: DecodeError,
}

/// What the worker decoded of one partition's messages in a step.
#[derive(Debug)]
pub struct Decoded {
    /// The rows of the accepted messages (and any rejected at flush), or the
    /// flush's failure.
    pub flushed: std::result::Result<Flushed, DecodeError>,
    /// Per accepted message: offset and Kafka timestamp.
    pub accepted: Vec<(i64, Option<i64>)>,
    /// Per accepted message: its key, kept only by a decoder that rejects
    /// messages at flush (for their dead letters).
    pub keys: Vec<Option<Vec<u8>>>,
    /// Messages that did not decode, in order.
    pub failures: Vec<Failure>,
}

/// One step's decoding in the worker.
struct Decoding {
    decoder: RowsJsonDecoder,
    accepted: Vec<(i64, Option<i64>)>,
    keys: Vec<Option<Vec<u8>>>,
    failures: Vec<Failure>,
}

/// The loop's end of the decoding worker.
pub struct Decoder {
    work: Option<SyncSender<Work>>,
    done: Receiver<HashMap<u64, Decoded>>,
    worker: Option<JoinHandle<()>>,
    chunk: Chunk,
}

impl Decoder {
    /// Starts the worker thread.
    pub fn start() -> Result<Decoder> {
        let (work, inbox) = sync_channel(CHUNKS_IN_FLIGHT);
        let (outbox, done) = sync_channel(1);
        let worker = std::thread::Builder::new()
            .name("vigil-decode".to_owned())
            .spawn(move || worker(&inbox, &outbox))
            .map_err(|e| KafkaError::Internal(format!("starting the decoding thread: {e}")))?;
        Ok(Decoder {
            work: Some(work),
            done,
            worker: Some(worker),
            chunk: Chunk::default(),
        })
    }

    /// Starts step `step` (one partition's messages), decoded by `decoder`.
    pub fn begin(&mut self, step: u64, decoder: RowsJsonDecoder) {
        self.chunk.new.push((step, decoder));
    }

    /// Copies one message of step `step` for the worker.
    pub fn push(
        &mut self,
        step: u64,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<()> {
        let data = &mut self.chunk.data;
        let key = key.map(|k| {
            let start = data.len();
            data.extend_from_slice(k);
            start..data.len()
        });
        let start = data.len();
        data.extend_from_slice(payload);
        let payload = start..data.len();
        self.chunk.messages.push(Copied {
            step,
            offset,
            timestamp,
            key,
            payload,
        });
        if self.chunk.messages.len() >= CHUNK_MESSAGES || self.chunk.data.len() >= CHUNK_BYTES {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Ends the step: what the worker decoded, by step id.
    pub fn finish(&mut self) -> Result<HashMap<u64, Decoded>> {
        if !self.chunk.messages.is_empty() || !self.chunk.new.is_empty() {
            self.hand_over()?;
        }
        self.send(Work::Finish)?;
        self.done.recv().map_err(|_| stopped())
    }

    fn hand_over(&mut self) -> Result<()> {
        let chunk = std::mem::replace(
            &mut self.chunk,
            Chunk {
                new: Vec::new(),
                data: Vec::with_capacity(CHUNK_BYTES),
                messages: Vec::with_capacity(CHUNK_MESSAGES),
            },
        );
        self.send(Work::Chunk(chunk))
    }

    fn send(&self, work: Work) -> Result<()> {
        self.work
            .as_ref()
            .ok_or_else(stopped)?
            .send(work)
            .map_err(|_| stopped())
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // The worker ends when its channel closes.
        self.work = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn stopped() -> KafkaError {
    KafkaError::Internal("the decoding thread stopped".to_owned())
}

/// The worker: decodes chunks until the loop's end closes.
fn worker(inbox: &Receiver<Work>, outbox: &SyncSender<HashMap<u64, Decoded>>) {
    let mut steps: HashMap<u64, Decoding> = HashMap::new();
    while let Ok(work) = inbox.recv() {
        match work {
            Work::Chunk(chunk) => decode(&mut steps, chunk),
            Work::Finish => {
                let decoded = steps
                    .drain()
                    .map(|(id, mut step)| {
                        let decoded = Decoded {
                            flushed: step.decoder.flush(),
                            accepted: step.accepted,
                            keys: step.keys,
                            failures: step.failures,
                        };
                        (id, decoded)
                    })
                    .collect();
                if outbox.send(decoded).is_err() {
                    return;
                }
            }
        }
    }
}

fn decode(steps: &mut HashMap<u64, Decoding>, chunk: Chunk) {
    for (id, decoder) in chunk.new {
        steps.insert(
            id,
            Decoding {
                decoder,
                accepted: Vec::new(),
                keys: Vec::new(),
                failures: Vec::new(),
            },
        );
    }
    let data = &chunk.data;
    for message in &chunk.messages {
        let Some(step) = steps.get_mut(&message.step) else {
            continue;
        };
        let payload = &data[message.payload.clone()];
        let key = message.key.clone().map(|k| &data[k]);
        match step.decoder.decode(payload) {
            Ok(()) => {
                step.accepted.push((message.offset, message.timestamp));
                if step.decoder.rejects_at_flush() {
                    step.keys.push(key.map(<[u8]>::to_vec));
                }
            }
            Err(error) => step.failures.push(Failure {
                offset: message.offset,
                timestamp: message.timestamp,
                key: key.map(<[u8]>::to_vec),
                payload: payload.to_vec(),
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn decoder() -> RowsJsonDecoder {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RowsJsonDecoder::new(schema, 1024, 1024).expect("decoder")
    }

    fn values(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    /// Two steps' messages, interleaved over several chunks, come back per
    /// step in order, with the bad ones as failures carrying key and payload;
    /// a second step after the first starts empty.
    #[test]
    fn steps_decode_in_order_with_their_failures() {
        let mut decoder_stage = Decoder::start().expect("start");
        decoder_stage.begin(1, decoder());
        decoder_stage.begin(2, decoder());
        let mut expected = (Vec::new(), Vec::new());
        for i in 0..1_000_i64 {
            let step = 1 + u64::from(i % 3 == 0);
            let payload = if i % 97 == 0 {
                b"{\"n\": \"not a number\"}".to_vec()
            } else {
                format!("{{\"n\": {i}}}").into_bytes()
            };
            let key = format!("k{i}");
            decoder_stage
                .push(step, i, Some(i * 10), Some(key.as_bytes()), &payload)
                .expect("push");
            if i % 97 != 0 {
                if step == 1 {
                    expected.0.push(i);
                } else {
                    expected.1.push(i);
                }
            }
        }
        let mut decoded = decoder_stage.finish().expect("finish");
        let one = decoded.remove(&1).expect("step 1");
        let two = decoded.remove(&2).expect("step 2");
        assert!(decoded.is_empty());
        let batch = one.flushed.expect("flush").batch.expect("rows");
        assert_eq!(values(&batch), expected.0);
        assert_eq!(
            one.accepted.iter().map(|&(o, _)| o).collect::<Vec<_>>(),
            expected.0
        );
        assert_eq!(one.accepted[0], (1, Some(10)));
        let two_batch = two.flushed.expect("flush").batch.expect("rows");
        assert_eq!(values(&two_batch), expected.1);
        let failed: Vec<i64> = one
            .failures
            .iter()
            .chain(&two.failures)
            .map(|f| f.offset)
            .collect();
        assert_eq!(failed.len(), 11);
        assert!(failed.iter().all(|o| o % 97 == 0));
        let first = &two.failures[0];
        assert_eq!(first.offset, 0);
        assert_eq!(first.key.as_deref(), Some(&b"k0"[..]));
        assert_eq!(first.payload, b"{\"n\": \"not a number\"}");
        assert_eq!(first.timestamp, Some(0));

        decoder_stage.begin(3, decoder());
        decoder_stage
            .push(3, 5, None, None, b"{\"n\": 5}")
            .expect("push");
        let next = decoder_stage.finish().expect("finish");
        assert_eq!(next.len(), 1);
        let three = &next[&3];
        assert_eq!(
            values(
                three
                    .flushed
                    .as_ref()
                    .expect("flush")
                    .batch
                    .as_ref()
                    .expect("rows")
            ),
            vec![5]
        );
    }

    /// A message for a step the worker was never told of is dropped, and an
    /// empty step finishes empty.
    #[test]
    fn unknown_steps_are_dropped_and_empty_finishes_are_empty() {
        let mut stage = Decoder::start().expect("start");
        assert!(stage.finish().expect("finish").is_empty());
        stage.push(9, 0, None, None, b"{\"n\": 1}").expect("push");
        assert!(stage.finish().expect("finish").is_empty());
    }
}
