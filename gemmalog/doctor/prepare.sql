-- What the checks read, copied once out of the views into temporary tables (each view would
-- otherwise be evaluated again by every check). Completion texts stay in the views: only the
-- few example queries of a finding read them. The `cleanup` block drops the tables again.

-- name: completions
CREATE OR REPLACE TEMP TABLE _doctor_completions AS
SELECT run, rank, coalesce(phase, 'train') AS phase, step, sample,
       coalesce(prompt, question, '') AS prompt_key,
       hash(model_output) AS text_hash,
       total_reward, correct, length, length_tokens, rewards, advantage
FROM completions
WHERE step IS NOT NULL;

-- name: rewards
-- Per run, phase, step and reward function: how many scores, how many NaN (the function
-- returned None) and infinite, and the mean, summed magnitude and highest of the finite ones.
-- The rows are the `rewards` view's: the completions' scores, plus the `reward` events of a
-- (run, rank, phase, step, function) no completion scored.
CREATE OR REPLACE TEMP TABLE _doctor_reward_steps AS
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
),
scores AS (
    SELECT run, phase, step, reward_fn, value FROM from_outputs
    UNION ALL
    SELECT run, phase, step, reward_fn, unnest("values") AS value FROM batches
)
SELECT run, phase, step, reward_fn,
       count(*) AS n,
       count(*) FILTER (WHERE isnan(value)) AS none,
       count(*) FILTER (WHERE isinf(value)) AS inf,
       avg(value) FILTER (WHERE isfinite(value)) AS mean,
       sum(abs(value)) FILTER (WHERE isfinite(value)) AS magnitude,
       max(value) FILTER (WHERE isfinite(value)) AS top
FROM scores
GROUP BY run, phase, step, reward_fn;

-- name: metrics
-- Per run, phase, step and metric name: the mean of the finite values over ranks and
-- micro-batches, and how many values were NaN or infinite. As in the `metrics` view, a step
-- a resumed run logged twice keeps the later segment (sums are kept per segment, the latest
-- one wins, then ranks are pooled).
CREATE OR REPLACE TEMP TABLE _doctor_metrics AS
WITH values AS (
    SELECT run, rank, coalesce(phase, 'train') AS phase, step, segment,
           unnest(map_keys(metrics)) AS name, unnest(map_values(metrics)) AS value
    FROM events
    WHERE kind = 'metrics' AND step IS NOT NULL
),
per_segment AS (
    SELECT run, rank, phase, step, name, segment,
           sum(value) FILTER (WHERE isfinite(value)) AS total,
           count(*) FILTER (WHERE isfinite(value)) AS finite,
           count(*) FILTER (WHERE isnan(value)) AS nan,
           count(*) FILTER (WHERE isinf(value)) AS inf
    FROM values
    WHERE value IS NOT NULL
    GROUP BY ALL
),
latest AS (
    SELECT run, rank, phase, step, name,
           arg_max(total, segment) AS total, arg_max(finite, segment) AS finite,
           arg_max(nan, segment) AS nan, arg_max(inf, segment) AS inf
    FROM per_segment
    GROUP BY ALL
)
SELECT run, phase, step, name,
       sum(total) / nullif(sum(finite), 0) AS value,
       sum(nan)::BIGINT AS nan, sum(inf)::BIGINT AS inf
FROM latest
GROUP BY run, phase, step, name;

-- name: cleanup
DROP TABLE IF EXISTS _doctor_completions;
DROP TABLE IF EXISTS _doctor_reward_steps;
DROP TABLE IF EXISTS _doctor_metrics;
