//! The trend aggregates through DataFusion SQL: known figures, and the same
//! figures whether the rows are aggregated in one pass or as partial states of
//! several partitions merged (the mechanism panes and instances rely on).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::Float64Type;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

const HOUR_MS: i64 = 3_600_000;
/// 2026-11-24T00:00Z.
const START_MS: i64 = 1_795_478_400_000;

/// Rows of three wards, a reading every 5 minutes for 12 hours: w1 rises 0.5 an
/// hour with noise, w2 is flat noise, w3 steps up by 3 sds at hour 8.
fn rows() -> Vec<(String, i64, Option<f64>)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 1000) as f64 / 1000.0 - 0.5
    };
    let mut rows = Vec::new();
    for i in 0..144_i64 {
        let t = START_MS + i * 5 * 60_000;
        let hours = i as f64 / 12.0;
        rows.push(("w1".to_owned(), t, Some(3.0 + 0.5 * hours + noise())));
        rows.push(("w2".to_owned(), t, Some(3.0 + noise())));
        let step = if hours >= 8.0 { 1.0 } else { 0.0 };
        rows.push(("w3".to_owned(), t, Some(3.0 + step + noise() * 0.6)));
    }
    // NULLs and non-finite values are skipped, not counted.
    rows.push(("w2".to_owned(), START_MS, None));
    rows.push(("w2".to_owned(), START_MS + HOUR_MS, Some(f64::NAN)));
    rows
}

fn batch(rows: &[(String, i64, Option<f64>)]) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "ward",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )) as ArrayRef,
        ),
        (
            "t",
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1))
                    .with_timezone("UTC"),
            ),
        ),
        (
            "v",
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
        ),
    ])
    .expect("batch")
}

const QUERY: &str = "SELECT ward, trend_slope(v, t), trend_p_value(v, t), mann_kendall_z(v, t),
  mann_kendall_p(v, t), cusum(v, t) FROM readings GROUP BY ward ORDER BY ward";

/// The query's figures per ward, over the rows split into `parts` partitions
/// (round robin, so every partition holds part of every ward).
fn figures(parts: usize) -> Vec<[Option<f64>; 5]> {
    let rows = rows();
    let partitions: Vec<Vec<RecordBatch>> = (0..parts)
        .map(|p| {
            let mine: Vec<_> = rows.iter().skip(p).step_by(parts).cloned().collect();
            vec![batch(&mine)]
        })
        .collect();
    let schema = partitions[0][0].schema();
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(parts));
    vigil_scores::udf::register(&ctx);
    let table = MemTable::try_new(schema, partitions).expect("table");
    ctx.register_table("readings", Arc::new(table))
        .expect("register");
    let out = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(async { ctx.sql(QUERY).await?.collect().await })
        .expect("query");
    let out = arrow::compute::concat_batches(&out[0].schema(), &out).expect("concat");
    (0..out.num_rows())
        .map(|r| {
            std::array::from_fn(|c| {
                let col = out.column(c + 1).as_primitive::<Float64Type>();
                (!arrow::array::Array::is_null(col, r)).then(|| col.value(r))
            })
        })
        .collect()
}

#[test]
fn trends_are_found_where_they_are_and_not_where_they_are_not() {
    let f = figures(1);
    let [slope, p, mk_z, mk_p, _] = f[0].map(|x| x.expect("w1 figure"));
    assert!((slope - 0.5).abs() < 0.05, "w1 slope {slope}");
    assert!(p < 1e-10 && mk_p < 1e-10, "w1 p {p}, mk {mk_p}");
    assert!(mk_z > 5.0, "w1 z {mk_z}");
    let [slope, p, mk_z, mk_p, _] = f[1].map(|x| x.expect("w2 figure"));
    assert!(slope.abs() < 0.05, "w2 slope {slope}");
    assert!(p > 0.01 && mk_p > 0.01, "w2 p {p}, mk {mk_p}");
    assert!(mk_z.abs() < 2.6, "w2 z {mk_z}");
    // The step shows as a CUSUM far above the usual 4-5 threshold.
    let w3_cusum = f[2][4].expect("w3 cusum");
    assert!(w3_cusum > 5.0, "w3 cusum {w3_cusum}");
    let w2_cusum = f[1][4].expect("w2 cusum");
    assert!(w2_cusum < w3_cusum / 2.0, "w2 cusum {w2_cusum}");
}

#[test]
fn partial_states_of_partitions_merge_to_the_one_pass_figures() {
    let one = figures(1);
    for parts in [2, 3, 4] {
        let merged = figures(parts);
        assert_eq!(merged.len(), one.len());
        for (a, b) in one.iter().zip(&merged) {
            for (x, y) in a.iter().zip(b) {
                let (x, y) = (x.expect("one pass"), y.expect("merged"));
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    "{parts} parts: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn too_little_data_is_null_and_wrong_types_are_planning_errors() {
    let ctx = SessionContext::new();
    vigil_scores::udf::register(&ctx);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let two: Vec<_> = rows().into_iter().filter(|r| r.0 == "w1").take(2).collect();
    ctx.register_batch("readings", batch(&two))
        .expect("register");
    let out = runtime
        .block_on(async {
            ctx.sql("SELECT trend_slope(v, t), trend_p_value(v, t), mann_kendall_p(v, t), cusum(v, t) FROM readings")
                .await?
                .collect()
                .await
        })
        .expect("query");
    // Two points: a slope, but no p-value, no Mann-Kendall, no CUSUM.
    assert!(!arrow::array::Array::is_null(out[0].column(0), 0));
    for c in 1..4 {
        assert!(
            arrow::array::Array::is_null(out[0].column(c), 0),
            "column {c}"
        );
    }
    let err = runtime
        .block_on(async { ctx.sql("SELECT trend_slope(v, v) FROM readings").await })
        .expect_err("a DOUBLE time is refused");
    assert!(
        err.to_string()
            .contains("trend_slope(value, time) takes a number and a TIMESTAMP"),
        "{err}"
    );
    let err = runtime
        .block_on(async { ctx.sql("SELECT cusum(ward, t) FROM readings").await })
        .expect_err("a text value is refused");
    assert!(err.to_string().contains("cusum(value, time)"), "{err}");
}
