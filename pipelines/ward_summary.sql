-- Per ward, every 5 minutes over the last hour: how many patients and readings, and
-- the spread of heart rate, SpO2 and respiration rate.

CREATE TABLE vitals (
  patient_id    TEXT NOT NULL,
  ward          TEXT,
  observed_at   TIMESTAMP NOT NULL,
  received_at   TIMESTAMP,
  resp_rate     DOUBLE,
  spo2          DOUBLE,
  heart_rate    DOUBLE,
  WATERMARK FOR observed_at AS observed_at - INTERVAL '30' SECOND
) WITH (connector = 'file', path = 'samples/vitals.jsonl', format = 'json',
        arrival_time = 'received_at');

CREATE TABLE ward_summary WITH (connector = 'file', path = '-', format = 'json');

INSERT INTO ward_summary
SELECT
  ward,
  window_start,
  window_end,
  count(DISTINCT patient_id)                  AS patients,
  count(*)                                    AS readings,
  avg(heart_rate)                             AS heart_rate_mean,
  stddev(heart_rate)                          AS heart_rate_sd,
  approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY heart_rate) AS heart_rate_p90,
  min(spo2)                                   AS spo2_min,
  avg(spo2)                                   AS spo2_mean,
  max(resp_rate)                              AS resp_rate_max
FROM vitals
WHERE ward IS NOT NULL
GROUP BY ward, hop(observed_at, INTERVAL '5' MINUTE, INTERVAL '1' HOUR);
