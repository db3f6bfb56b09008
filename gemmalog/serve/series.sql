-- Every curve of one run as (phase, name, step, value, ts) points, one point a step (the mean
-- over ranks), downsampled to $buckets buckets a series keeping each bucket's lowest and
-- highest value and each series' first and last point.
-- name: series
WITH points AS (
    SELECT phase, name, step, avg(value) AS value, max(ts) AS ts
    FROM metrics WHERE step > $since GROUP BY ALL
    UNION ALL
    SELECT phase, 'reward/' || reward_fn, step, avg(value), max(ts)
    FROM rewards WHERE step > $since GROUP BY ALL
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
    SELECT *, count(*) OVER s AS n, min(step) OVER s AS lo, max(step) OVER s AS hi
    FROM wanted WINDOW s AS (PARTITION BY phase, name)
),
bucketed AS (
    SELECT *, CASE WHEN n <= 2 * $buckets THEN step
                   ELSE floor((step - lo) * $buckets / (hi - lo + 1)) END AS bucket
    FROM sized
),
ranked AS (
    SELECT *,
        row_number() OVER (PARTITION BY phase, name, bucket ORDER BY value ASC NULLS LAST, step) AS low,
        row_number() OVER (PARTITION BY phase, name, bucket ORDER BY value DESC NULLS LAST, step) AS high
    FROM bucketed
)
SELECT phase, name, step, value, ts, n
FROM ranked WHERE low = 1 OR high = 1 OR step = lo OR step = hi
ORDER BY phase, name, step
