-- NEWS2 written as plain SQL CASE expressions over the canonical vitals columns: what a
-- user would write without vigil's functions. Used by the benchmark (as the baseline)
-- and by the tests (which check it agrees with news2()). NULL when any parameter is
-- missing or outside its plausible range, like news2().
SELECT
  (CASE WHEN resp_rate IS NULL OR NOT (resp_rate BETWEEN 1 AND 80) THEN NULL
        WHEN resp_rate <= 8 THEN 3 WHEN resp_rate <= 11 THEN 1 WHEN resp_rate <= 20 THEN 0
        WHEN resp_rate <= 24 THEN 2 ELSE 3 END)
+ (CASE WHEN spo2 IS NULL OR NOT (spo2 BETWEEN 40 AND 100) THEN NULL
        WHEN coalesce(spo2_scale, 1) = 1 THEN
          (CASE WHEN spo2 <= 91 THEN 3 WHEN spo2 <= 93 THEN 2 WHEN spo2 <= 95 THEN 1 ELSE 0 END)
        WHEN spo2_scale = 2 THEN
          (CASE WHEN spo2 <= 83 THEN 3 WHEN spo2 <= 85 THEN 2 WHEN spo2 <= 87 THEN 1
                WHEN spo2 <= 92 THEN 0 WHEN on_oxygen IS NULL THEN NULL WHEN NOT on_oxygen THEN 0
                WHEN spo2 <= 94 THEN 1 WHEN spo2 <= 96 THEN 2 ELSE 3 END)
        ELSE NULL END)
+ (CASE WHEN on_oxygen THEN 2 WHEN NOT on_oxygen THEN 0 END)
+ (CASE WHEN systolic_bp IS NULL OR NOT (systolic_bp BETWEEN 30 AND 300) THEN NULL
        WHEN systolic_bp <= 90 THEN 3 WHEN systolic_bp <= 100 THEN 2 WHEN systolic_bp <= 110 THEN 1
        WHEN systolic_bp <= 219 THEN 0 ELSE 3 END)
+ (CASE WHEN heart_rate IS NULL OR NOT (heart_rate BETWEEN 20 AND 300) THEN NULL
        WHEN heart_rate <= 40 THEN 3 WHEN heart_rate <= 50 THEN 1 WHEN heart_rate <= 90 THEN 0
        WHEN heart_rate <= 110 THEN 1 WHEN heart_rate <= 130 THEN 2 ELSE 3 END)
+ (CASE WHEN upper(trim(consciousness)) IN ('A', 'ALERT') THEN 0
        WHEN upper(trim(consciousness)) IN ('C', 'V', 'P', 'U', 'CONFUSION', 'CONFUSED',
          'NEW CONFUSION', 'VOICE', 'RESPONDS TO VOICE', 'RESPONDS TO VOICE ONLY', 'PAIN',
          'RESPONDS TO PAIN', 'RESPONDS TO PAIN ONLY', 'UNRESPONSIVE', 'UNCONSCIOUS') THEN 3
        END)
+ (CASE WHEN temperature IS NULL OR NOT (temperature BETWEEN 25 AND 45) THEN NULL
        WHEN temperature <= 35 THEN 3 WHEN temperature <= 36 THEN 1 WHEN temperature <= 38 THEN 0
        WHEN temperature <= 39 THEN 1 ELSE 2 END)
  AS news2
FROM vitals
