use arrow::array::{AsArray, Float64Array};
use arrow::datatypes::{Field, Schema};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::json::RowsJsonDecoder;

fn schema() -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("at", time.clone(), false),
        Field::new("x", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("t", DataType::Utf8, true),
        Field::new("seen", time, true),
    ]))
}

fn flat() -> FlatRows {
    FlatRows::new(&schema(), 4).expect("every column is scalar")
}

/// What a decoder makes of `messages`: whether each was accepted, and the rows.
fn outcome(mut d: RowsJsonDecoder, messages: &[Vec<u8>]) -> (Vec<bool>, Option<RecordBatch>) {
    let mut accepted: Vec<bool> = messages.iter().map(|m| d.decode(m).is_ok()).collect();
    let flushed = d.flush().expect("flush");
    let fed: Vec<usize> = (0..messages.len()).filter(|&i| accepted[i]).collect();
    for (at, _) in &flushed.rejected {
        accepted[fed[*at]] = false;
    }
    (accepted, flushed.batch)
}

fn one(message: &str) -> Result<RecordBatch> {
    let mut d = flat();
    d.decode(message.as_bytes())?;
    Ok(d.flush()?.expect("a row"))
}

#[test]
fn keys_in_any_order_with_whitespace_and_unknown_keys_of_any_shape() {
    let batch = one(
        "\t{ \"t\" : \"tx\" ,\n \"deep\":{\"a\":[1,{\"b\":[true,null,\"}\"]},-2.5e-3],\"c\":{}},\"n\":7,\
         \"at\":\"2026-11-24T08:00:00Z\",\"x\":-0.25,\"b\":true,\"id\":\"p1\",\"list\":[] } ",
    )
    .expect("decodes");
    assert_eq!(batch.column(0).as_string::<i32>().value(0), "p1");
    assert_eq!(
        batch
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
            .value(0),
        1_795_507_200_000
    );
    assert_eq!(
        batch.column(2).as_primitive::<Float64Type>().value(0),
        -0.25
    );
    assert_eq!(batch.column(3).as_primitive::<Int64Type>().value(0), 7);
    assert!(batch.column(4).as_boolean().value(0));
    assert_eq!(batch.column(5).as_string::<i32>().value(0), "tx");
    assert!(batch.column(6).is_null(0));
}

