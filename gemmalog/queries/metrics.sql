-- Long format: one row per metric value of every `metrics` event.
-- A resumed run (segments) logs some steps twice: the latest segment's value wins.
CREATE VIEW metrics AS
SELECT run, rank, phase, step, name, value, ts, epoch, logger
FROM (
    SELECT run, rank, phase, step, ts, epoch, logger, segment,
           unnest(map_keys(metrics)) AS name,
           unnest(map_values(metrics)) AS value
    FROM events
    WHERE kind = 'metrics'
)
QUALIFY step IS NULL
     OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step, name);
