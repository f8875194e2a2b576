//! vigil runs `first_value`/`last_value` over a time ordering with its own compact
//! accumulator; this checks it against DataFusion's own batch aggregation of the same
//! rows: both directions, IGNORE NULLS or not, FILTER, numbers, text and booleans,
//! over several batchings; and `max`/`min` of the (non-null) time, which run as
//! picks too.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use serde_json::Value;

use crate::harness::{json, plan, run};

const BASE_MS: i64 = 1_795_507_200_000;

const PICKS: &str = "
  last_value(x ORDER BY observed_at) AS a,
  last_value(x ORDER BY observed_at) IGNORE NULLS AS b,
  first_value(x ORDER BY observed_at) AS c,
  first_value(x ORDER BY observed_at DESC) IGNORE NULLS AS d,
  last_value(label ORDER BY observed_at DESC) AS e,
  last_value(label ORDER BY observed_at) IGNORE NULLS AS f,
  last_value(x ORDER BY observed_at) FILTER (WHERE x > 0.5) AS g,
  first_value(flag ORDER BY observed_at) IGNORE NULLS AS h,
  last_value(n ORDER BY observed_at) AS i,
  max(observed_at) AS j,
  min(observed_at) AS k,
  max(observed_at) FILTER (WHERE x > 0.5) AS l,
  min(n) AS m";

/// Rows with distinct times per patient (ties would make the pick depend on
/// arrival order in DataFusion too), NULLs sprinkled in every column.
fn rows() -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    for i in 0..400_i64 {
        let patient = ["p1", "p2", "p3", "p4"][(next() % 4) as usize];
        // Distinct times: the row number in ms plus a random minute offset.
        let t = BASE_MS + (next() % 6) as i64 * 60_000 + i;
        let x = if next() % 4 == 0 {
            "null".to_owned()
        } else {
            format!("{}", (next() % 1000) as f64 / 1000.0)
        };
        let label = match next() % 4 {
            0 => "null".to_owned(),
            k => format!("\"L{k}\""),
        };
        let flag = ["null", "true", "false"][(next() % 3) as usize];
        let n = if next() % 5 == 0 {
            "null".to_owned()
        } else {
            format!("{}", next() % 100)
        };
        out.push(format!(
            r#"{{"patient_id":"{patient}","observed_at":{t},"x":{x},"label":{label},"flag":{flag},"n":{n}}}"#
        ));
    }
    out
}

const SOURCE: &str = "CREATE TABLE readings (
  patient_id TEXT NOT NULL, observed_at TIMESTAMP NOT NULL, x DOUBLE, label TEXT,
  flag BOOLEAN, n BIGINT,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '10' MINUTE
) WITH (connector = 'file', path = 'unused.jsonl', format = 'json');
CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');
";

/// Per patient, the picks of each window in window order.
type Picks = BTreeMap<String, Vec<Vec<Value>>>;

fn picks_of(rows: &[Value]) -> Picks {
    let mut out = Picks::new();
    for row in rows {
        let patient = row["patient_id"].as_str().expect("patient").to_owned();
        let values = "abcdefghijklm"
            .chars()
            .map(|c| row[c.to_string().as_str()].clone())
            .collect();
        out.entry(patient).or_default().push(values);
    }
    out
}

fn datafusion_picks(lines: &[String]) -> Picks {
    let sql = format!(
        "SELECT patient_id, {PICKS} FROM readings
         GROUP BY patient_id, date_bin(INTERVAL '1 minute', observed_at)
         ORDER BY patient_id, date_bin(INTERVAL '1 minute', observed_at)"
    );
    let p = plan(&format!(
        "{SOURCE}INSERT INTO out SELECT 1 AS one FROM readings;"
    ));
    let schema = vigil_engine::files::decode_schema(&p.jobs[0].source);
    let mut decoder = arrow_json::ReaderBuilder::new(schema)
        .build_decoder()
        .expect("decoder");
    decoder.decode(lines.join("\n").as_bytes()).expect("decode");
    let batch = decoder.flush().expect("flush").expect("rows");
    let batches: Vec<RecordBatch> = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(async {
            let ctx = SessionContext::new();
            ctx.register_batch("readings", batch).expect("register");
            ctx.sql(&sql)
                .await
                .expect("sql")
                .collect()
                .await
                .expect("run")
        });
    let mut buffer = Vec::new();
    {
        let mut writer = arrow_json::LineDelimitedWriter::new(&mut buffer);
        for b in &batches {
            writer.write(b).expect("write");
        }
        writer.finish().expect("finish");
    }
    let rows: Vec<Value> = String::from_utf8(buffer)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    // arrow-json leaves NULLs out; vigil's sink writes them. Fill them in.
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|mut r| {
            for c in "abcdefghijklm".chars() {
                let key = c.to_string();
                if r.get(&key).is_none() {
                    r[key.as_str()] = Value::Null;
                }
            }
            r
        })
        .collect();
    picks_of(&rows)
}

#[test]
fn picks_equal_datafusion_batch_aggregation() {
    let lines = rows();
    let expected = datafusion_picks(&lines);
    assert_eq!(expected.len(), 4);
    let p = plan(&format!(
        "{SOURCE}INSERT INTO out SELECT patient_id, {PICKS} FROM readings
GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);"
    ));
    for batch_size in [1, 7, 400] {
        let r = run(&p, &[("readings", &lines.join("\n"))], batch_size);
        assert!(
            r.late.is_empty(),
            "nothing is late within a 10 minute delay"
        );
        let got = picks_of(&json(r.out("out")));
        assert_eq!(got, expected, "batch size {batch_size}");
    }
}
