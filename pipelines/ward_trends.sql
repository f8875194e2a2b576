-- Ward trends from the score stream of news2_per_patient.sql, every 15 minutes
-- over the last 4 hours: how many patients, their NEWS2 (mean, 90th percentile,
-- share at medium or high risk), mean vital signs, and whether the ward's NEWS2
-- is trending up (least-squares slope per hour with its p-value, Mann-Kendall)
-- or has shifted (self-starting CUSUM of the ward's mean score per minute).
--
-- A ward whose NEWS2 has shifted up (CUSUM 5 or more), is rising (Mann-Kendall
-- p below 0.01) and by a margin that matters (0.1 points an hour: the ward's
-- mean up 0.4 over the window, as when one patient in 25 goes from 0 to 10)
-- raises a ward-level alert through the same alert policy as patients: a ward
-- whose acuity climbs needs staff before any one patient's alert says so. A
-- window whose scores do not reach back to its start (the first 4 hours of a
-- run, a ward just opened) grades nothing.
--
-- Run as a second stage. Over Kafka, have the scoring stage key its output by
-- ward (--with news2_scores.key=ward), so that each ward's scores come to one
-- instance however the patients were spread over the first stage's instances:
--   vigil run pipelines/news2_per_patient.sql --path vitals=vitals.jsonl | vigil run pipelines/ward_trends.sql
-- The p-values treat each patient-minute as one observation; scores of one
-- patient are correlated minute to minute, so read them as a screen, not a
-- test of a hypothesis.

CREATE TABLE news2_scores (
  patient_id     TEXT NOT NULL,
  ward           TEXT,
  scored_at      TIMESTAMP NOT NULL,
  news2          BIGINT,
  news2_band     TEXT,
  resp_rate      DOUBLE,
  spo2           DOUBLE,
  systolic_bp    DOUBLE,
  heart_rate     DOUBLE,
  temperature    DOUBLE,
  -- Scores of one minute come from every instance of the first stage, each
  -- when its own windows close.
  WATERMARK FOR scored_at AS scored_at - INTERVAL '2' MINUTE
) WITH (connector = 'file', path = '-', format = 'json');

CREATE TABLE ward_trends WITH (connector = 'file', path = '-', format = 'json');

CREATE TABLE ward_alerts WITH (
  connector = 'file', path = 'ward_alerts.jsonl', format = 'json',
  alert_key = 'ward', alert_severity = 'change', alert_time = 'window_end',
  alert_levels = 'rising', alert_cooldown = '4 hours', alert_resolve_after = '1 hour',
  alert_rule = 'ward_news2_rising'
);

-- Every figure, per ward and window.
CREATE VIEW ward_window AS
SELECT
  ward,
  window_start,
  window_end,
  min(scored_at)                                              AS first_scored_at,
  count(DISTINCT patient_id)                                  AS patients,
  count(news2)                                                AS scores,
  avg(news2)                                                  AS news2_mean,
  approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY news2)   AS news2_p90,
  avg(CASE WHEN news2_band IN ('medium', 'high') THEN 1.0
           WHEN news2_band IS NOT NULL THEN 0.0 END)          AS at_risk_share,
  avg(heart_rate)                                             AS heart_rate_mean,
  avg(resp_rate)                                              AS resp_rate_mean,
  avg(spo2)                                                   AS spo2_mean,
  avg(systolic_bp)                                            AS systolic_bp_mean,
  trend_slope(news2, scored_at)                               AS news2_slope_per_hour,
  trend_p_value(news2, scored_at)                             AS news2_slope_p,
  mann_kendall_z(news2, scored_at)                            AS news2_mann_kendall_z,
  mann_kendall_p(news2, scored_at)                            AS news2_mann_kendall_p,
  cusum(news2, scored_at)                                     AS news2_cusum
FROM news2_scores
WHERE ward IS NOT NULL
GROUP BY ward, hop(scored_at, INTERVAL '15' MINUTE, INTERVAL '4' HOUR);

INSERT INTO ward_trends
SELECT ward, window_start, window_end, patients, scores, news2_mean, news2_p90,
       at_risk_share, heart_rate_mean, resp_rate_mean, spo2_mean, systolic_bp_mean,
       news2_slope_per_hour, news2_slope_p, news2_mann_kendall_z,
       news2_mann_kendall_p, news2_cusum
FROM ward_window;

INSERT INTO ward_alerts
SELECT
  ward,
  window_end,
  CASE WHEN first_scored_at > window_start + INTERVAL '15' MINUTE THEN NULL
       WHEN news2_cusum >= 5 AND news2_mann_kendall_p < 0.01
        AND news2_slope_per_hour >= 0.1 THEN 'rising'
       WHEN scores > 0 THEN 'steady' END AS change,
  patients, news2_mean, news2_slope_per_hour, news2_mann_kendall_p, news2_cusum
FROM ward_window;
