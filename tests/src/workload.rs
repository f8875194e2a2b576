//! The workload of the end-to-end tests: heart rates of a few patients over five
//! minutes, a per-minute tumble pipeline over them, and the windows it must emit.
//!
//! Patient `i` is keyed `p<i>` and produced to partition `i % PARTITIONS`.

use std::collections::BTreeMap;

use crate::Received;

/// 2026-11-24T08:00:00Z, where the readings start.
pub const BASE_MS: i64 = 1_795_507_200_000;
/// Partitions of the input and output topics.
pub const PARTITIONS: i32 = 3;
/// Patients in the workload.
pub const PATIENTS: usize = 6;

/// A message to produce: partition, key, payload.
pub type Message = (i32, String, String);

/// The pipeline text: per patient and minute, the reading count and the highest
/// heart rate, from topic `input` to topic `output` keyed by patient.
pub fn sql(input: &str, output: &str) -> String {
    format!(
        "CREATE TABLE vitals (
  patient_id TEXT NOT NULL, observed_at TIMESTAMP NOT NULL, heart_rate DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '5' SECOND
) WITH (connector = 'kafka', topic = '{input}', format = 'json', idle_timeout = '1 hour');
CREATE TABLE per_minute WITH (connector = 'kafka', topic = '{output}', format = 'json', key = 'patient_id');
INSERT INTO per_minute
SELECT patient_id, window_end, count(*) AS n, max(heart_rate) AS max_hr
FROM vitals GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);"
    )
}

/// Readings every 10 s for 5 minutes per patient, in time order, then one
/// reading each at 20 minutes that moves every partition's watermark past the
/// first five windows (the last [`PATIENTS`] messages).
pub fn readings() -> Vec<Message> {
    let mut out = Vec::new();
    for s in (0..300).step_by(10) {
        for p in 0..PATIENTS {
            out.push(reading(p, s, 60.0 + s as f64 / 10.0 + p as f64));
        }
    }
    for p in 0..PATIENTS {
        out.push(reading(p, 1200, 50.0));
    }
    out
}

fn reading(patient: usize, second: i64, hr: f64) -> Message {
    (
        (patient % PARTITIONS as usize) as i32,
        format!("p{patient}"),
        format!(
            r#"{{"patient_id":"p{patient}","observed_at":{},"heart_rate":{hr}}}"#,
            BASE_MS + second * 1000
        ),
    )
}

/// A window's result: (patient, window end as RFC 3339) → (count, max heart rate).
pub type Windows = BTreeMap<(String, String), (i64, f64)>;

/// The windows [`readings`] close: five per patient, six readings each.
pub fn expected() -> Windows {
    let mut out = BTreeMap::new();
    for p in 0..PATIENTS {
        for minute in 0..5_i64 {
            let last_second = minute * 60 + 50;
            out.insert(
                (
                    format!("p{p}"),
                    format!("2026-11-24T08:{:02}:00Z", minute + 1),
                ),
                (6, 60.0 + last_second as f64 / 10.0 + p as f64),
            );
        }
    }
    out
}

/// The windows in output messages (a window read twice counts once); panics on
/// a message that is not a window result keyed by its patient.
pub fn results(received: &[Received]) -> Windows {
    let mut out = BTreeMap::new();
    for r in received {
        let v: serde_json::Value = serde_json::from_str(&r.payload).expect("json");
        let patient = v["patient_id"].as_str().expect("patient").to_owned();
        assert_eq!(r.key.as_deref(), Some(patient.as_str()), "keyed by patient");
        let end = v["window_end"].as_str().expect("window_end");
        let end = end.trim_end_matches("+00:00").trim_end_matches('Z');
        out.insert(
            (patient, format!("{end}Z")),
            (
                v["n"].as_i64().expect("n"),
                v["max_hr"].as_f64().expect("max_hr"),
            ),
        );
    }
    out
}

/// Produces `messages` to `topic` on `broker`.
pub fn produce(broker: &crate::Broker, topic: &str, messages: &[Message]) {
    let refs: Vec<(i32, Option<&str>, &str)> = messages
        .iter()
        .map(|(p, k, v)| (*p, Some(k.as_str()), v.as_str()))
        .collect();
    broker.produce(topic, &refs);
}

/// Creates `<name>-vitals` (with its dead-letter and progress topics) and
/// `<name>-out`;
/// returns the input and output topic names.
pub fn topics(broker: &crate::Broker, name: &str) -> (String, String) {
    let (input, output) = (format!("{name}-vitals"), format!("{name}-out"));
    broker.create_topic(&input, PARTITIONS);
    broker.create_topic(&format!("{input}.dead-letter"), 1);
    broker.create_topic(&format!("{input}.progress"), PARTITIONS);
    broker.create_topic(&output, PARTITIONS);
    (input, output)
}
