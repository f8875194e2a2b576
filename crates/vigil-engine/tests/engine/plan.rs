//! Planning: what `vigil check` accepts, describes, and rejects with a line number.

use vigil_engine::plan::{Pipeline, Stage};
use vigil_engine::window::WindowKind;

const VITALS: &str = "CREATE TABLE vitals (
  patient_id TEXT NOT NULL,
  ward TEXT,
  observed_at TIMESTAMP NOT NULL,
  resp_rate DOUBLE, spo2 DOUBLE, on_oxygen BOOLEAN, systolic_bp DOUBLE,
  heart_rate DOUBLE, consciousness TEXT, temperature DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '30' SECOND
) WITH (connector = 'file', path = 'vitals.jsonl', format = 'json');
CREATE TABLE out WITH (connector = 'file', path = '-', format = 'json');
";

fn plan(body: &str) -> Result<Pipeline, String> {
    let sql = format!("{VITALS}{body}");
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(Pipeline::plan(&sql))
        .map_err(|e| e.to_string())
}

/// Lines of `body` start at this line of the planned file.
const BODY_LINE: usize = 10;

fn rejected(body: &str) -> String {
    plan(body).expect_err("should be rejected")
}

#[test]
fn tumbling_news2_per_patient_plans_to_a_window_aggregate() {
    let p = plan(
        "INSERT INTO out
SELECT patient_id, window_start, window_end,
       news2(last_value(resp_rate ORDER BY observed_at), last_value(spo2 ORDER BY observed_at), 1,
             last_value(on_oxygen ORDER BY observed_at), last_value(systolic_bp ORDER BY observed_at),
             last_value(heart_rate ORDER BY observed_at), last_value(consciousness ORDER BY observed_at),
             last_value(temperature ORDER BY observed_at)) AS news2
FROM vitals
WHERE heart_rate IS NOT NULL OR spo2 IS NOT NULL
GROUP BY patient_id, tumble(observed_at, INTERVAL '1' MINUTE);",
    )
    .expect("plans");
    let job = &p.jobs[0];
    assert_eq!(job.source.name, "vitals");
    assert_eq!(job.sink.name, "out");
    let window = job.stages.iter().find_map(|s| match s {
        Stage::WindowAggregate {
            window,
            keys,
            aggregates,
            ..
        } => Some((*window, keys.len(), aggregates.len())),
        _ => None,
    });
    // Seven distinct aggregates: the scale is a literal.
    assert_eq!(window, Some((WindowKind::Tumble { size_ms: 60_000 }, 1, 7)));
    let names: Vec<&str> = job
        .output_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["patient_id", "window_start", "window_end", "news2"]);
    let text = p.describe();
    assert!(
        text.contains("window aggregate tumble(size 1min) on observed_at"),
        "{text}"
    );
    assert!(text.contains("watermark delay 30s"), "{text}");
}

#[test]
fn hop_windows_share_panes_of_the_slide() {
    let p = plan(
        "INSERT INTO out SELECT ward, window_end, avg(heart_rate), count(*) FROM vitals
         GROUP BY ward, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '1' HOUR);",
    )
    .expect("plans");
    let text = p.describe();
    assert!(text.contains("hop(slide 1min, size 1h)"), "{text}");
    assert!(text.contains("panes of 1min"), "{text}");
}

#[test]
fn group_by_without_a_window_is_an_updating_aggregate() {
    let p =
        plan("INSERT INTO out SELECT patient_id, max(heart_rate) FROM vitals GROUP BY patient_id;")
            .expect("plans");
    assert!(
        p.jobs[0]
            .stages
            .iter()
            .any(|s| matches!(s, Stage::UpdatingAggregate { .. }))
    );
    assert!(
        !p.jobs[0]
            .stages
            .iter()
            .any(|s| matches!(s, Stage::WindowAggregate { .. }))
    );
}

#[test]
fn views_are_planned_through() {
    let p = plan(
        "CREATE VIEW fast AS SELECT patient_id, observed_at, heart_rate FROM vitals WHERE heart_rate > 130;
INSERT INTO out SELECT patient_id, count(*) FROM fast GROUP BY patient_id, session(observed_at, INTERVAL '10' MINUTE);",
    )
    .expect("plans");
    assert_eq!(p.jobs[0].source.name, "vitals");
    assert!(p.describe().contains("session(gap 10min)"));
}

