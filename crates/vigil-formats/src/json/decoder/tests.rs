use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, TimestampMillisecondType, UInt8Type};
use proptest::prelude::*;
use vigil_core::time::TimeBounds;

use super::*;

fn decoder() -> VitalsJsonDecoder {
    VitalsJsonDecoder::new(TimeBounds::HISTORICAL)
}

#[test]
fn a_full_message_fills_every_column() {
    let mut d = decoder();
    d.decode(
        br#"{"patient_id":"p-1","ward":"4B","observed_at":"2026-11-24T08:15:00Z",
            "resp_rate":22,"spo2":93.5,"spo2_scale":2,"on_oxygen":true,"systolic_bp":104,
            "diastolic_bp":68,"heart_rate":112,"consciousness":"New Confusion","temperature":38.4,
            "device":"ignored"}"#,
    )
    .expect("valid");
    let b = d.flush().expect("flush");
    assert_eq!(b.num_rows(), 1);
    assert_eq!(b.schema(), vitals_schema());
    assert_eq!(b.column(0).as_string::<i32>().value(0), "p-1");
    assert_eq!(b.column(1).as_string::<i32>().value(0), "4B");
    let t = b.column(2).as_primitive::<TimestampMillisecondType>();
    assert_eq!(t.value(0), 1_795_508_100_000);
    assert_eq!(b.column(4).as_primitive::<Float64Type>().value(0), 93.5);
    assert_eq!(b.column(5).as_primitive::<UInt8Type>().value(0), 2);
    assert!(b.column(6).as_boolean().value(0));
    assert_eq!(b.column(10).as_string::<i32>().value(0), "C");
    assert_eq!(b.column(11).as_primitive::<Float64Type>().value(0), 38.4);
}

#[test]
fn absent_and_null_vitals_are_null_and_scale_defaults_to_1() {
    let mut d = decoder();
    d.decode(br#"{"patient_id":"p","observed_at":1795508100250,"heart_rate":null}"#)
        .expect("valid");
    let b = d.flush().expect("flush");
    for c in [1, 3, 4, 6, 7, 8, 9, 10, 11] {
        assert!(b.column(c).is_null(0), "column {c}");
    }
    assert_eq!(b.column(5).as_primitive::<UInt8Type>().value(0), 1);
    let t = b.column(2).as_primitive::<TimestampMillisecondType>();
    assert_eq!(t.value(0), 1_795_508_100_250);
}

#[test]
fn unknown_consciousness_text_is_kept_for_scoring_to_report() {
    let mut d = decoder();
    d.decode(br#"{"patient_id":"p","observed_at":0,"consciousness":" drowsy "}"#)
        .expect("valid");
    let b = d.flush().expect("flush");
    assert_eq!(b.column(10).as_string::<i32>().value(0), "drowsy");
}

#[test]
fn bad_messages_are_rejected_whole_with_a_reason() {
    let cases: [(&[u8], &str); 12] = [
        (b"", "EOF"),
        (b"{\"patient_id\":\"p\",\"observed_at\":0", "EOF"),
        (b"[1,2]", "invalid type"),
        (br#"{"observed_at":0}"#, "missing field `patient_id`"),
        (br#"{"patient_id":"p"}"#, "missing field `observed_at`"),
        (
            br#"{"patient_id":" ","observed_at":0}"#,
            "patient_id: must not be empty",
        ),
        (
            br#"{"patient_id":"p","observed_at":0,"heart_rate":"fast"}"#,
            "invalid type",
        ),
        (
            br#"{"patient_id":"p","observed_at":0,"on_oxygen":"yes"}"#,
            "invalid type",
        ),
        (
            br#"{"patient_id":"p","observed_at":"last tuesday"}"#,
            "RFC 3339",
        ),
        (
            br#"{"patient_id":"p","observed_at":-5}"#,
            "outside the accepted range",
        ),
        (
            br#"{"patient_id":"p","observed_at":1.5}"#,
            "must be an integer",
        ),
        (
            br#"{"patient_id":"p","observed_at":0,"spo2_scale":300}"#,
            "invalid value",
        ),
    ];
    let mut d = decoder();
    for (msg, want) in cases {
        let err = d.decode(msg).expect_err(&String::from_utf8_lossy(msg));
        assert!(
            err.to_string().contains(want),
            "{err} should mention {want}"
        );
        assert_eq!(d.len(), 0, "a rejected message appends nothing");
    }
    let err = decoder()
        .with_max_message_bytes(16)
        .decode(br#"{"patient_id":"p","observed_at":0}"#)
        .expect_err("oversized");
    assert_eq!(err.reason_label(), "oversized");
}

#[test]
fn future_bound_applies() {
    let mut d = VitalsJsonDecoder::new(TimeBounds::until(1_000, 500));
    assert!(
        d.decode(br#"{"patient_id":"p","observed_at":1500}"#)
            .is_ok()
    );
    assert!(
        d.decode(br#"{"patient_id":"p","observed_at":1501}"#)
            .is_err()
    );
}

proptest! {
    /// Good rows survive any interleaving of bad messages (including truncated
    /// prefixes of good ones) intact and in order.
    #[test]
    fn bad_messages_never_disturb_good_ones(
        hrs in proptest::collection::vec(proptest::option::of(20.0f64..250.0), 1..40),
        cut in 1usize..30,
    ) {
        let mut d = decoder();
        for (i, hr) in hrs.iter().enumerate() {
            let msg = match hr {
                Some(h) => format!(r#"{{"patient_id":"p{i}","observed_at":{i},"heart_rate":{h}}}"#),
                None => format!(r#"{{"patient_id":"p{i}","observed_at":{i}}}"#),
            };
            let truncated = &msg.as_bytes()[..cut.min(msg.len() - 1)];
            prop_assert!(d.decode(truncated).is_err());
            d.decode(msg.as_bytes()).expect("good message");
            let wrong_type = d.decode(br#"{"patient_id": 5, "observed_at": 0}"#);
            prop_assert!(wrong_type.is_err());
        }
        let b = d.flush().expect("flush");
        prop_assert_eq!(b.num_rows(), hrs.len());
        let got: Vec<Option<f64>> = b.column(9).as_primitive::<Float64Type>().iter().collect();
        prop_assert_eq!(got, hrs);
    }
}
