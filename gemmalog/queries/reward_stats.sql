-- One row per reward function per reward_summary event: mean, std, min, max, count.
-- `stats` is also run_end's JSON field, so the shared column is JSON: cast it back here.
CREATE VIEW reward_stats AS
SELECT run, rank, phase, step, ts, reward_fn,
       s.mean AS mean, s.std AS std, s.min AS min, s.max AS max, s.count AS count
FROM (
    SELECT run, rank, phase, step, ts,
           unnest(map_keys(st)) AS reward_fn,
           unnest(map_values(st)) AS s
    FROM (
        SELECT *, CAST(stats AS MAP(VARCHAR, STRUCT(mean DOUBLE, std DOUBLE, min DOUBLE, max DOUBLE, count BIGINT))) AS st
        FROM events
        WHERE kind = 'reward_summary'
    )
);
