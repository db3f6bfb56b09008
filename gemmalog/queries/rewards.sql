-- One row per reward function per sample.
-- Source rule: a model_output event's `rewards` map is the primary source. A `reward` event
-- (one function's values for a batch) adds rows only when no model_output event of the same
-- run, rank, phase and step carries that reward function, so a value logged both ways is
-- counted once. A resumed run (segments) logs some steps twice: the latest segment wins
-- (model_output rows come from `completions`, which keeps only those; the window is skipped
-- when every row read is of one segment: see completions.sql).
CREATE VIEW rewards AS
WITH from_outputs AS (
    SELECT run, rank, phase, step, sample,
           unnest(map_keys(rewards)) AS reward_fn,
           unnest(map_values(rewards)) AS value,
           ts
    FROM completions
    WHERE rewards IS NOT NULL
),
reward_batches AS NOT MATERIALIZED (
    SELECT run, rank, phase, step, reward_fn, "values", samples, ts, segment FROM events
    WHERE kind = 'reward'
),
reward_events AS (
    SELECT * FROM reward_batches WHERE NOT gemmalog_mixed_segments()
    UNION ALL
    SELECT * FROM reward_batches WHERE gemmalog_mixed_segments()
    QUALIFY step IS NULL
         OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step, reward_fn)
),
covered AS (
    SELECT DISTINCT run, rank, phase, step, reward_fn FROM from_outputs
),
batches AS (
    SELECT e.run, e.rank, e.phase, e.step, e.reward_fn, e."values", e.samples, e.ts
    FROM reward_events e
    ANTI JOIN covered c
        ON c.run = e.run AND c.rank = e.rank AND c.reward_fn = e.reward_fn
       AND c.phase IS NOT DISTINCT FROM e.phase AND c.step IS NOT DISTINCT FROM e.step
),
from_batches AS (
    SELECT run, rank, phase, step,
           coalesce(try_cast(samples[i + 1] AS INTEGER), i)::INTEGER AS sample,
           reward_fn, "values"[i + 1] AS value, ts
    FROM (SELECT *, unnest(range(len("values"))) AS i FROM batches)
)
SELECT run, rank, phase, step, sample, reward_fn, value, ts, 'model_output' AS source FROM from_outputs
UNION ALL
SELECT run, rank, phase, step, sample, reward_fn, value, ts, 'reward' AS source FROM from_batches;