#[test]
fn escapes_are_read_in_keys_and_values() {
    let batch = one(r#"{"i\u0064":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00","at":1795507200000}"#)
        .expect("decodes");
    assert_eq!(
        batch.column(0).as_string::<i32>().value(0),
        "a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{1f600}"
    );
    for bad in [
        r#"{"id":"\ud83d","at":1795507200000}"#,
        r#"{"id":"\ude00x","at":1795507200000}"#,
        r#"{"id":"\ud83d\u0041","at":1795507200000}"#,
        r#"{"id":"\x41","at":1795507200000}"#,
        r#"{"id":"\u00g1","at":1795507200000}"#,
    ] {
        assert!(one(bad).is_err(), "{bad}");
    }
}

#[test]
fn syntax_is_strict_json() {
    for bad in [
        r#"{"id":"a" "at":1795507200000}"#,
        r#"{"id":"a",,"at":1795507200000}"#,
        r#"{"id":"a","at":1795507200000,}"#,
        "{\"id\":\"a\u{1}\",\"at\":1795507200000}",
        r#"{"id":"a","at":01795507200000}"#,
        r#"{"id":"a","at":1795507200000,"x":.5}"#,
        r#"{"id":"a","at":1795507200000,"x":1.}"#,
        r#"{"id":"a","at":1795507200000,"x":1e}"#,
        r#"{"id":"a","at":1795507200000,"x":+1}"#,
        r#"{"id":"a","at":1795507200000,"other":[1 2]}"#,
        r#"{"id":"a","at":1795507200000,"other":{"k" 1}}"#,
        r#"{"id":"a","at":1795507200000,"other":[1,]}"#,
        r#"{"id":"a","at":1795507200000,"other":nul}"#,
        r#"{"id":"a","at":1795507200000} x"#,
        r#"{"id":"a","at":1795507200000"#,
        r#"{"id":"a","at":1795507200000,"other":"#,
        r#"{"id":"a","at":1795507200000,"other":[[[]]}"#,
        r#"{"id":"a","at":1795507200000,"#,
        "",
        "[]",
    ] {
        assert!(one(bad).is_err(), "{bad}");
    }
}

#[test]
fn deep_nesting_in_an_unknown_key_does_not_overflow_the_stack() {
    let depth = 200_000;
    let deep = format!(
        r#"{{"id":"a","at":1795507200000,"x":{}1{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert!(one(&deep).is_err(), "x is a DOUBLE, not an array");
    let deep = format!(
        r#"{{"id":"a","at":1795507200000,"deep":{}1{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert_eq!(one(&deep).expect("decodes").num_rows(), 1);
}

#[test]
fn a_repeated_key_takes_its_last_value() {
    let batch = one(r#"{"id":"a","x":1,"at":1795507200000,"x":2}"#).expect("decodes");
    assert_eq!(
        batch.column(2).as_primitive::<Float64Type>(),
        &Float64Array::from(vec![Some(2.0)])
    );
}

#[test]
fn a_rejected_message_leaves_nothing_behind() {
    let mut d = flat();
    d.decode(br#"{"id":"a","at":1795507200000,"x":1}"#)
        .expect("ok");
    // Fails after id, at and x were read into their slots.
    let err = d
        .decode(br#"{"id":"b","at":1795507200000,"x":2,"n":"many"}"#)
        .expect_err("n is not a number");
    assert_eq!(err.to_string(), "n: \"many\" is not a whole number");
    d.decode(br#"{"id":"c","at":1795507200000}"#).expect("ok");
    assert_eq!(d.len(), 2);
    let batch = d.flush().expect("flush").expect("rows");
    let ids: Vec<_> = batch
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(
        batch.column(2).as_primitive::<Float64Type>(),
        &Float64Array::from(vec![Some(1.0), None])
    );
    assert!(d.flush().expect("flush").is_none());
}

#[test]
fn other_column_types_are_left_to_arrow_json() {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, true)]));
    assert!(FlatRows::new(&schema, 4).is_none());
    let mut d = RowsJsonDecoder::new(schema, 1024, 4).expect("decoder");
    d.decode(br#"{"v":3}"#).expect("ok");
    assert_eq!(d.flush().expect("flush").batch.expect("rows").num_rows(), 1);
}

/// JSON values of every kind, weighted towards what the columns can take.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| json!(v)),
        (1_500_000_000_000i64..2_000_000_000_000).prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
        (-1e6f64..1e6).prop_map(|v| json!(v)),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| json!(v)),
        (-300i32..300, 0u32..100).prop_map(|(m, d)| json!(f64::from(m) / f64::from(d.max(1)))),
        prop_oneof![
            Just("2026-11-24T08:00:00Z"),
            Just("2026-11-24T08:00:00.123+01:00"),
            Just("2026-11-24 08:00:00"),
            Just("2026-11-24"),
            Just("yesterday"),
            Just("12"),
            Just(" 12 "),
            Just("-3.5"),
            Just("1e3"),
            Just("NaN"),
            Just("inf"),
            Just("true"),
            Just(""),
            Just("p\u{e9}\u{1f600}"),
            Just("tab\tand \"quote\" \\ \u{1}"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value that mostly fits column `key` (sometimes anything at all).
fn value_for(key: &'static str) -> BoxedStrategy<Value> {
    let times = prop_oneof![
        (1_700_000_000_000i64..1_900_000_000_000).prop_map(|v| json!(v)),
        (1.7e12f64..1.9e12).prop_map(|v| json!(v)),
        prop::sample::select(vec![
            "2026-11-24T08:00:00Z",
            "2026-11-24T08:00:00.123+01:00",
            "2026-11-24T08:00:00.5-05:30",
            "2026-11-24 08:00:00",
            "2026-11-24",
            "1969-12-31T23:59:59Z",
        ])
        .prop_map(|s| json!(s)),
    ];
    let fitting = match key {
        "at" | "seen" => times.boxed(),
        "x" => prop_oneof![
            (-1e6f64..1e6).prop_map(|v| json!(v)),
            (-300i32..300, 1u32..100).prop_map(|(m, d)| json!(f64::from(m) / f64::from(d))),
            any::<i64>().prop_map(|v| json!(v)),
            prop::sample::select(vec!["12", " 12 ", "-3.5", "1e3", "NaN", "x"])
                .prop_map(|s| json!(s)),
        ]
        .boxed(),
        "n" => prop_oneof![
            any::<i64>().prop_map(|v| json!(v)),
            (-1e6f64..1e6).prop_map(|v| json!(v)),
            (-1e20f64..1e20).prop_map(|v| json!(v)),
            any::<u64>().prop_map(|v| json!(v)),
            prop::sample::select(vec!["12", " 12", "-3", "1.5", "9223372036854775808"])
                .prop_map(|s| json!(s)),
        ]
        .boxed(),
        "b" => prop_oneof![
            4 => any::<bool>().prop_map(Value::Bool),
            1 => prop::sample::select(vec![json!("true"), json!(1), json!(0)]),
        ]
        .boxed(),
        _ => prop_oneof![
            "\\PC{0,8}".prop_map(Value::String),
            prop::sample::select(vec![json!(12), json!(1.5), json!(true)]),
            Just(json!("tab\tand \"quote\" \\ \u{1}")),
        ]
        .boxed(),
    };
    prop_oneof![
        6 => fitting,
        1 => Just(Value::Null),
        1 => value(),
    ]
    .boxed()
}

/// A message: some of the schema's keys and some unknown ones, in any order,
/// compact or spaced. The order varies from message to message, so the
/// decoder's learned key order is both right and wrong along a sequence.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let keys = prop::sample::select(vec!["id", "at", "x", "n", "b", "t", "seen", "other", "ID"]);
    let field = keys.prop_flat_map(|key| (Just(key), value_for(key)));
    (
        proptest::collection::vec(field, 0..6),
        "[a-z]{1,6}",
        (1_700_000_000_000i64..1_900_000_000_000),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(fields, id, at, pretty, order)| {
            // The required keys always there, so that most messages are rows;
            // each key once (the last value given).
            let mut object = Map::new();
            object.insert("id".to_owned(), json!(id));
            object.insert("at".to_owned(), json!(at));
            for (key, value) in fields {
                object.insert(key.to_owned(), value);
            }
            let mut members: Vec<(String, Value)> = object.into_iter().collect();
            // A permutation drawn from `order` (Fisher-Yates on its digits).
            let mut rest = order;
            for i in (1..members.len()).rev() {
                let j = (rest % (i as u64 + 1)) as usize;
                rest /= i as u64 + 1;
                members.swap(i, j);
            }
            let (comma, colon) = if pretty { (",\n  ", ": ") } else { (",", ":") };
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}{colon}{}", json!(k), v))
                .collect();
            format!("{{{}}}", body.join(comma)).into_bytes()
        })
}

/// A message with a byte deleted, a structural byte inserted, or cut short.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (
        message(),
        any::<prop::sample::Index>(),
        prop::sample::select(b"{}[]\",:.-0e\\ ntf".to_vec()),
        0..3u8,
    )
        .prop_map(|(mut m, at, byte, how)| {
            let i = at.index(m.len());
            match how {
                0 => {
                    m.remove(i);
                }
                1 => m.insert(i, byte),
                _ => m.truncate(i),
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// On valid JSON the one-pass decoder and arrow-json accept the same
    /// messages and make the same rows of them.
    #[test]
    fn valid_json_decodes_as_arrow_json_decodes_it(
        messages in proptest::collection::vec(message(), 1..12)
    ) {
        let fast = outcome(RowsJsonDecoder::new(schema(), 1 << 20, 4).expect("decoder"), &messages);
        let reference = outcome(
            RowsJsonDecoder::new(schema(), 1 << 20, 4).expect("decoder").with_arrow_json(),
            &messages,
        );
        prop_assert_eq!(fast, reference);
    }

    /// On damaged JSON the one-pass decoder is at least as strict: it accepts
    /// nothing arrow-json rejects, and what both accept makes the same rows.
    #[test]
    fn damaged_json_is_rejected_whenever_arrow_json_rejects_it(
        messages in proptest::collection::vec(damaged(), 1..12)
    ) {
        let (fast, fast_rows) =
            outcome(RowsJsonDecoder::new(schema(), 1 << 20, 4).expect("decoder"), &messages);
        let (reference, _) = outcome(
            RowsJsonDecoder::new(schema(), 1 << 20, 4).expect("decoder").with_arrow_json(),
            &messages,
        );
        for (i, (f, r)) in fast.iter().zip(&reference).enumerate() {
            prop_assert!(!f || *r, "message {} accepted here, not by arrow-json: {}", i,
                String::from_utf8_lossy(&messages[i]));
        }
        let both: Vec<Vec<u8>> = messages
            .iter()
            .enumerate()
            .filter(|(i, _)| fast[*i])
            .map(|(_, m)| m.clone())
            .collect();
        let (_, reference_rows) = outcome(
            RowsJsonDecoder::new(schema(), 1 << 20, 4).expect("decoder").with_arrow_json(),
            &both,
        );
        prop_assert_eq!(fast_rows, reference_rows);
    }

    /// Decimal text is read to the same `f64` as the standard library's
    /// correctly rounded parser, on the exact fast path and off it.
    #[test]
    fn numbers_are_correctly_rounded(
        int in 0u64..u64::MAX,
        fraction in proptest::option::of("[0-9]{1,20}"),
        exponent in proptest::option::of(-330i32..330),
        negative in any::<bool>(),
    ) {
        let digits = int.to_string();
        let mut text = if negative { format!("-{digits}") } else { digits };
        if let Some(f) = fraction {
            text.push('.');
            text.push_str(&f);
        }
        if let Some(e) = exponent {
            text.push_str(&format!("e{e}"));
        }
        let mut cursor = Cursor { text: &text, bytes: text.as_bytes(), at: 0 };
        let number = cursor.number().expect("valid");
        prop_assert_eq!(cursor.at, text.len());
        let expected: f64 = text.parse().expect("std parses it");
        prop_assert_eq!(number.to_f64(&cursor).to_bits(), expected.to_bits(), "{}", text);
    }
}
