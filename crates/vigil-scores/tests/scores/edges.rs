//! Every band edge of every parameter, on both sides, and values between bands.
//!
//! Each case sets one parameter of an otherwise normal row (every parameter 0) and
//! checks the parameter's points, the aggregate, and the row-by-row reference.

use vigil_scores::Sheet;
use vigil_scores::reference::{self, Row, RowScore};

use crate::common::{Columns, normal, subscores, totals};

fn check(
    score: fn(&Columns) -> Sheet,
    reference: fn(&Row) -> RowScore,
    parameter: &str,
    set: fn(&mut Row, f64),
    cases: &[(f64, u8)],
) {
    let rows: Vec<Row> = cases
        .iter()
        .map(|&(x, _)| {
            let mut r = normal();
            set(&mut r, x);
            r
        })
        .collect();
    let sheet = score(&Columns::of(&rows));
    let subs = subscores(&sheet, parameter);
    let tots = totals(&sheet);
    for (i, &(x, want)) in cases.iter().enumerate() {
        assert_eq!(subs[i], Some(want), "{parameter} = {x}: points");
        assert_eq!(tots[i], Some(want), "{parameter} = {x}: aggregate");
        assert_eq!(
            reference(&rows[i]).total,
            Some(want),
            "{parameter} = {x}: reference"
        );
    }
}

fn news2(c: &Columns) -> Sheet {
    c.news2()
}

#[test]
fn news2_respiration_rate() {
    check(
        news2,
        reference::news2,
        "resp_rate",
        |r, x| r.resp_rate = Some(x),
        &[
            (1.0, 3),
            (8.0, 3),
            (8.5, 1),
            (9.0, 1),
            (11.0, 1),
            (11.5, 0),
            (12.0, 0),
            (20.0, 0),
            (20.5, 2),
            (21.0, 2),
            (24.0, 2),
            (24.5, 3),
            (25.0, 3),
            (80.0, 3),
        ],
    );
}

#[test]
fn news2_spo2_scale_1() {
    check(
        news2,
        reference::news2,
        "spo2",
        |r, x| r.spo2 = Some(x),
        &[
            (40.0, 3),
            (91.0, 3),
            (91.5, 2),
            (92.0, 2),
            (93.0, 2),
            (93.5, 1),
            (94.0, 1),
            (95.0, 1),
            (95.5, 0),
            (96.0, 0),
            (100.0, 0),
        ],
    );
}

#[test]
fn news2_spo2_scale_2_on_air() {
    check(
        news2,
        reference::news2,
        "spo2",
        |r, x| {
            r.spo2 = Some(x);
            r.spo2_scale = Some(2.0);
        },
        &[
            (80.0, 3),
            (83.0, 3),
            (83.5, 2),
            (84.0, 2),
            (85.0, 2),
            (85.5, 1),
            (86.0, 1),
            (87.0, 1),
            (87.5, 0),
            (88.0, 0),
            (92.0, 0),
            (92.5, 0),
            (93.0, 0),
            (97.0, 0),
            (100.0, 0),
        ],
    );
}

#[test]
fn news2_spo2_scale_2_on_oxygen() {
    // Oxygen itself adds 2 to the aggregate; the SpO2 points are checked alone.
    let cases = [
        (83.0, 3),
        (83.5, 2),
        (84.0, 2),
        (85.0, 2),
        (85.5, 1),
        (86.0, 1),
        (87.0, 1),
        (87.5, 0),
        (88.0, 0),
        (92.0, 0),
        (92.5, 1),
        (93.0, 1),
        (94.0, 1),
        (94.5, 2),
        (95.0, 2),
        (96.0, 2),
        (96.5, 3),
        (97.0, 3),
        (100.0, 3),
    ];
    let rows: Vec<Row> = cases
        .iter()
        .map(|&(x, _)| Row {
            spo2: Some(x),
            spo2_scale: Some(2.0),
            on_oxygen: Some(true),
            ..normal()
        })
        .collect();
    let sheet = Columns::of(&rows).news2();
    let subs = subscores(&sheet, "spo2");
    let tots = totals(&sheet);
    for (i, &(x, want)) in cases.iter().enumerate() {
        assert_eq!(subs[i], Some(want), "spo2 {x} on oxygen");
        assert_eq!(tots[i], Some(want + 2), "spo2 {x} on oxygen: aggregate");
        assert_eq!(
            reference::news2(&rows[i]).total,
            Some(want + 2),
            "reference {x}"
        );
    }
}

