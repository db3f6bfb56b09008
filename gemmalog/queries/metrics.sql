-- Long format: one row per metric value of every `metrics` event.
CREATE VIEW metrics AS
SELECT run, rank, phase, step, name, value, ts, epoch, logger
FROM (
    SELECT run, rank, phase, step, ts, epoch, logger,
           unnest(map_keys(metrics)) AS name,
           unnest(map_values(metrics)) AS value
    FROM events
    WHERE kind = 'metrics'
);
