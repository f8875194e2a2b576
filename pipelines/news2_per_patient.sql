-- NEWS2 per patient, every minute, from the latest observation of each parameter
-- that is still current: heart rate, SpO2 and respiration rate within the last
-- hour, blood pressure within 2 hours, temperature and consciousness (taken at
-- nursing rounds, every 4 hours) within 5 hours. A parameter with no current
-- observation is missing (news2 is NULL and news2_partial says what could be
-- scored), never assumed normal.

CREATE TABLE vitals (
  patient_id    TEXT NOT NULL,
  ward          TEXT,
  observed_at   TIMESTAMP NOT NULL,
  received_at   TIMESTAMP,
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
) WITH (connector = 'file', path = 'samples/vitals.jsonl', format = 'json',
        arrival_time = 'received_at');

CREATE TABLE news2_scores WITH (connector = 'file', path = '-', format = 'json');

-- The latest value of each parameter over the longest validity (5 hours), and
-- when it was observed.
CREATE VIEW latest AS
SELECT
  patient_id,
  window_end,
  last_value(ward ORDER BY observed_at) IGNORE NULLS          AS ward,
  last_value(resp_rate ORDER BY observed_at) IGNORE NULLS     AS resp_rate,
  last_value(observed_at ORDER BY observed_at) FILTER (WHERE resp_rate IS NOT NULL) AS resp_rate_at,
  last_value(spo2 ORDER BY observed_at) IGNORE NULLS          AS spo2,
  last_value(observed_at ORDER BY observed_at) FILTER (WHERE spo2 IS NOT NULL) AS spo2_at,
  last_value(spo2_scale ORDER BY observed_at) IGNORE NULLS    AS spo2_scale,
  last_value(on_oxygen ORDER BY observed_at) IGNORE NULLS     AS on_oxygen,
  last_value(observed_at ORDER BY observed_at) FILTER (WHERE on_oxygen IS NOT NULL) AS on_oxygen_at,
  last_value(systolic_bp ORDER BY observed_at) IGNORE NULLS   AS systolic_bp,
  last_value(observed_at ORDER BY observed_at) FILTER (WHERE systolic_bp IS NOT NULL) AS systolic_bp_at,
  last_value(heart_rate ORDER BY observed_at) IGNORE NULLS    AS heart_rate,
  last_value(observed_at ORDER BY observed_at) FILTER (WHERE heart_rate IS NOT NULL) AS heart_rate_at,
  last_value(consciousness ORDER BY observed_at) IGNORE NULLS AS consciousness,
  last_value(temperature ORDER BY observed_at) IGNORE NULLS   AS temperature,
  last_value(observed_at ORDER BY observed_at) FILTER (WHERE temperature IS NOT NULL) AS round_at
FROM vitals
GROUP BY patient_id, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '5' HOUR);

-- Each parameter if still current, NULL if not, with when it was observed.
CREATE VIEW current AS
SELECT
  patient_id,
  ward,
  window_end AS scored_at,
  CASE WHEN resp_rate_at >= window_end - INTERVAL '1' HOUR THEN resp_rate END     AS resp_rate,
  CASE WHEN resp_rate_at >= window_end - INTERVAL '1' HOUR THEN resp_rate_at END  AS resp_rate_at,
  CASE WHEN spo2_at >= window_end - INTERVAL '1' HOUR THEN spo2 END               AS spo2,
  CASE WHEN spo2_at >= window_end - INTERVAL '1' HOUR THEN spo2_at END            AS spo2_at,
  spo2_scale,
  CASE WHEN on_oxygen_at >= window_end - INTERVAL '1' HOUR THEN on_oxygen END     AS on_oxygen,
  CASE WHEN systolic_bp_at >= window_end - INTERVAL '2' HOUR THEN systolic_bp END AS systolic_bp,
  CASE WHEN systolic_bp_at >= window_end - INTERVAL '2' HOUR THEN systolic_bp_at END AS systolic_bp_at,
  CASE WHEN heart_rate_at >= window_end - INTERVAL '1' HOUR THEN heart_rate END   AS heart_rate,
  CASE WHEN heart_rate_at >= window_end - INTERVAL '1' HOUR THEN heart_rate_at END AS heart_rate_at,
  consciousness,
  temperature,
  round_at
FROM latest;

-- The score, its band and what could be scored, with the detail behind them:
-- each parameter's points on the chart (0 to 3; NULL when the parameter is
-- missing) and the readings with their times.
CREATE VIEW scored AS
SELECT
  *,
  news2_detail(resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, heart_rate, consciousness, temperature) AS detail
FROM current;

INSERT INTO news2_scores
SELECT
  patient_id,
  ward,
  scored_at,
  detail['score']                        AS news2,
  detail['band']                         AS news2_band,
  detail['partial']                      AS news2_partial,
  detail['subscores']['resp_rate']       AS resp_rate_score,
  detail['subscores']['spo2']            AS spo2_score,
  detail['subscores']['air_or_oxygen']   AS air_or_oxygen_score,
  detail['subscores']['systolic_bp']     AS systolic_bp_score,
  detail['subscores']['heart_rate']      AS heart_rate_score,
  detail['subscores']['consciousness']   AS consciousness_score,
  detail['subscores']['temperature']     AS temperature_score,
  resp_rate, resp_rate_at, spo2, spo2_at, spo2_scale, on_oxygen, systolic_bp, systolic_bp_at,
  heart_rate, heart_rate_at, consciousness, temperature, round_at
FROM scored;
