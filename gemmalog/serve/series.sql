-- Every curve of one run as (phase, name, step, value, ts) points, one point a step (the mean
-- over ranks), downsampled to $buckets buckets a series keeping each bucket's lowest and
-- highest value and each series' first and last point.
-- name: series
WITH points AS (
    SELECT phase, name, step, avg(value) AS value, max(ts) AS ts
    FROM metrics WHERE step > $since GROUP BY ALL
    UNION ALL
    -- each function's mean score: from the completions' reward maps, else from `reward`
    -- events (as the rewards view decides, on the per-step means: its row-level merge
    -- costs more)
    SELECT coalesce(o.phase, b.phase), 'reward/' || coalesce(o.fn, b.fn),
           coalesce(o.step, b.step), coalesce(o.value, b.value), coalesce(o.ts, b.ts)
    FROM (
        SELECT phase, step, fn, avg(value) AS value, max(ts) AS ts FROM (
            SELECT phase, step, ts, unnest(map_keys(rewards)) AS fn,
                   unnest(map_values(rewards)) AS value
            FROM completions WHERE step > $since AND rewards IS NOT NULL
        ) GROUP BY ALL
    ) o
    FULL JOIN (
        SELECT phase, step, fn, avg(value) AS value, max(ts) AS ts FROM (
            SELECT phase, step, ts, reward_fn AS fn, unnest("values") AS value
            FROM events WHERE kind = 'reward' AND step > $since
        ) GROUP BY ALL
    ) b ON o.phase IS NOT DISTINCT FROM b.phase AND o.step = b.step AND o.fn = b.fn
    UNION ALL
    SELECT phase, 'reward/total', step, avg(total_reward), max(ts)
    FROM completions WHERE step > $since AND total_reward IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT phase, 'accuracy', step, avg(correct::DOUBLE), max(ts)
    FROM completions WHERE step > $since AND correct IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT phase, 'completions/length_tokens', step, avg(length_tokens), max(ts)
    FROM completions WHERE step > $since AND length_tokens IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT phase, 'completions/length_chars', step, avg(length), max(ts)
    FROM completions WHERE step > $since AND length IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'system', 'system/' || name, step, avg(value), max(ts)
    FROM (
        UNPIVOT (
            SELECT step, ts, cpu_rss_mb, cpu_percent, cuda_allocated_mb, cuda_reserved_mb,
                   cuda_peak_mb, mps_allocated_mb, tokens_per_second
            FROM system WHERE step > $since
        ) ON COLUMNS(* EXCLUDE (step, ts)) INTO NAME name VALUE value
    ) GROUP BY ALL
    UNION ALL
    SELECT phase, 'generation/' || name, step, avg(value), max(ts)
    FROM (
        UNPIVOT (
            SELECT phase, step, ts, mean_length_chars, mean_length_tokens, truncation_rate,
                   distinct_1, distinct_2, repeated_ngram_ratio, format_adherence,
                   answer_extraction_rate
            FROM generation WHERE step > $since
        ) ON COLUMNS(* EXCLUDE (phase, step, ts)) INTO NAME name VALUE value
    ) GROUP BY ALL
),
wanted AS (
    SELECT coalesce(phase, 'train') AS phase, name, step, value, ts FROM points
    WHERE step IS NOT NULL AND (len($names) = 0 OR list_contains($names, name))
),
sized AS (
    SELECT phase, name, count(*) AS n, min(step) AS lo, max(step) AS hi
    FROM wanted GROUP BY ALL
),
bucketed AS (
    SELECT w.*, s.n, s.lo, s.hi,
           CASE WHEN s.n <= 2 * $buckets THEN w.step
                ELSE floor((w.step - s.lo) * $buckets / (s.hi - s.lo + 1)) END AS bucket
    FROM wanted w JOIN sized s USING (phase, name)
),
-- the lowest and highest point of each bucket (NaN counts as the highest: it is kept)
extremes AS (
    SELECT phase, name, unnest([arg_min(step, value), arg_max(step, value)]) AS step
    FROM bucketed GROUP BY phase, name, bucket
)
SELECT phase, name, step, value, ts, n
FROM bucketed b
WHERE step = lo OR step = hi
   OR EXISTS (SELECT 1 FROM extremes e
              WHERE e.phase = b.phase AND e.name = b.name AND e.step = b.step)
ORDER BY phase, name, step
