-- What the checks read, copied once out of the views into temporary tables (each view would
-- otherwise be evaluated again by every check). Completion texts stay in the views: only the
-- few example queries of a finding read them. The `cleanup` block drops the tables again.

-- name: completions
CREATE OR REPLACE TEMP TABLE _doctor_completions AS
SELECT run, rank, coalesce(phase, 'train') AS phase, step, sample,
       coalesce(prompt, question, '') AS prompt_key,
       hash(model_output) AS text_hash,
       total_reward, correct, length, length_tokens, rewards
FROM completions
WHERE step IS NOT NULL;

-- name: rewards
-- The `rewards` view's rows, built from the table above: the completions' scores, plus the
-- `reward` events of a (run, rank, phase, step, function) no completion scored.
CREATE OR REPLACE TEMP TABLE _doctor_rewards AS
WITH from_outputs AS (
    SELECT run, rank, phase, step,
           unnest(map_keys(rewards)) AS reward_fn, unnest(map_values(rewards)) AS value
    FROM _doctor_completions
    WHERE rewards IS NOT NULL
),
reward_events AS (
    SELECT run, rank, coalesce(phase, 'train') AS phase, step, reward_fn, "values"
    FROM events
    WHERE kind = 'reward' AND step IS NOT NULL
    QUALIFY segment = max(segment) OVER (PARTITION BY run, rank, phase, step, reward_fn)
),
batches AS (
    SELECT e.* FROM reward_events e
    ANTI JOIN (SELECT DISTINCT run, rank, phase, step, reward_fn FROM from_outputs) c
        ON c.run = e.run AND c.rank = e.rank AND c.phase = e.phase AND c.step = e.step
       AND c.reward_fn = e.reward_fn
)
SELECT run, phase, step, reward_fn, value FROM from_outputs
UNION ALL
SELECT run, phase, step, reward_fn, unnest("values") AS value FROM batches;

-- name: metrics
-- Per run, phase, step and metric ($names only): the mean of the finite values over ranks
-- and micro-batches, and how many values there were. Read straight from the metrics events
-- (a map lookup per name rather than unnesting every metric); as in `metrics`, a step a
-- resumed run logged twice keeps the later segment.
CREATE OR REPLACE TEMP TABLE _doctor_metrics AS
WITH e AS (
    SELECT run, coalesce(phase, 'train') AS phase, step, metrics
    FROM events
    WHERE kind = 'metrics' AND step IS NOT NULL
    QUALIFY segment = max(segment) OVER (PARTITION BY run, rank, phase, step)
)
SELECT e.run, e.phase, e.step, n.name,
       avg(e.metrics[n.name]) FILTER (WHERE isfinite(e.metrics[n.name])) AS value
FROM e CROSS JOIN (SELECT unnest($names) AS name) n
WHERE e.metrics[n.name] IS NOT NULL
GROUP BY e.run, e.phase, e.step, n.name;

-- name: cleanup
DROP TABLE IF EXISTS _doctor_completions;
DROP TABLE IF EXISTS _doctor_rewards;
DROP TABLE IF EXISTS _doctor_metrics;