#[test]
fn news2_scale_1_ignores_oxygen_for_spo2_but_scores_it_separately() {
    let rows = [
        Row {
            spo2: Some(97.0),
            on_oxygen: Some(true),
            ..normal()
        },
        Row {
            spo2: Some(93.0),
            on_oxygen: Some(true),
            ..normal()
        },
    ];
    let sheet = Columns::of(&rows).news2();
    assert_eq!(subscores(&sheet, "spo2"), [Some(0), Some(2)]);
    assert_eq!(subscores(&sheet, "air_or_oxygen"), [Some(2), Some(2)]);
    assert_eq!(totals(&sheet), [Some(2), Some(4)]);
}

#[test]
fn news2_systolic_bp() {
    check(
        news2,
        reference::news2,
        "systolic_bp",
        |r, x| r.systolic_bp = Some(x),
        &[
            (30.0, 3),
            (90.0, 3),
            (90.5, 2),
            (91.0, 2),
            (100.0, 2),
            (100.5, 1),
            (101.0, 1),
            (110.0, 1),
            (110.5, 0),
            (111.0, 0),
            (219.0, 0),
            (219.5, 3),
            (220.0, 3),
            (300.0, 3),
        ],
    );
}

#[test]
fn news2_pulse() {
    check(
        news2,
        reference::news2,
        "heart_rate",
        |r, x| r.heart_rate = Some(x),
        &[
            (20.0, 3),
            (40.0, 3),
            (40.5, 1),
            (41.0, 1),
            (50.0, 1),
            (50.5, 0),
            (51.0, 0),
            (90.0, 0),
            (90.5, 1),
            (91.0, 1),
            (110.0, 1),
            (110.5, 2),
            (111.0, 2),
            (130.0, 2),
            (130.5, 3),
            (131.0, 3),
            (300.0, 3),
        ],
    );
}

#[test]
fn news2_temperature() {
    check(
        news2,
        reference::news2,
        "temperature",
        |r, x| r.temperature = Some(x),
        &[
            (25.0, 3),
            (35.0, 3),
            (35.05, 1),
            (35.1, 1),
            (36.0, 1),
            (36.05, 0),
            (36.1, 0),
            (38.0, 0),
            (38.05, 1),
            (38.1, 1),
            (39.0, 1),
            (39.05, 2),
            (39.1, 2),
            (45.0, 2),
        ],
    );
}

#[test]
fn news2_consciousness_and_oxygen() {
    let levels = [
        "A",
        "alert",
        "C",
        "new confusion",
        "V",
        "voice",
        "P",
        "pain",
        "U",
        "unresponsive",
    ];
    let rows: Vec<Row> = levels
        .iter()
        .map(|l| Row {
            consciousness: Some((*l).into()),
            ..normal()
        })
        .collect();
    let sheet = Columns::of(&rows).news2();
    let want: Vec<_> = levels
        .iter()
        .map(|l| Some(if l.starts_with(['A', 'a']) { 0 } else { 3 }))
        .collect();
    assert_eq!(subscores(&sheet, "consciousness"), want);
    assert_eq!(totals(&sheet), want);

    let rows = [
        Row {
            on_oxygen: Some(true),
            ..normal()
        },
        normal(),
    ];
    assert_eq!(totals(&Columns::of(&rows).news2()), [Some(2), Some(0)]);
}

#[test]
fn news2_aggregate_range_and_bands() {
    use vigil_scores::news2::band;
    let worst = Row {
        resp_rate: Some(30.0),
        spo2: Some(85.0),
        spo2_scale: Some(1.0),
        on_oxygen: Some(true),
        systolic_bp: Some(80.0),
        heart_rate: Some(140.0),
        consciousness: Some("U".into()),
        temperature: Some(34.0),
    };
    let rows = [
        normal(), // 0 low
        Row {
            heart_rate: Some(95.0),
            temperature: Some(38.5),
            resp_rate: Some(22.0),
            ..normal()
        }, // 1+1+2 = 4 low
        Row {
            resp_rate: Some(26.0),
            ..normal()
        }, // 3 in one: low-medium
        Row {
            resp_rate: Some(26.0),
            heart_rate: Some(95.0),
            ..normal()
        }, // 4 with a 3: low-medium
        Row {
            resp_rate: Some(22.0),
            heart_rate: Some(115.0),
            temperature: Some(38.5),
            ..normal()
        }, // 5 medium
        Row {
            resp_rate: Some(26.0),
            spo2: Some(95.0),
            heart_rate: Some(100.0),
            temperature: Some(38.5),
            ..normal()
        }, // 3+1+1+1 = 6 medium
        Row {
            resp_rate: Some(26.0),
            spo2: Some(93.0),
            systolic_bp: Some(105.0),
            temperature: Some(38.5),
            ..normal()
        }, // 3+2+1+1 = 7 high
        worst,    // 20 high
    ];
    let sheet = Columns::of(&rows).news2();
    assert_eq!(
        totals(&sheet),
        [
            Some(0),
            Some(4),
            Some(3),
            Some(4),
            Some(5),
            Some(6),
            Some(7),
            Some(20)
        ]
    );
    let bands: Vec<_> = band(&sheet).iter().map(|b| b.map(str::to_owned)).collect();
    let want = [
        "low",
        "low",
        "low-medium",
        "low-medium",
        "medium",
        "medium",
        "high",
        "high",
    ];
    assert_eq!(bands, want.map(|b| Some(b.to_owned())));
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(reference::news2_band(&reference::news2(row)), Some(want[i]));
    }
}

