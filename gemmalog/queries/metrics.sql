-- Long format: one row per metric value of every `metrics` event.
-- A resumed run (segments) logs some steps twice: the latest segment's value wins (a window
-- skipped when every row read is of one segment: see completions.sql).
CREATE VIEW metrics AS
WITH long AS NOT MATERIALIZED (
    SELECT run, rank, phase, step, ts, epoch, logger, segment,
           unnest(map_keys(metrics)) AS name,
           unnest(map_values(metrics)) AS value
    FROM events
    WHERE kind = 'metrics'
)
SELECT run, rank, phase, step, name, value, ts, epoch, logger
FROM long WHERE NOT gemmalog_mixed_segments()
UNION ALL
SELECT run, rank, phase, step, name, value, ts, epoch, logger
FROM long WHERE gemmalog_mixed_segments()
QUALIFY step IS NULL
     OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step, name);
