//! Arrow batches out as JSON lines.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow_json::writer::LineDelimited;

use crate::error::Result;

/// Writes every row of `batches` as one JSON object per line. NULLs are written as
/// explicit `null`s, so a reader sees that a score is missing rather than a field
/// that was forgotten; timestamps are RFC 3339.
pub fn write_json_lines<W: Write>(writer: W, batches: &[&RecordBatch]) -> Result<W> {
    let mut out = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, LineDelimited>(writer);
    out.write_batches(batches)?;
    out.finish()?;
    Ok(out.into_inner())
}
