-- One row per reward function per reward_summary event: mean, std, min, max, count.
CREATE VIEW reward_stats AS
SELECT run, rank, phase, step, ts, reward_fn,
       s.mean AS mean, s.std AS std, s.min AS min, s.max AS max, s.count AS count
FROM (
    SELECT run, rank, phase, step, ts,
           unnest(map_keys(st)) AS reward_fn,
           unnest(map_values(st)) AS s
    FROM (
        SELECT *, stats AS st
        FROM events
        WHERE kind = 'reward_summary'
        QUALIFY step IS NULL
             OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step)
    )
);
