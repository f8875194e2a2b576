//! The score functions through DataFusion SQL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt8Type};
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use vigil_scores::reference::Row;

use crate::common::{Columns, normal};

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    vigil_scores::udf::register(&ctx);
    ctx
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

fn vitals_batch(rows: &[Row]) -> RecordBatch {
    let c = Columns::of(rows);
    RecordBatch::try_from_iter([
        ("resp_rate", Arc::new(c.rr) as ArrayRef),
        ("spo2", Arc::new(c.spo2)),
        ("spo2_scale", Arc::new(c.scale)),
        ("on_oxygen", Arc::new(c.oxygen)),
        ("systolic_bp", Arc::new(c.sbp)),
        ("heart_rate", Arc::new(c.hr)),
        ("consciousness", Arc::new(c.consciousness)),
        ("temperature", Arc::new(c.temp)),
    ])
    .expect("batch")
}

async fn query(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<RecordBatch> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

const ALL_ARGS: &str =
    "resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, heart_rate, consciousness, temperature";

#[test]
fn scores_bands_and_details_from_sql() {
    runtime().block_on(async {
        let ctx = context();
        let rows = [
            normal(),
            Row { resp_rate: Some(26.0), ..normal() },
            Row { resp_rate: Some(26.0), heart_rate: Some(135.0), consciousness: Some("voice".into()), ..normal() },
            Row { temperature: None, heart_rate: Some(400.0), ..normal() },
        ];
        ctx.register_batch("vitals", vitals_batch(&rows)).expect("register");
        let sql = format!(
            "SELECT news2({ALL_ARGS}) AS s, news2_band({ALL_ARGS}) AS b, news2_partial({ALL_ARGS}) AS p,
                    news2_detail({ALL_ARGS})['missing'] AS m, news2_detail({ALL_ARGS})['invalid'] AS i,
                    news2_detail({ALL_ARGS})['subscores']['resp_rate'] AS rr,
                    qsofa(resp_rate, systolic_bp, consciousness) AS q,
                    mews(resp_rate, systolic_bp, heart_rate, consciousness, temperature) AS me,
                    sirs(resp_rate, heart_rate, temperature) AS si
             FROM vitals"
        );
        let out = query(&ctx, &sql).await.expect("query");
        let s = out.column(0).as_primitive::<UInt8Type>();
        assert_eq!(s.iter().collect::<Vec<_>>(), [Some(0), Some(3), Some(9), None]);
        let b = out.column(1).as_string::<i32>();
        assert_eq!(b.iter().collect::<Vec<_>>(), [Some("low"), Some("low-medium"), Some("high"), None]);
        let p = out.column(2).as_primitive::<UInt8Type>();
        assert_eq!(p.iter().collect::<Vec<_>>(), [Some(0), Some(3), Some(9), Some(0)]);
        let m = out.column(3).as_list::<i32>();
        assert_eq!(m.value(3).as_string::<i32>().value(0), "temperature");
        assert_eq!(m.value(0).len(), 0);
        let i = out.column(4).as_list::<i32>();
        assert_eq!(i.value(3).as_string::<i32>().value(0), "heart_rate");
        let rr = out.column(5).as_primitive::<UInt8Type>();
        assert_eq!(rr.iter().collect::<Vec<_>>(), [Some(0), Some(3), Some(3), Some(0)]);
        let q = out.column(6).as_primitive::<UInt8Type>();
        assert_eq!(q.iter().collect::<Vec<_>>(), [Some(0), Some(1), Some(2), Some(0)]);
        let me = out.column(7).as_primitive::<UInt8Type>();
        assert_eq!(me.iter().collect::<Vec<_>>(), [Some(0), Some(2), Some(6), None]);
        let si = out.column(8).as_primitive::<UInt8Type>();
        assert_eq!(si.iter().collect::<Vec<_>>(), [Some(0), Some(1), Some(2), None]);
    });
}

#[test]
fn literals_of_any_numeric_type_and_scalar_calls() {
    runtime().block_on(async {
        let ctx = context();
        let out = query(
            &ctx,
            "SELECT news2(26, 95.5, 1, true, CAST(100 AS DECIMAL(5,1)), 72, 'New Confusion', 36.05) AS s,
                    news2_band(14, 97, NULL, false, 120, 70, 'A', 37) AS b,
                    news2(14, 97, 1, NULL, 120, 70, 'A', 37) AS incomplete,
                    qsofa(22, 100, arrow_cast('V', 'LargeUtf8')) AS q",
        )
        .await
        .expect("query");
        // rr 3 + spo2 95.5 (above 95: the >=96 band) 0 + oxygen 2 + sbp 2 + pulse 0 + C 3 + 36.05 0
        assert_eq!(out.column(0).as_primitive::<UInt8Type>().value(0), 10);
        assert_eq!(out.column(1).as_string::<i32>().value(0), "low");
        assert!(out.column(2).is_null(0));
        assert_eq!(out.column(3).as_primitive::<UInt8Type>().value(0), 3);
    });
}

#[test]
fn wrong_argument_counts_and_types_are_readable_planning_errors() {
    runtime().block_on(async {
        let ctx = context();
        ctx.register_batch("vitals", vitals_batch(&[normal()]))
            .expect("register");
        let err = query(&ctx, "SELECT news2(resp_rate, spo2) FROM vitals")
            .await
            .expect_err("two arguments");
        let msg = err.to_string();
        assert!(
            msg.contains("news2(resp_rate, spo2, spo2_scale, on_oxygen"),
            "{msg}"
        );
        assert!(msg.contains("takes 8 arguments, got 2"), "{msg}");

        let err = query(
            &ctx,
            "SELECT qsofa(consciousness, systolic_bp, consciousness) FROM vitals",
        )
        .await
        .expect_err("text as a number");
        let msg = err.to_string();
        assert!(
            msg.contains("argument 1 (resp_rate) must be a number, got Utf8"),
            "{msg}"
        );

        let err = query(
            &ctx,
            "SELECT sirs(resp_rate, heart_rate, on_oxygen) FROM vitals",
        )
        .await
        .expect_err("boolean as a number");
        assert!(
            err.to_string()
                .contains("argument 3 (temperature) must be a number"),
            "{err}"
        );

        let err = query(
            &ctx,
            "SELECT mews(resp_rate, systolic_bp, heart_rate, 3, temperature) FROM vitals",
        )
        .await
        .expect_err("number as text");
        assert!(
            err.to_string()
                .contains("argument 4 (consciousness) must be text"),
            "{err}"
        );
    });
}

fn case_row() -> impl Strategy<Value = Row> {
    let v = |lo: i32, hi: i32| {
        proptest::option::weighted(0.95, (lo * 2..hi * 2).prop_map(|x| x as f64 / 2.0))
    };
    (
        v(0, 90),
        v(30, 105),
        prop_oneof![
            Just(None),
            Just(Some(1.0)),
            Just(Some(2.0)),
            Just(Some(3.0))
        ],
        proptest::option::weighted(0.95, any::<bool>()),
        v(20, 320),
        v(10, 320),
        proptest::option::weighted(
            0.95,
            prop_oneof![Just("A"), Just("v"), Just("Alert"), Just("pain"), Just("?")],
        ),
        v(20, 47),
    )
        .prop_map(|(rr, spo2, scale, o2, sbp, hr, c, t)| Row {
            resp_rate: rr,
            spo2,
            spo2_scale: scale,
            on_oxygen: o2,
            systolic_bp: sbp,
            heart_rate: hr,
            consciousness: c.map(str::to_owned),
            temperature: t,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The benchmark's CASE baseline computes the same NEWS2 as the function, so the
    /// speed comparison compares like with like.
    #[test]
    fn case_expression_baseline_agrees_with_the_function(rows in proptest::collection::vec(case_row(), 1..300)) {
        runtime().block_on(async {
            let ctx = context();
            ctx.register_batch("vitals", vitals_batch(&rows)).expect("register");
            let case = query(&ctx, include_str!("../../benches/news2_case.sql")).await.expect("case");
            let udf = query(&ctx, &format!("SELECT news2({ALL_ARGS}) FROM vitals")).await.expect("udf");
            let case: Vec<Option<i64>> = case.column(0).as_primitive::<Int64Type>().iter().collect();
            let udf: Vec<Option<i64>> = udf.column(0).as_primitive::<UInt8Type>().iter().map(|x| x.map(i64::from)).collect();
            assert_eq!(case, udf);
        });
    }
}
