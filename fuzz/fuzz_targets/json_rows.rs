//! The generic JSON decoder every pipeline source uses (`format = 'json'` and
//! `'json-narrow'`), fed arbitrary messages: it never panics, every message is
//! either a row or a rejection with a reason, and no row it passes carries a
//! non-finite number or an event time outside the historical bounds.
#![no_main]

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, TimestampMillisecondType};
use libfuzzer_sys::fuzz_target;
use vigil_core::time::TimeBounds;
use vigil_formats::RowsJsonDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let narrow = control & 1 == 1;
    // Flush every `every` messages (1 to 8), so failures mid-batch are replayed.
    let every = usize::from((control >> 1) & 7) + 1;
    // The canonical schema (its UINT8 column leaves it to arrow-json) or the
    // `vitals` table the shipped pipelines declare (the one-pass decoder).
    let schema = if control & 16 == 0 {
        vigil_core::vitals_schema()
    } else {
        declared_vitals()
    };
    let Ok(decoder) = RowsJsonDecoder::new(schema, 4096, 4) else {
        panic!("a decoder over the vitals schema");
    };
    let mut decoder = if narrow { decoder.narrow() } else { decoder };
    let (mut accepted, mut fed) = (0usize, 0usize);
    for message in body.split(|&b| b == b'\n') {
        fed += 1;
        if decoder.decode(message).is_ok() {
            accepted += 1;
        }
        if fed % every == 0 {
            check(&mut decoder, &mut accepted);
        }
    }
    check(&mut decoder, &mut accepted);
});

/// The canonical vitals columns as a pipeline's `CREATE TABLE` declares them:
/// every number a DOUBLE.
fn declared_vitals() -> std::sync::Arc<arrow::datatypes::Schema> {
    use arrow::datatypes::{Field, Schema};
    let fields: Vec<Field> = vigil_core::vitals_schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::UInt8 => Field::new(f.name(), DataType::Float64, f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    std::sync::Arc::new(Schema::new(fields))
}

/// Flushes, and checks that every accepted message is a row or a rejection and
/// that the rows are clean.
fn check(decoder: &mut RowsJsonDecoder, accepted: &mut usize) {
    let flushed = decoder.flush().expect("flush never fails as a whole");
    let rows = flushed.batch.as_ref().map_or(0, |b| b.num_rows());
    assert_eq!(
        rows + flushed.rejected.len(),
        *accepted,
        "every message accounted for"
    );
    assert_eq!(flushed.rejected.len(), flushed.rejected_messages.len());
    *accepted = 0;
    let Some(batch) = flushed.batch else {
        return;
    };
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::Float64 => {
                let values = column.as_primitive::<Float64Type>();
                for v in values.iter().flatten() {
                    assert!(v.is_finite(), "{}: {v}", field.name());
                }
            }
            DataType::Timestamp(_, _) => {
                let times = column.as_primitive::<TimestampMillisecondType>();
                for t in times.iter().flatten() {
                    assert!(
                        TimeBounds::HISTORICAL.check(t).is_ok(),
                        "{}: {t}",
                        field.name()
                    );
                }
            }
            _ => {}
        }
        if !field.is_nullable() {
            assert_eq!(column.null_count(), 0, "{} is NOT NULL", field.name());
        }
    }
}
