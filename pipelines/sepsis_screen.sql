-- A sepsis screen from the score stream of news2_per_patient.sql: qSOFA
-- (respiration 22 or more, systolic 100 or less, altered mentation) from the
-- same current observations NEWS2 was scored from, with SIRS's temperature and
-- heart-rate criteria beside it for the team's review.
--
-- qSOFA of 2 or more is positive (the Sepsis-3 bedside prompt to look for
-- infection and organ dysfunction). Two criteria met are positive even when the
-- third is missing; fewer than two met with one missing is unknown (NULL: no
-- evidence either way), never negative. A positive screen held for 5 minutes
-- alerts; it alerts again after 2 hours if still positive, and resolves after
-- 30 minutes negative. Run as a second stage:
--   vigil run pipelines/news2_per_patient.sql --path vitals=vitals.jsonl | vigil run pipelines/sepsis_screen.sql
-- and measure it with: vigil evaluate --alerts pipelines/sepsis_screen.sql

CREATE TABLE news2_scores (
  patient_id     TEXT NOT NULL,
  ward           TEXT,
  scored_at      TIMESTAMP NOT NULL,
  news2          BIGINT,
  news2_band     TEXT,
  resp_rate      DOUBLE,
  systolic_bp    DOUBLE,
  heart_rate     DOUBLE,
  consciousness  TEXT,
  temperature    DOUBLE
) WITH (connector = 'file', path = '-', format = 'json');

CREATE TABLE sepsis_alerts WITH (
  connector = 'file', path = '-', format = 'json',
  alert_key = 'patient_id', alert_severity = 'screen', alert_time = 'scored_at',
  alert_levels = 'positive', alert_immediate = 'none', alert_persistence = '5 minutes',
  alert_cooldown = '2 hours', alert_resolve_after = '30 minutes', alert_rule = 'sepsis_screen'
);

INSERT INTO sepsis_alerts
SELECT
  patient_id,
  ward,
  scored_at,
  CASE WHEN qsofa_partial(resp_rate, systolic_bp, consciousness) >= 2 THEN 'positive'
       WHEN qsofa(resp_rate, systolic_bp, consciousness) IS NOT NULL THEN 'negative'
  END                                                AS screen,
  qsofa_partial(resp_rate, systolic_bp, consciousness) AS qsofa_criteria_met,
  qsofa_detail(resp_rate, systolic_bp, consciousness)['missing'] AS qsofa_missing,
  sirs(resp_rate, heart_rate, temperature)           AS sirs,
  news2,
  news2_band,
  resp_rate,
  systolic_bp,
  heart_rate,
  consciousness,
  temperature
FROM news2_scores;