fn qsofa(c: &Columns) -> Sheet {
    c.qsofa()
}

#[test]
fn qsofa_criteria() {
    check(
        qsofa,
        reference::qsofa,
        "resp_rate",
        |r, x| r.resp_rate = Some(x),
        &[(21.0, 0), (21.5, 0), (21.99, 0), (22.0, 1), (30.0, 1)],
    );
    check(
        qsofa,
        reference::qsofa,
        "systolic_bp",
        |r, x| r.systolic_bp = Some(x),
        &[(90.0, 1), (100.0, 1), (100.01, 0), (100.5, 0), (101.0, 0)],
    );
    let rows: Vec<Row> = ["A", "C", "V", "P", "U"]
        .iter()
        .map(|l| Row {
            consciousness: Some((*l).into()),
            ..normal()
        })
        .collect();
    assert_eq!(
        totals(&Columns::of(&rows).qsofa()),
        [Some(0), Some(1), Some(1), Some(1), Some(1)]
    );
    let all = Row {
        resp_rate: Some(24.0),
        systolic_bp: Some(95.0),
        consciousness: Some("C".into()),
        ..normal()
    };
    assert_eq!(totals(&Columns::of(&[all]).qsofa()), [Some(3)]);
}

fn sirs(c: &Columns) -> Sheet {
    c.sirs()
}

#[test]
fn sirs_criteria() {
    check(
        sirs,
        reference::sirs,
        "resp_rate",
        |r, x| r.resp_rate = Some(x),
        &[(20.0, 0), (20.01, 1), (21.0, 1)],
    );
    check(
        sirs,
        reference::sirs,
        "heart_rate",
        |r, x| r.heart_rate = Some(x),
        &[(90.0, 0), (90.01, 1), (91.0, 1)],
    );
    check(
        sirs,
        reference::sirs,
        "temperature",
        |r, x| r.temperature = Some(x),
        &[
            (35.9, 1),
            (35.99, 1),
            (36.0, 0),
            (37.0, 0),
            (38.0, 0),
            (38.01, 1),
            (39.0, 1),
        ],
    );
}

fn mews(c: &Columns) -> Sheet {
    c.mews()
}

#[test]
fn mews_bands() {
    check(
        mews,
        reference::mews,
        "systolic_bp",
        |r, x| r.systolic_bp = Some(x),
        &[
            (60.0, 3),
            (70.0, 3),
            (70.5, 2),
            (71.0, 2),
            (80.0, 2),
            (80.5, 1),
            (81.0, 1),
            (100.0, 1),
            (100.5, 0),
            (101.0, 0),
            (199.0, 0),
            (199.5, 2),
            (200.0, 2),
        ],
    );
    check(
        mews,
        reference::mews,
        "heart_rate",
        |r, x| r.heart_rate = Some(x),
        &[
            (35.0, 2),
            (40.0, 2),
            (40.5, 1),
            (41.0, 1),
            (50.0, 1),
            (50.5, 0),
            (51.0, 0),
            (100.0, 0),
            (100.5, 1),
            (101.0, 1),
            (110.0, 1),
            (110.5, 2),
            (111.0, 2),
            (129.0, 2),
            (129.5, 3),
            (130.0, 3),
        ],
    );
    check(
        mews,
        reference::mews,
        "resp_rate",
        |r, x| r.resp_rate = Some(x),
        &[
            (6.0, 2),
            (8.0, 2),
            (8.9, 2),
            (9.0, 0),
            (14.0, 0),
            (14.5, 1),
            (15.0, 1),
            (20.0, 1),
            (20.5, 2),
            (21.0, 2),
            (29.0, 2),
            (29.5, 3),
            (30.0, 3),
        ],
    );
    check(
        mews,
        reference::mews,
        "temperature",
        |r, x| r.temperature = Some(x),
        &[
            (34.0, 2),
            (34.99, 2),
            (35.0, 0),
            (38.4, 0),
            (38.45, 2),
            (38.5, 2),
            (40.0, 2),
        ],
    );
    let rows: Vec<Row> = ["A", "C", "V", "P", "U"]
        .iter()
        .map(|l| Row {
            consciousness: Some((*l).into()),
            ..normal()
        })
        .collect();
    assert_eq!(
        totals(&Columns::of(&rows).mews()),
        [Some(0), Some(1), Some(1), Some(2), Some(3)]
    );
}
