-- One row per reward function per reward_summary event: mean, std, min, max, count.
-- A resumed run's latest segment wins (a window skipped when every row read is of one
-- segment: see completions.sql).
CREATE VIEW reward_stats AS
WITH summaries AS NOT MATERIALIZED (
    SELECT run, rank, phase, step, ts, stats AS st, segment
    FROM events
    WHERE kind = 'reward_summary'
),
latest AS (
    SELECT * FROM summaries WHERE NOT gemmalog_mixed_segments()
    UNION ALL
    SELECT * FROM summaries WHERE gemmalog_mixed_segments()
    QUALIFY step IS NULL
         OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step)
)
SELECT run, rank, phase, step, ts, reward_fn,
       s.mean AS mean, s.std AS std, s.min AS min, s.max AS max, s.count AS count
FROM (
    SELECT run, rank, phase, step, ts,
           unnest(map_keys(st)) AS reward_fn,
           unnest(map_values(st)) AS s
    FROM latest
);
