//! The vectorised kernels agree with the row-by-row reference on arbitrary rows,
//! including missing, implausible, non-finite and unparseable inputs.

use arrow::array::{Array, AsArray};
use proptest::prelude::*;
use vigil_scores::Sheet;
use vigil_scores::news2::band;
use vigil_scores::reference::{self, Row, RowScore};

use crate::common::Columns;

fn value(lo: f64, hi: f64) -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        6 => (lo..hi).prop_map(Some),
        // Whole and half values hit band edges exactly.
        3 => ((lo as i64)..(hi as i64)).prop_flat_map(|x| prop_oneof![Just(x as f64), Just(x as f64 + 0.5)]).prop_map(Some),
        1 => Just(None),
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(1e6)].prop_map(Some),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        value(0.0, 90.0),
        value(30.0, 110.0),
        prop_oneof![
            Just(None),
            Just(Some(1.0)),
            Just(Some(2.0)),
            Just(Some(3.0))
        ],
        proptest::option::weighted(0.9, any::<bool>()),
        value(20.0, 320.0),
        value(10.0, 320.0),
        proptest::option::weighted(
            0.9,
            prop_oneof![
                Just("A"),
                Just("C"),
                Just("V"),
                Just("P"),
                Just("U"),
                Just("alert"),
                Just("Voice"),
                Just("x"),
                Just(""),
                Just("pain ")
            ],
        ),
        value(20.0, 47.0),
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

fn assert_same(sheet: &Sheet, rows: &[Row], reference: fn(&Row) -> RowScore) {
    let total = sheet.total();
    let partial = sheet.partial();
    let missing = sheet.missing();
    let invalid = sheet.invalid();
    let (missing, invalid) = (missing.as_list::<i32>(), invalid.as_list::<i32>());
    for (i, row) in rows.iter().enumerate() {
        let want = reference(row);
        let got_total = total.is_valid(i).then(|| total.value(i));
        assert_eq!(got_total, want.total, "total of {row:?}");
        assert_eq!(partial.value(i), want.partial, "partial of {row:?}");
        let subs: Vec<Option<u8>> = sheet
            .params()
            .iter()
            .map(|p| p.is_scored(i).then(|| p.points()[i]))
            .collect();
        assert_eq!(subs, want.subscores, "subscores of {row:?}");
        let m: Vec<String> = missing
            .value(i)
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        let v: Vec<String> = invalid
            .value(i)
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        assert_eq!(m, want.missing, "missing of {row:?}");
        assert_eq!(v, want.invalid, "invalid of {row:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn news2_kernel_matches_reference(rows in proptest::collection::vec(row(), 1..200)) {
        let sheet = Columns::of(&rows).news2();
        assert_same(&sheet, &rows, reference::news2);
        let bands = band(&sheet);
        for (i, row) in rows.iter().enumerate() {
            let got = bands.is_valid(i).then(|| bands.value(i));
            prop_assert_eq!(got, reference::news2_band(&reference::news2(row)));
        }
    }

    #[test]
    fn qsofa_mews_sirs_kernels_match_reference(rows in proptest::collection::vec(row(), 1..200)) {
        let cols = Columns::of(&rows);
        assert_same(&cols.qsofa(), &rows, reference::qsofa);
        assert_same(&cols.mews(), &rows, reference::mews);
        assert_same(&cols.sirs(), &rows, reference::sirs);
    }
}