#[test]
fn unbounded_constructs_are_rejected_with_their_line() {
    let line = |n: usize| format!("line {}:", BODY_LINE + n);
    for (body, at, words) in [
        (
            "INSERT INTO out\nSELECT * FROM vitals\nORDER BY heart_rate;",
            2,
            "ORDER BY",
        ),
        ("INSERT INTO out SELECT * FROM vitals LIMIT 10;", 0, "LIMIT"),
        (
            "INSERT INTO out SELECT * FROM vitals a\nJOIN vitals b ON a.patient_id = b.patient_id;",
            1,
            "JOIN",
        ),
        (
            "INSERT INTO out SELECT patient_id,\n  avg(heart_rate) OVER (PARTITION BY patient_id) FROM vitals;",
            1,
            "OVER",
        ),
        (
            "INSERT INTO out SELECT * FROM read_csv('/etc/passwd');",
            0,
            "only declared tables",
        ),
        (
            "INSERT INTO out SELECT * FROM secrets;",
            0,
            "not a declared table",
        ),
        (
            "INSERT INTO out SELECT tumble(observed_at, INTERVAL '1' MINUTE) FROM vitals;",
            0,
            "belongs in GROUP BY",
        ),
        (
            "INSERT INTO out SELECT count(*) FROM vitals GROUP BY hop(observed_at, INTERVAL '7' MINUTE, INTERVAL '1' HOUR);",
            0,
            "whole multiple",
        ),
        (
            "INSERT INTO out SELECT count(*) FROM vitals GROUP BY tumble(ward, INTERVAL '1' MINUTE);",
            0,
            "event-time TIMESTAMP",
        ),
        ("DROP TABLE vitals;", 0, "not allowed in a pipeline"),
        (
            "INSERT INTO nowhere SELECT * FROM vitals;",
            0,
            "no such table",
        ),
        (
            "INSERT INTO out SELECT nonsense FROM vitals;",
            0,
            "nonsense",
        ),
        (
            "INSERT INTO out SELECT * FROM vitals UNION ALL SELECT * FROM vitals;",
            0,
            "UNION",
        ),
    ] {
        let err = rejected(body);
        assert!(err.starts_with(&line(at)), "{body}\n=> {err}");
        assert!(err.contains(words), "{body}\n=> {err}");
    }
}

#[test]
fn declarations_are_checked() {
    let bad_connector = Pipeline::plan_blocking(
        "CREATE TABLE v (a TEXT) WITH (connector = 'ftp');\nCREATE TABLE o WITH (connector = 'file', path = '-');\nINSERT INTO o SELECT a FROM v;",
    );
    assert!(
        bad_connector.contains("line 1:") && bad_connector.contains("unknown connector 'ftp'"),
        "{bad_connector}"
    );
    let bad_format = Pipeline::plan_blocking(
        "CREATE TABLE v (a TEXT) WITH (connector = 'file', path = 'x', format = 'avro');\nCREATE TABLE o WITH (connector = 'file', path = '-');\nINSERT INTO o SELECT a FROM v;",
    );
    assert!(
        bad_format.contains("unknown format 'avro' (known: json, json-narrow)"),
        "{bad_format}"
    );
    let narrow_sink = Pipeline::plan_blocking(
        "CREATE TABLE v (a TEXT) WITH (connector = 'file', path = 'x', format = 'json-narrow');\nCREATE TABLE o WITH (connector = 'file', path = '-', format = 'json-narrow');\nINSERT INTO o SELECT a FROM v;",
    );
    assert!(
        narrow_sink.contains("line 3:") && narrow_sink.contains("'json-narrow' is for sources"),
        "{narrow_sink}"
    );
    let no_watermark = Pipeline::plan_blocking(
        "CREATE TABLE v (a TEXT, t TIMESTAMP) WITH (connector = 'file', path = 'x');\nCREATE TABLE o WITH (connector = 'file', path = '-');\nINSERT INTO o SELECT a, count(*) FROM v GROUP BY a, tumble(t, INTERVAL '1' MINUTE);",
    );
    assert!(
        no_watermark.contains("declares no WATERMARK"),
        "{no_watermark}"
    );
    let watermark_on_text = Pipeline::plan_blocking(
        "CREATE TABLE v (a TEXT,\n WATERMARK FOR a AS a) WITH (connector = 'file', path = 'x');\nCREATE TABLE o WITH (connector = 'file', path = '-');\nINSERT INTO o SELECT a FROM v;",
    );
    assert!(
        watermark_on_text.starts_with("line 2:")
            && watermark_on_text.contains("must be a TIMESTAMP"),
        "{watermark_on_text}"
    );
    let sink_mismatch = Pipeline::plan_blocking(
        "CREATE TABLE v (a TEXT) WITH (connector = 'file', path = 'x');\nCREATE TABLE o (a TEXT, b DOUBLE) WITH (connector = 'file', path = '-');\nINSERT INTO o SELECT a FROM v;",
    );
    assert!(
        sink_mismatch.contains("yields 1 columns, the table declares 2"),
        "{sink_mismatch}"
    );
}

