//! JSON decoding into Arrow, bytes per second on one core: the decoder of a
//! declared table (what every Kafka and file source uses) and the canonical
//! vitals decoder, over batches of 8,192 monitor readings shaped like the
//! end-to-end bench's (142 bytes on average: heart rate, SpO2 and respiration
//! every time, blood pressure, temperature and consciousness every 12th).
//!
//! `cargo bench -p vigil-formats --bench decode`

use std::hint::black_box;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_core::time::TimeBounds;
use vigil_formats::json::{RowsJsonDecoder, VitalsJsonDecoder};

const BATCH: usize = 8192;
const BASE_MS: i64 = 1_795_507_200_000;

/// The `vitals` table of `pipelines/news2_per_patient.sql`, as the engine
/// declares it.
fn vitals_table() -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let f = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, false),
        Field::new("ward", DataType::Utf8, true),
        Field::new("observed_at", time.clone(), false),
        Field::new("received_at", time, true),
        f("resp_rate"),
        f("spo2"),
        f("spo2_scale"),
        Field::new("on_oxygen", DataType::Boolean, true),
        f("systolic_bp"),
        f("diastolic_bp"),
        f("heart_rate"),
        Field::new("consciousness", DataType::Utf8, true),
        f("temperature"),
    ]))
}

/// Reading `n` of 2,000 patients, one round every 5 s.
fn reading(n: usize) -> String {
    let patients = 2_000;
    let (patient, round) = (n % patients, n / patients);
    let at = BASE_MS + round as i64 * 5_000 + (patient as i64 * 7) % 5_000;
    let wobble = ((n * 7919) % 13) as f64;
    let mut json = format!(
        r#"{{"patient_id":"p{patient:06}","ward":"w{}","observed_at":{at},"heart_rate":{},"spo2":{},"resp_rate":{},"on_oxygen":false"#,
        patient % 20,
        70.0 + wobble,
        95.0 + wobble / 4.0,
        14.0 + wobble / 3.0
    );
    if round.is_multiple_of(12) {
        json.push_str(&format!(
            r#","systolic_bp":{},"diastolic_bp":{},"temperature":{},"consciousness":"A""#,
            120.0 + wobble,
            80.0 - wobble,
            36.8 + wobble / 20.0
        ));
    }
    json.push('}');
    json
}

fn decode(c: &mut Criterion) {
    // 12 rounds of patients so that every 12th-round field shows up in its share.
    let messages: Vec<String> = (0..BATCH).map(|n| reading(n * 3 % 24_000)).collect();
    let bytes: usize = messages.iter().map(String::len).sum();
    let mut group = c.benchmark_group("json_decode");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("declared_table", |b| {
        let mut decoder = RowsJsonDecoder::new(vitals_table(), 64 * 1024, BATCH).expect("decoder");
        b.iter(|| {
            for m in &messages {
                decoder.decode(m.as_bytes()).expect("decodes");
            }
            let flushed = decoder.flush().expect("flush");
            assert!(flushed.rejected.is_empty());
            black_box(flushed.batch)
        });
    });
    group.bench_function("canonical_vitals", |b| {
        let mut decoder = VitalsJsonDecoder::new(TimeBounds::HISTORICAL);
        b.iter(|| {
            for m in &messages {
                decoder.decode(m.as_bytes()).expect("decodes");
            }
            black_box(decoder.flush().expect("flush"))
        });
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
