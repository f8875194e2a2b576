-- The shipped NEWS2 pipeline (pipelines/news2_per_patient.sql) with its tables
-- made Kafka topics, as docker/compose.yaml runs it.
--
-- NEWS2 per patient, every minute, from the latest reading of each vital sign within
-- the last hour. A vital not measured in the hour is missing (news2 is NULL and
-- news2_partial says what could be scored), never assumed normal.

CREATE TABLE vitals (
  patient_id    TEXT NOT NULL,
  ward          TEXT,
  observed_at   TIMESTAMP NOT NULL,
  resp_rate     DOUBLE,
  spo2          DOUBLE,
  spo2_scale    DOUBLE,
  on_oxygen     BOOLEAN,
  systolic_bp   DOUBLE,
  diastolic_bp  DOUBLE,
  heart_rate    DOUBLE,
  consciousness TEXT,
  temperature   DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '30' SECOND
) WITH (connector = 'kafka', topic = 'vitals', format = 'json');

CREATE TABLE news2_scores WITH (connector = 'kafka', topic = 'news2-scores', key = 'patient_id', format = 'json');

CREATE VIEW latest AS
SELECT
  patient_id,
  window_end,
  last_value(resp_rate ORDER BY observed_at) IGNORE NULLS     AS resp_rate,
  last_value(spo2 ORDER BY observed_at) IGNORE NULLS          AS spo2,
  last_value(spo2_scale ORDER BY observed_at) IGNORE NULLS    AS spo2_scale,
  last_value(on_oxygen ORDER BY observed_at) IGNORE NULLS     AS on_oxygen,
  last_value(systolic_bp ORDER BY observed_at) IGNORE NULLS   AS systolic_bp,
  last_value(heart_rate ORDER BY observed_at) IGNORE NULLS    AS heart_rate,
  last_value(consciousness ORDER BY observed_at) IGNORE NULLS AS consciousness,
  last_value(temperature ORDER BY observed_at) IGNORE NULLS   AS temperature
FROM vitals
GROUP BY patient_id, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '1' HOUR);

INSERT INTO news2_scores
SELECT
  patient_id,
  window_end AS scored_at,
  news2(resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, heart_rate, consciousness, temperature)         AS news2,
  news2_band(resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, heart_rate, consciousness, temperature)    AS news2_band,
  news2_partial(resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, heart_rate, consciousness, temperature) AS news2_partial
FROM latest;
