-- Reward checks: per reward function and step, over the training completions.

-- name: fn_steps
-- Per run, function and step: the mean score, the share of samples at the function's
-- highest score in the run, and the summed magnitude (for each function's share of the total).
WITH r AS (
    SELECT run, reward_fn, step, value,
           max(value) OVER (PARTITION BY run, reward_fn) AS top
    FROM _doctor_rewards
    WHERE phase = 'train' AND isfinite(value)
)
SELECT run, reward_fn, step,
       avg(value) AS mean,
       avg((value >= top - 1e-9 * greatest(1, abs(top)))::INTEGER) AS at_top,
       sum(abs(value)) AS magnitude,
       any_value(top) AS top
FROM r
GROUP BY run, reward_fn, step
ORDER BY run, reward_fn, step;

-- name: none_values
-- Scores that are NaN (the function returned None, TRL's "abstain"), per function and step.
SELECT run, phase, reward_fn, step,
       count(*) FILTER (WHERE isnan(value)) AS none, count(*) AS n
FROM _doctor_rewards
GROUP BY ALL
HAVING count(*) FILTER (WHERE isnan(value)) > 0
ORDER BY run, reward_fn, phase, step;

-- name: missing
-- Completions that lack a score of a function other completions of the run carry (the
-- function failed or returned too few values).
WITH fns AS (
    SELECT DISTINCT run, unnest(map_keys(rewards)) AS reward_fn FROM _doctor_completions
),
counts AS (
    SELECT run, count(*) AS k FROM fns GROUP BY run
),
short AS (
    SELECT c.run, c.phase, c.step, coalesce(map_keys(c.rewards), []) AS reward_fns
    FROM _doctor_completions c JOIN counts ON counts.run = c.run
    WHERE coalesce(cardinality(c.rewards), 0) < counts.k
)
SELECT s.run, s.phase, f.reward_fn, s.step, count(*) AS missing
FROM short s
JOIN fns f ON f.run = s.run
WHERE NOT list_contains(s.reward_fns, f.reward_fn)
GROUP BY ALL
ORDER BY s.run, f.reward_fn, s.phase, s.step;

-- name: top_but_wrong
-- Completions from step $since on that get function $fn's top score and are not correct.
SELECT step, sample, question, total_reward, correct, rewards, left(model_output, 1000) AS model_output
FROM completions
WHERE run = $run AND coalesce(phase, 'train') = 'train' AND step >= $since
  AND rewards[$fn] >= $top - 1e-9 * greatest(1, abs($top)) AND NOT coalesce(correct, false)
ORDER BY step DESC, sample
LIMIT $limit;

-- name: none_examples
SELECT step, sample, question, total_reward, rewards, left(model_output, 1000) AS model_output
FROM completions
WHERE run = $run AND (isnan(rewards[$fn]) OR NOT list_contains(map_keys(coalesce(rewards, MAP {})), $fn))
ORDER BY step, sample
LIMIT $limit;
