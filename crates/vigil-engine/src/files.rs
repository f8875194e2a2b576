//! File connectors: JSON-lines sources (a file or stdin) and sinks (a file or
//! stdout), for tests, replays and backfills.
//!
//! ```sql
//! CREATE TABLE vitals (...) WITH (connector = 'file', path = 'vitals.jsonl', format = 'json');
//! CREATE TABLE scores WITH (connector = 'file', path = '-', format = 'json');   -- stdout
//! ```
//!
//! A source reads one JSON object per line into its declared schema. A line that
//! does not decode (bad JSON, a wrong type, a missing NOT NULL or event-time value)
//! is rejected with its line number and reason; the others go on. A source is one
//! partition.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{Field, Schema, SchemaRef, TimestampMillisecondType};
use arrow_json::writer::LineDelimited;
use vigil_formats::{DecodeError, RowsJsonDecoder};

use crate::error::{EngineError, Result};
use crate::sql::ddl::TableDecl;

/// The path that means stdin (for a source) or stdout (for a sink).
pub const STANDARD_STREAM: &str = "-";

/// Resolves a table's path option against `base` (unless absolute or `-`).
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    if path == STANDARD_STREAM {
        PathBuf::from(path)
    } else {
        base.join(path)
    }
}

/// The schema a source decodes into: as declared, but with the event-time column
/// required, since a row without an event time cannot be placed in time.
pub fn decode_schema(table: &TableDecl) -> SchemaRef {
    let Some(et) = &table.event_time else {
        return Arc::clone(&table.schema);
    };
    let fields: Vec<Field> = table
        .schema
        .fields()
        .iter()
        .map(|f| {
            let f = f.as_ref().clone();
            if *f.name() == et.column {
                f.with_nullable(false)
            } else {
                f
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// A line rejected by a source.
#[derive(Debug)]
pub struct Rejected {
    /// 1-based line number in the source.
    pub line: u64,
    /// Why.
    pub reason: DecodeError,
}

/// Reads a JSON-lines source in batches.
pub struct JsonLinesSource {
    reader: Box<dyn BufRead + Send>,
    decoder: RowsJsonDecoder,
    batch_size: usize,
    line: u64,
    /// Line numbers of the messages fed since the last flush.
    fed_lines: Vec<u64>,
    context: String,
    finished: bool,
    buffer: Vec<u8>,
    event_time: Option<usize>,
}

impl std::fmt::Debug for JsonLinesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSource")
            .field("context", &self.context)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// One batch read from a source.
#[derive(Debug)]
pub struct SourceBatch {
    /// Decoded rows (may be empty if every line was rejected).
    pub batch: Option<RecordBatch>,
    /// Lines rejected.
    pub rejected: Vec<Rejected>,
    /// Latest event time in the batch.
    pub max_event_time: Option<i64>,
}

impl JsonLinesSource {
    /// Opens `table`'s source at `path` (`-` for stdin).
    pub fn open(
        table: &TableDecl,
        path: &Path,
        batch_size: usize,
        max_message_bytes: usize,
    ) -> Result<JsonLinesSource> {
        let context = format!("table {} (file {})", table.name, path.display());
        let reader: Box<dyn BufRead + Send> = if path.as_os_str() == STANDARD_STREAM {
            Box::new(BufReader::new(io::stdin()))
        } else {
            let file = File::open(path).map_err(|source| EngineError::Io {
                context: format!("cannot open {context}"),
                source,
            })?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        Self::from_reader(table, reader, batch_size, max_message_bytes, context)
    }

    /// A source reading from `reader` (tests, stdin).
    pub fn from_reader(
        table: &TableDecl,
        reader: Box<dyn BufRead + Send>,
        batch_size: usize,
        max_message_bytes: usize,
        context: String,
    ) -> Result<JsonLinesSource> {
        let schema = decode_schema(table);
        let event_time = match &table.event_time {
            Some(et) => Some(schema.index_of(&et.column)?),
            None => None,
        };
        Ok(JsonLinesSource {
            reader,
            decoder: decoder(table, schema, max_message_bytes, batch_size)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
            batch_size: batch_size.max(1),
            line: 0,
            fed_lines: Vec::new(),
            context,
            finished: false,
            buffer: Vec::new(),
            event_time,
        })
    }

    /// The next batch of up to `batch_size` lines, or `None` at end of input.
    pub fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        if self.finished {
            return Ok(None);
        }
        let mut rejected = Vec::new();
        let mut lines = 0;
        while lines < self.batch_size {
            self.buffer.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .map_err(|source| EngineError::Io {
                    context: format!("reading {}", self.context),
                    source,
                })?;
            if read == 0 {
                self.finished = true;
                break;
            }
            self.line += 1;
            if self.buffer.trim_ascii().is_empty() {
                continue; // blank lines are not messages
            }
            lines += 1;
            match self.decoder.decode(&self.buffer) {
                Ok(()) => self.fed_lines.push(self.line),
                Err(reason) => rejected.push(Rejected {
                    line: self.line,
                    reason,
                }),
            }
        }
        let flushed = self
            .decoder
            .flush()
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        for (i, reason) in flushed.rejected {
            rejected.push(Rejected {
                line: self.fed_lines.get(i).copied().unwrap_or(0),
                reason,
            });
        }
        self.fed_lines.clear();
        rejected.sort_by_key(|r| r.line);
        if lines == 0 && self.finished {
            return Ok(None);
        }
        let max_event_time = match (&flushed.batch, self.event_time) {
            (Some(batch), Some(i)) => {
                arrow::compute::max(batch.column(i).as_primitive::<TimestampMillisecondType>())
            }
            _ => None,
        };
        Ok(Some(SourceBatch {
            batch: flushed.batch,
            rejected,
            max_event_time,
        }))
    }
}

/// `batch` in a sink's declared schema (columns renamed and cast, by position), or
/// as it is if the sink declares no columns: what every sink writes.
pub fn declared_rows(sink: &TableDecl, batch: &RecordBatch) -> Result<RecordBatch> {
    if sink.schema.fields().is_empty() {
        return Ok(batch.clone());
    }
    in_schema(&sink.schema, batch)
}

fn in_schema(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| cast(c, f.data_type()))
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Writes rows as JSON lines to a file or stdout, in the sink's declared schema
/// (columns renamed and cast) when it declares one.
pub struct JsonLinesSink {
    writer: Box<dyn Write + Send>,
    declared: Option<SchemaRef>,
    context: String,
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl JsonLinesSink {
    /// Creates `path` (`-` for stdout) for `table`.
    pub fn create(table: &TableDecl, path: &Path) -> Result<JsonLinesSink> {
        let context = format!("table {} (file {})", table.name, path.display());
        let writer: Box<dyn Write + Send> = if path.as_os_str() == STANDARD_STREAM {
            Box::new(BufWriter::new(io::stdout()))
        } else {
            let file = File::create(path).map_err(|source| EngineError::Io {
                context: format!("cannot create {context}"),
                source,
            })?;
            Box::new(BufWriter::new(file))
        };
        Ok(Self::to_writer(table, writer, context))
    }

    /// A sink writing to `writer`; `None` for the table writes rows as they come.
    pub fn to_writer(
        table: &TableDecl,
        writer: Box<dyn Write + Send>,
        context: String,
    ) -> JsonLinesSink {
        let declared = (!table.schema.fields().is_empty()).then(|| Arc::clone(&table.schema));
        JsonLinesSink {
            writer,
            declared,
            context,
        }
    }

    /// A sink writing rows as they come (late-data outputs).
    pub fn raw(writer: Box<dyn Write + Send>, context: String) -> JsonLinesSink {
        JsonLinesSink {
            writer,
            declared: None,
            context,
        }
    }

    /// Writes `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = match &self.declared {
            None => batch.clone(),
            Some(schema) => in_schema(schema, batch)?,
        };
        let mut out = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, LineDelimited>(&mut self.writer);
        out.write(&batch)?;
        out.finish()?;
        Ok(())
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(|source| EngineError::Io {
            context: format!("writing {}", self.context),
            source,
        })
    }
}

/// The decoder of a source table's messages: `json`, or `json-narrow` widened into
/// its columns.
pub fn decoder(
    table: &TableDecl,
    schema: SchemaRef,
    max_message_bytes: usize,
    batch_size: usize,
) -> std::result::Result<RowsJsonDecoder, DecodeError> {
    let decoder = RowsJsonDecoder::new(schema, max_message_bytes, batch_size)?;
    Ok(if crate::plan::is_narrow(table) {
        decoder.narrow()
    } else {
        decoder
    })
}
