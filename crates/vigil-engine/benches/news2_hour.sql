-- NEWS2 per patient from the latest value of each vital within the last hour,
-- scored every minute (a 1-hour window hopping every minute). Shared by the
-- engine's `patients` bench and the Kafka bench's scale phase.
CREATE TABLE vitals (
  patient_id TEXT NOT NULL, observed_at TIMESTAMP NOT NULL,
  resp_rate DOUBLE, spo2 DOUBLE, on_oxygen BOOLEAN, systolic_bp DOUBLE,
  heart_rate DOUBLE, consciousness TEXT, temperature DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '5' SECOND
) WITH (connector = 'kafka', topic = 'vitals', format = 'json');
CREATE TABLE scores WITH (connector = 'kafka', topic = 'scores', format = 'json');
CREATE VIEW latest AS SELECT patient_id, window_end,
  last_value(resp_rate ORDER BY observed_at) IGNORE NULLS AS resp_rate,
  last_value(spo2 ORDER BY observed_at) IGNORE NULLS AS spo2,
  last_value(on_oxygen ORDER BY observed_at) IGNORE NULLS AS on_oxygen,
  last_value(systolic_bp ORDER BY observed_at) IGNORE NULLS AS systolic_bp,
  last_value(heart_rate ORDER BY observed_at) IGNORE NULLS AS heart_rate,
  last_value(consciousness ORDER BY observed_at) IGNORE NULLS AS consciousness,
  last_value(temperature ORDER BY observed_at) IGNORE NULLS AS temperature
FROM vitals GROUP BY patient_id, hop(observed_at, INTERVAL '1' MINUTE, INTERVAL '1' HOUR);
INSERT INTO scores SELECT patient_id, window_end,
  news2(resp_rate, spo2, 1, on_oxygen, systolic_bp, heart_rate, consciousness, temperature) AS news2
FROM latest;
