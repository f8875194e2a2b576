//! Missing and invalid inputs are never scored as normal.

use arrow::array::{Array, AsArray, Float64Array, ListArray, StringArray};
use vigil_scores::Sheet;
use vigil_scores::input::{Flag, Num, Text};
use vigil_scores::news2::{News2Inputs, band, news2};
use vigil_scores::reference::{self, Row};

use crate::common::{Columns, normal, subscores, totals};

fn names(list: &ListArray, i: usize) -> Vec<String> {
    let v = list.value(i);
    v.as_string::<i32>()
        .iter()
        .flatten()
        .map(str::to_owned)
        .collect()
}

fn lists(sheet: &Sheet) -> (ListArray, ListArray) {
    (
        sheet.missing().as_list::<i32>().clone(),
        sheet.invalid().as_list::<i32>().clone(),
    )
}

#[test]
fn each_missing_parameter_nulls_the_aggregate_and_is_named() {
    let high = Row {
        resp_rate: Some(26.0),
        spo2: Some(90.0),
        on_oxygen: Some(true),
        systolic_bp: Some(88.0),
        heart_rate: Some(135.0),
        consciousness: Some("V".into()),
        temperature: Some(34.5),
        ..normal()
    }; // every parameter scores: 3 + 3 + 2 + 3 + 3 + 3 + 3 = 20
    let mut rows = Vec::new();
    type Strip = (&'static str, fn(&mut Row));
    let strips: [Strip; 7] = [
        ("resp_rate", |r| r.resp_rate = None),
        ("spo2", |r| r.spo2 = None),
        ("air_or_oxygen", |r| r.on_oxygen = None),
        ("systolic_bp", |r| r.systolic_bp = None),
        ("heart_rate", |r| r.heart_rate = None),
        ("consciousness", |r| r.consciousness = None),
        ("temperature", |r| r.temperature = None),
    ];
    for (_, strip) in &strips {
        let mut r = high.clone();
        strip(&mut r);
        rows.push(r);
    }
    let sheet = Columns::of(&rows).news2();
    let (missing, invalid) = lists(&sheet);
    let partial = sheet.partial();
    let bands = band(&sheet);
    for (i, (name, _)) in strips.iter().enumerate() {
        assert_eq!(totals(&sheet)[i], None, "{name} missing: aggregate");
        assert!(bands.is_null(i), "{name} missing: band");
        let lost = if *name == "air_or_oxygen" { 2 } else { 3 };
        assert_eq!(partial.value(i), 20 - lost, "{name} missing: partial");
        assert_eq!(names(&missing, i), [*name]);
        assert!(names(&invalid, i).is_empty());
        assert_eq!(subscores(&sheet, name)[i], None);
        let r = reference::news2(&rows[i]);
        assert_eq!(
            (r.total, r.partial, r.missing),
            (None, 20 - lost, vec![*name])
        );
    }
}

#[test]
fn implausible_values_are_invalid_not_extreme() {
    let rows = [
        Row {
            heart_rate: Some(0.0),
            ..normal()
        },
        Row {
            heart_rate: Some(400.0),
            ..normal()
        },
        Row {
            spo2: Some(130.0),
            ..normal()
        },
        Row {
            temperature: Some(10.0),
            ..normal()
        },
        Row {
            resp_rate: Some(f64::NAN),
            ..normal()
        },
        Row {
            systolic_bp: Some(f64::INFINITY),
            ..normal()
        },
        Row {
            consciousness: Some("sleepy".into()),
            ..normal()
        },
        Row {
            spo2_scale: Some(3.0),
            ..normal()
        },
    ];
    let want = [
        "heart_rate",
        "heart_rate",
        "spo2",
        "temperature",
        "resp_rate",
        "systolic_bp",
        "consciousness",
        "spo2",
    ];
    let sheet = Columns::of(&rows).news2();
    let (missing, invalid) = lists(&sheet);
    for (i, name) in want.iter().enumerate() {
        assert_eq!(totals(&sheet)[i], None, "row {i}");
        assert_eq!(names(&invalid, i), [*name], "row {i}");
        assert!(names(&missing, i).is_empty(), "row {i}");
        assert_eq!(sheet.partial().value(i), 0, "row {i}");
        let r = reference::news2(&rows[i]);
        assert_eq!(
            (r.total, r.invalid),
            (None, vec![*name]),
            "reference row {i}"
        );
    }
    // The same values make qSOFA, MEWS and SIRS incomplete too.
    let q = totals(&Columns::of(&rows[..2]).sirs());
    assert_eq!(q, [None, None]);
}

#[test]
fn spo2_scale_2_above_92_needs_air_or_oxygen() {
    let rows = [
        Row {
            spo2: Some(95.0),
            spo2_scale: Some(2.0),
            on_oxygen: None,
            ..normal()
        },
        Row {
            spo2: Some(90.0),
            spo2_scale: Some(2.0),
            on_oxygen: None,
            ..normal()
        },
        Row {
            spo2: Some(95.0),
            spo2_scale: None,
            on_oxygen: None,
            ..normal()
        },
    ];
    let sheet = Columns::of(&rows).news2();
    let (missing, _) = lists(&sheet);
    // Unscoreable SpO2 at 95 on Scale 2: points depend on the missing air/oxygen.
    assert_eq!(subscores(&sheet, "spo2"), [None, Some(0), Some(1)]);
    for i in 0..3 {
        assert_eq!(names(&missing, i), ["air_or_oxygen"]);
        assert_eq!(totals(&sheet)[i], None);
    }
    assert_eq!(reference::news2(&rows[0]).subscores[1], None);
}

#[test]
fn scalar_arguments_broadcast_like_arrays() {
    let rr = Float64Array::from(vec![Some(7.0), Some(14.0), None, Some(500.0)]);
    let c = StringArray::from(vec![Some("A"); 4]);
    let sheet = news2(
        &News2Inputs {
            resp_rate: Num::Array(&rr),
            spo2: Num::Scalar(None),
            spo2_scale: Num::Scalar(Some(1.0)),
            on_oxygen: Flag::Scalar(Some(true)),
            systolic_bp: Num::Scalar(Some(0.0)),
            heart_rate: Num::Scalar(Some(95.0)),
            consciousness: Text::Utf8(&c),
            temperature: Num::Scalar(Some(37.0)),
        },
        4,
    );
    assert_eq!(totals(&sheet), [None; 4]);
    assert_eq!(
        (0..4).map(|i| sheet.partial().value(i)).collect::<Vec<_>>(),
        [3 + 2 + 1, 2 + 1, 2 + 1, 2 + 1]
    );
    let (missing, invalid) = lists(&sheet);
    assert_eq!(names(&missing, 0), ["spo2"]);
    assert_eq!(names(&missing, 2), ["resp_rate", "spo2"]);
    assert_eq!(names(&invalid, 0), ["systolic_bp"]);
    assert_eq!(names(&invalid, 3), ["resp_rate", "systolic_bp"]);
}
