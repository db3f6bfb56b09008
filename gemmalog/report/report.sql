-- The queries behind gemmalog.report: one block per `-- name:` line, each over a connection
-- that may hold several runs (every result carries its run), after freeze().

-- name: runs
WITH start AS (
    SELECT run,
           max(model_name) AS model_name,
           max(num_parameters) AS num_parameters,
           max(dataset_size) AS dataset_size,
           arg_max(training_args, ts) FILTER (WHERE training_args IS NOT NULL)::VARCHAR AS training_args
    FROM events
    WHERE kind = 'run_start'
    GROUP BY run
)
SELECT r.run, r.name, r.status, r.start, r."end", r.duration_s, r.steps, r.events, r.ranks,
       r.world_size, r.last_reward, r.accuracy, r.drops, r.events_written, r.events_lost,
       r.sink_errors::VARCHAR AS sink_errors, r.error, r.host, r.git_commit,
       r.config::VARCHAR AS config, r.versions::VARCHAR AS versions, r.dir,
       s.model_name, s.num_parameters, s.dataset_size, s.training_args
FROM runs r
LEFT JOIN start s ON s.run = r.run
ORDER BY r.start, r.run;

-- name: metrics
-- Per-step mean over ranks of the curves the report draws; non-finite values are left to
-- the non_finite table.
SELECT run, name, phase, step, avg(value) AS value
FROM metrics
WHERE name IN ('loss', 'kl', 'entropy') AND step IS NOT NULL AND isfinite(value)
GROUP BY ALL
ORDER BY run, name, phase, step;

-- name: reward_fns
-- Mean score per function and step; NaN (an abstaining function) and ±inf are left out.
SELECT run, reward_fn, phase, step, avg(value) FILTER (WHERE isfinite(value)) AS value
FROM rewards
WHERE step IS NOT NULL
GROUP BY ALL
HAVING value IS NOT NULL
ORDER BY run, reward_fn, phase, step;

-- name: total_reward
-- Total reward per step the way the runs view defines it: the sum over functions of their means.
SELECT run, phase, step, sum(mean_value) AS value
FROM (
    SELECT run, phase, step, reward_fn, avg(value) FILTER (WHERE isfinite(value)) AS mean_value
    FROM rewards
    WHERE step IS NOT NULL
    GROUP BY ALL
)
GROUP BY ALL
HAVING value IS NOT NULL
ORDER BY run, phase, step;

-- name: accuracy
SELECT run, phase, step, accuracy, cumulative_accuracy
FROM accuracy
WHERE step IS NOT NULL
ORDER BY run, phase, step;

-- name: lengths
SELECT run, length FROM completions WHERE length IS NOT NULL ORDER BY run;

-- name: length_drift
SELECT run, phase, step,
       quantile_cont(length, 0.1) AS p10,
       median(length) AS p50,
       quantile_cont(length, 0.9) AS p90
FROM completions
WHERE length IS NOT NULL AND step IS NOT NULL
GROUP BY ALL
ORDER BY run, phase, step;

-- name: memory
-- Seconds since the run's first event, resident memory and accelerator memory per rank.
WITH t0 AS (SELECT run, min(ts) AS t0 FROM events GROUP BY run)
SELECT s.run, s.rank, s.ts - t0.t0 AS t, s.cpu_rss_mb,
       coalesce(s.cuda_allocated_mb, s.mps_allocated_mb) AS gpu_mb
FROM system s
JOIN t0 ON t0.run = s.run
WHERE s.ts IS NOT NULL
ORDER BY s.run, s.rank, s.ts;

-- name: extremes
-- The $limit best and worst completions of each run by total reward; long texts are cut here.
WITH ranked AS (
    SELECT run, rank, phase, step, sample, total_reward, rewards, correct, question,
           true_answer, answer, left(model_output, 4000) AS model_output, length,
           advantage, messages,
           row_number() OVER (PARTITION BY run ORDER BY total_reward DESC, step, sample) AS best,
           row_number() OVER (PARTITION BY run ORDER BY total_reward ASC, step, sample) AS worst
    FROM completions
    WHERE isfinite(total_reward)
)
SELECT * FROM ranked
WHERE best <= $limit OR worst <= $limit
ORDER BY run, total_reward DESC, step, sample;

-- name: non_finite
SELECT run, rank, phase, step, name, value, count(*) OVER (PARTITION BY run) AS total
FROM metrics
WHERE isnan(value) OR isinf(value)
QUALIFY row_number() OVER (PARTITION BY run ORDER BY step, name, rank) <= $limit
ORDER BY run, step, name, rank;

-- name: read_errors
SELECT file, lines FROM gemmalog_read_errors ORDER BY file;