trait PlanBlocking {
    fn plan_blocking(sql: &str) -> String;
}

impl PlanBlocking for Pipeline {
    fn plan_blocking(sql: &str) -> String {
        match tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(Pipeline::plan(sql))
        {
            Ok(_) => "planned".to_owned(),
            Err(e) => e.to_string(),
        }
    }
}

/// An alert sink over vitals graded by a CASE, with `options` added.
fn alert_sink(options: &str) -> String {
    format!(
        "CREATE TABLE alerts WITH (connector = 'file', path = '-', format = 'json'{options});
INSERT INTO alerts
SELECT patient_id, observed_at, heart_rate,
       CASE WHEN heart_rate > 130 THEN 'high' WHEN heart_rate > 110 THEN 'medium' END AS grade
FROM vitals;"
    )
}

#[test]
fn alert_policy_options_are_checked_and_described() {
    let keyed = ", alert_key = 'patient_id', alert_severity = 'grade', alert_time = 'observed_at'";
    let p = plan(&alert_sink(&format!(
        "{keyed}, alert_levels = 'medium,high', alert_persistence = '2 minutes', alert_confirm = '1 minute'"
    )))
    .expect("plans");
    let a = p.jobs[0].alerts.as_ref().expect("an alert policy");
    assert_eq!(
        (
            a.levels.len(),
            a.immediate_from,
            a.persistence_ms,
            a.confirm_ms
        ),
        (2, 1, 120_000, 60_000)
    );
    assert_eq!((a.cooldown_ms, a.resolve_after_ms), (1_800_000, 120_000));
    assert_eq!(a.rule, "alerts");
    assert!(
        p.describe()
            .contains("immediate from high, confirmed after 60s"),
        "{}",
        p.describe()
    );

    for (options, expected) in [
        (
            ", alert_persistence = '2 minutes'".to_owned(),
            "alert_persistence needs alert_key",
        ),
        (
            ", alert_key = 'patient_id', alert_severity = 'grade'".to_owned(),
            "alert_time",
        ),
        (
            ", alert_key = 'heart_rate', alert_severity = 'grade', alert_time = 'observed_at'"
                .to_owned(),
            "alert_key heart_rate must be TEXT",
        ),
        (
            ", alert_key = 'patient_id', alert_severity = 'grade', alert_time = 'ward'".to_owned(),
            "alert_time ward",
        ),
        (
            format!("{keyed}, alert_immediate = 'critical'"),
            "alert_immediate critical is not one of alert_levels",
        ),
        (
            format!("{keyed}, alert_persistence = '1 minute', alert_confirm = '2 minutes'"),
            "alert_confirm (120 s) is longer than alert_persistence (60 s)",
        ),
        (
            format!("{keyed}, alert_levels = ' , '"),
            "alert_levels names no level",
        ),
    ] {
        let e = rejected(&alert_sink(&options));
        assert!(e.contains(expected), "{options}: {e}");
    }
}
