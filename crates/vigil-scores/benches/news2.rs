//! NEWS2 four ways, at three batch sizes: the vectorised kernel, the `news2()` SQL
//! function in a DataFusion query, the same score written as SQL CASE expressions,
//! and the row-by-row reference. Run with `cargo bench -p vigil-scores --bench news2`.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use vigil_scores::input::{Flag, Num, Text};
use vigil_scores::news2::{News2Inputs, news2};
use vigil_scores::reference::{self, Row};

const SIZES: [usize; 3] = [1024, 8192, 65536];

/// A small deterministic generator (xorshift), so every run scores the same data.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value in `[lo, hi)`, missing 2 % of the time.
    fn vital(&mut self, lo: f64, hi: f64) -> Option<f64> {
        (self.unit() > 0.02).then(|| lo + (hi - lo) * self.unit())
    }
}

/// Deterministic, realistic-looking vitals with a few missing values.
fn rows(n: usize) -> Vec<Row> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    (0..n)
        .map(|_| Row {
            resp_rate: rng.vital(8.0, 30.0),
            spo2: rng.vital(85.0, 100.0),
            spo2_scale: Some(1.0),
            on_oxygen: Some(rng.unit() < 0.2),
            systolic_bp: rng.vital(80.0, 230.0),
            heart_rate: rng.vital(35.0, 150.0),
            consciousness: Some(if rng.unit() < 0.95 { "A" } else { "V" }.to_owned()),
            temperature: rng.vital(34.5, 40.0),
        })
        .collect()
}

fn batch(rows: &[Row]) -> RecordBatch {
    let f = |get: fn(&Row) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(get).collect::<Float64Array>())
    };
    RecordBatch::try_from_iter([
        ("resp_rate", f(|r| r.resp_rate)),
        ("spo2", f(|r| r.spo2)),
        ("spo2_scale", f(|r| r.spo2_scale)),
        (
            "on_oxygen",
            Arc::new(rows.iter().map(|r| r.on_oxygen).collect::<BooleanArray>()) as ArrayRef,
        ),
        ("systolic_bp", f(|r| r.systolic_bp)),
        ("heart_rate", f(|r| r.heart_rate)),
        (
            "consciousness",
            Arc::new(
                rows.iter()
                    .map(|r| r.consciousness.as_deref())
                    .collect::<StringArray>(),
            ) as ArrayRef,
        ),
        ("temperature", f(|r| r.temperature)),
    ])
    .expect("batch")
}

fn inputs(b: &RecordBatch) -> News2Inputs<'_> {
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;
    let n = |i: usize| Num::Array(b.column(i).as_primitive::<Float64Type>());
    News2Inputs {
        resp_rate: n(0),
        spo2: n(1),
        spo2_scale: n(2),
        on_oxygen: Flag::Array(b.column(3).as_boolean()),
        systolic_bp: n(4),
        heart_rate: n(5),
        consciousness: Text::Utf8(b.column(6).as_string::<i32>()),
        temperature: n(7),
    }
}

fn plan(
    rt: &tokio::runtime::Runtime,
    b: &RecordBatch,
    sql: &str,
) -> (SessionContext, Arc<dyn ExecutionPlan>) {
    // One partition: the plan runs on one core (like the kernel) and has no
    // repartitioning, so it can be executed again and again.
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    vigil_scores::udf::register(&ctx);
    ctx.register_batch("vitals", b.clone()).expect("register");
    let plan = rt.block_on(async {
        ctx.sql(sql)
            .await
            .expect("sql")
            .create_physical_plan()
            .await
            .expect("plan")
    });
    (ctx, plan)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("news2");
    for &size in &SIZES {
        let rows = rows(size);
        let b = batch(&rows);
        group.throughput(Throughput::Elements(size as u64));

        group.bench_with_input(BenchmarkId::new("kernel", size), &b, |bench, b| {
            bench.iter(|| black_box(news2(&inputs(b), b.num_rows()).total()))
        });

        let udf_sql = "SELECT news2(resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, \
                       heart_rate, consciousness, temperature) FROM vitals";
        for (name, sql) in [
            ("sql_udf", udf_sql),
            ("sql_case", include_str!("news2_case.sql")),
        ] {
            let (ctx, plan) = plan(&rt, &b, sql);
            group.bench_function(BenchmarkId::new(name, size), |bench| {
                bench.iter(|| {
                    rt.block_on(collect(Arc::clone(&plan), ctx.task_ctx()))
                        .expect("run")
                })
            });
        }

        group.bench_with_input(BenchmarkId::new("reference", size), &rows, |bench, rows| {
            bench.iter(|| {
                rows.iter()
                    .map(|r| reference::news2(r).total)
                    .fold(0u64, |acc, t| acc + u64::from(t.unwrap_or(0)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
