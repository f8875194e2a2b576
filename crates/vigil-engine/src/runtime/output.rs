//! Building an aggregate's output rows in its logical schema: group columns (the
//! window among them), then aggregate values, sorted by key so that output never
//! depends on arrival order.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StructArray, TimestampMillisecondArray};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};

use crate::error::{EngineError, Result};

/// A window column for an aggregate's output: its position among the group columns
/// and each row's bounds.
#[derive(Debug, Clone)]
pub(crate) struct WindowColumn {
    /// Index among the group columns.
    pub(crate) position: usize,
    /// Window starts, epoch ms.
    pub(crate) starts: Vec<i64>,
    /// Window ends (exclusive), epoch ms.
    pub(crate) ends: Vec<i64>,
}

impl WindowColumn {
    /// `rows` rows of the one window `[start, end)`.
    pub(crate) fn constant(position: usize, rows: usize, start: i64, end: i64) -> WindowColumn {
        WindowColumn {
            position,
            starts: vec![start; rows],
            ends: vec![end; rows],
        }
    }

    /// The `{window_start, window_end}` array, of type `ty`.
    fn array(self, ty: &DataType) -> Result<ArrayRef> {
        let DataType::Struct(fields) = ty else {
            return Err(EngineError::Internal(format!("window column of type {ty}")));
        };
        let bound = |ms: Vec<i64>| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from(ms).with_timezone("UTC"))
        };
        Ok(Arc::new(StructArray::try_new(
            fields.clone(),
            vec![bound(self.starts), bound(self.ends)],
            None,
        )?))
    }
}

/// One output batch: `keys` with the window (if any) inserted at its position, then
/// `values`; rows sorted by the key columns if `sort` is set.
pub(crate) fn assemble(
    schema: &SchemaRef,
    keys: Vec<ArrayRef>,
    window: Option<WindowColumn>,
    values: Vec<ArrayRef>,
    sort: bool,
) -> Result<RecordBatch> {
    let rows = keys
        .first()
        .or_else(|| values.first())
        .map_or(0, |c| c.len());
    let sort_columns: Vec<SortColumn> = keys
        .iter()
        .map(|k| SortColumn {
            values: Arc::clone(k),
            options: None,
        })
        .collect();
    let mut columns = keys;
    if let Some(w) = window {
        let position = w.position;
        let ty = schema.field(position).data_type();
        columns.insert(position, w.array(ty)?);
    }
    columns.extend(values);
    let batch = RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )?;
    if !sort || sort_columns.is_empty() || rows < 2 {
        return Ok(batch);
    }
    let order = lexsort_to_indices(&sort_columns, None)?;
    Ok(take_record_batch(&batch, &order)?)
}
