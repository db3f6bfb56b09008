-- The SELECTs behind `gemmalog to-csv` and `gemmalog to-parquet`. In CSV a non-finite value
-- is written NaN, Infinity or -Infinity, as the JSONL and every other CLI output write it
-- (DuckDB alone would write nan, inf, -inf). Parquet keeps IEEE doubles.

-- name: metrics
SELECT run, rank, phase, step, name,
       CASE WHEN isnan(value) THEN 'NaN' WHEN isinf(value) THEN CASE WHEN value > 0 THEN 'Infinity' ELSE '-Infinity' END ELSE value::VARCHAR END AS value,
       ts
FROM metrics ORDER BY run, rank, ts, name;

-- name: rewards
SELECT run, rank, phase, step, sample, reward_fn,
       CASE WHEN isnan(value) THEN 'NaN' WHEN isinf(value) THEN CASE WHEN value > 0 THEN 'Infinity' ELSE '-Infinity' END ELSE value::VARCHAR END AS value,
       source, ts
FROM rewards
ORDER BY run, rank, ts, sample, reward_fn;

-- name: parquet
SELECT * EXCLUDE (file) FROM events
