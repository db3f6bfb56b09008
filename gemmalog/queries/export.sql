-- The SELECTs behind `gemmalog to-csv` and `gemmalog to-parquet`.

-- name: metrics
SELECT run, rank, phase, step, name, value, ts FROM metrics ORDER BY run, rank, ts, name;

-- name: rewards
SELECT run, rank, phase, step, sample, reward_fn, value, source, ts FROM rewards
ORDER BY run, rank, ts, sample, reward_fn;

-- name: parquet
SELECT * EXCLUDE (file) FROM events
