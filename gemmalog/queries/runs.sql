-- One row per run: its run.json manifest joined with what its events say.
-- _run_facts is that without the last reward and the accuracy (which read every completion
-- and reward): summary() asks only for these columns, and DuckDB does not drop an unused
-- LEFT JOIN by itself.
CREATE VIEW _run_facts AS
WITH ev AS (
    SELECT run, max(step) AS steps, count(*) AS events, count(DISTINCT rank)::INTEGER AS ranks,
           min(ts) AS first_ts, max(ts) AS last_ts, min(file) AS file
    FROM events
    GROUP BY run
)
SELECT coalesce(m.id, ev.run) AS run,
       coalesce(m.name, ev.run) AS name,
       coalesce(m.status, 'unknown') AS status,
       make_timestamp(CAST(coalesce(m.start, ev.first_ts) * 1e6 AS BIGINT)) AS start,
       make_timestamp(CAST(m."end" * 1e6 AS BIGINT)) AS "end",
       coalesce(m.duration_s, ev.last_ts - coalesce(m.start, ev.first_ts)) AS duration_s,
       ev.steps, ev.events, ev.ranks, m.world_size,
       m.drops, m.events_written, m.events_lost, m.sink_errors, m.error,
       m.host, m.git_commit, m.config, m.versions,
       coalesce(m.dir, parse_dirpath(ev.file)) AS dir
FROM _manifests m
FULL OUTER JOIN ev ON ev.run = m.id;

CREATE VIEW runs AS
WITH step_reward AS (
    SELECT run, step, sum(mean_value) AS reward
    FROM (
        SELECT run, step, reward_fn, avg(value) AS mean_value
        FROM rewards
        WHERE phase = 'train' OR phase IS NULL
        GROUP BY run, step, reward_fn
    )
    GROUP BY run, step
),
last_reward AS (
    SELECT run, arg_max(reward, step) AS last_reward FROM step_reward GROUP BY run
),
acc AS (
    SELECT run, sum(correct) / sum(total) AS accuracy FROM accuracy GROUP BY run
)
SELECT f.run, f.name, f.status, f.start, f."end", f.duration_s,
       f.steps, f.events, f.ranks, f.world_size,
       lr.last_reward, acc.accuracy,
       f.drops, f.events_written, f.events_lost, f.sink_errors, f.error,
       f.host, f.git_commit, f.config, f.versions,
       f.dir
FROM _run_facts f
LEFT JOIN last_reward lr ON lr.run = f.run
LEFT JOIN acc ON acc.run = f.run;
