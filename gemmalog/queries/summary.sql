-- The queries behind gemmalog.queries.summary(): one block per `-- name:` line, each run
-- over a one-run connection (after freeze(), so the files are read once).

-- name: run
SELECT run, name, status, start, "end", duration_s, steps, events, ranks, world_size,
       drops, events_written, events_lost, sink_errors, error, host, dir
FROM _run_facts;

-- name: loss
SELECT phase,
       arg_min(value, (step, ts)) AS first,
       arg_max(value, (step, ts)) AS last,
       min(value) FILTER (WHERE NOT isnan(value)) AS min,
       count(*) FILTER (WHERE isnan(value) OR isinf(value)) AS non_finite,
       count(*) AS count
FROM metrics
WHERE name = 'loss' AND value IS NOT NULL
GROUP BY phase
ORDER BY phase;

-- name: rewards
WITH per_step AS (
    SELECT phase, reward_fn, step, avg(value) AS mean, count(*) AS n
    FROM rewards
    GROUP BY phase, reward_fn, step
)
SELECT phase, reward_fn,
       arg_min(mean, step) AS first,
       arg_max(mean, step) AS last,
       sum(mean * n) / sum(n) AS mean,
       sum(n)::BIGINT AS count
FROM per_step
GROUP BY phase, reward_fn
ORDER BY phase, reward_fn;

-- name: accuracy
SELECT phase, sum(correct)::BIGINT AS correct, sum(total)::BIGINT AS total, sum(correct) / sum(total) AS accuracy
FROM accuracy
GROUP BY phase
ORDER BY phase;

-- name: completions
SELECT count(*) AS count, avg(length) AS mean_length, min(length) AS min_length,
       max(length) AS max_length, avg(length_tokens) AS mean_tokens
FROM completions;

-- name: memory
-- The peaks of the samples that are numbers: DuckDB orders NaN above every number, and one
-- NaN sample would hide the peak.
SELECT greatest(max(rss_mb) FILTER (WHERE isfinite(rss_mb)),
                max(cpu_rss_mb) FILTER (WHERE isfinite(cpu_rss_mb))) AS cpu_peak_mb,
       greatest(max(gpu_mb) FILTER (WHERE isfinite(gpu_mb)),
                max(cuda_peak_mb) FILTER (WHERE isfinite(cuda_peak_mb)),
                max(cuda_allocated_mb) FILTER (WHERE isfinite(cuda_allocated_mb)),
                max(mps_allocated_mb) FILTER (WHERE isfinite(mps_allocated_mb))) AS gpu_peak_mb
FROM events;

-- name: read_errors
SELECT coalesce(sum(lines), 0)::BIGINT AS lines FROM gemmalog_read_errors;
