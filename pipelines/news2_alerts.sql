-- NEWS2 alerts from the score stream of news2_per_patient.sql:
-- - a band of low-medium or above alerts once it has held for 2 minutes (one
--   artefactual reading pages nobody);
-- - high alerts on its second minute (a motion artefact rarely lasts into the
--   next minute's reading);
-- - a higher band escalates under the same rules;
-- - a band that stays alerts again after 60 minutes (NEWS2's minimum
--   observation frequency for a medium score is hourly);
-- - back to low for 30 minutes resolves, so that a patient hovering at a band
--   edge is not paged again each time the score crosses it.
-- `vigil evaluate` measured each choice (README, "vigil evaluate"). A score that
-- could not be computed (a parameter missing) neither raises nor resolves
-- anything. Run as a second stage:
--   vigil run pipelines/news2_per_patient.sql --path vitals=vitals.jsonl | vigil run pipelines/news2_alerts.sql
-- or over Kafka with --topic news2_scores=news2-scores --topic news2_alerts=news2-alerts.

CREATE TABLE news2_scores (
  patient_id     TEXT NOT NULL,
  ward           TEXT,
  scored_at      TIMESTAMP NOT NULL,
  news2          BIGINT,
  news2_band     TEXT,
  news2_partial  BIGINT,
  resp_rate_score     BIGINT,
  spo2_score          BIGINT,
  air_or_oxygen_score BIGINT,
  systolic_bp_score   BIGINT,
  heart_rate_score    BIGINT,
  consciousness_score BIGINT,
  temperature_score   BIGINT,
  resp_rate      DOUBLE,
  resp_rate_at   TIMESTAMP,
  spo2           DOUBLE,
  spo2_at        TIMESTAMP,
  spo2_scale     DOUBLE,
  on_oxygen      BOOLEAN,
  systolic_bp    DOUBLE,
  systolic_bp_at TIMESTAMP,
  heart_rate     DOUBLE,
  heart_rate_at  TIMESTAMP,
  consciousness  TEXT,
  temperature    DOUBLE,
  round_at       TIMESTAMP
) WITH (connector = 'file', path = '-', format = 'json');

CREATE TABLE news2_alerts WITH (
  connector = 'file', path = '-', format = 'json',
  alert_key = 'patient_id', alert_severity = 'news2_band', alert_time = 'scored_at',
  alert_levels = 'low-medium,medium,high', alert_immediate = 'high',
  alert_persistence = '2 minutes', alert_confirm = '1 minute', alert_cooldown = '60 minutes',
  alert_resolve_after = '30 minutes', alert_rule = 'news2'
);

INSERT INTO news2_alerts
SELECT * FROM news2_scores;
