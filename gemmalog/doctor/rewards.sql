-- Reward checks: per reward function and step, over the training completions.

-- name: fn_steps
-- Per run, function and training step: the mean score, how close it is to the function's
-- highest score in the run (mean / top: 1 when every completion got the top score), and the
-- summed magnitude (for each function's share of the total).
SELECT run, reward_fn, step, mean, magnitude,
       max(top) OVER (PARTITION BY run, reward_fn) AS top,
       mean / nullif(max(top) OVER (PARTITION BY run, reward_fn), 0) AS saturation
FROM _doctor_reward_steps
WHERE phase = 'train' AND mean IS NOT NULL
ORDER BY run, reward_fn, step;

-- name: none_values
-- Scores that are NaN (the function returned None, TRL's "abstain"), per function and step.
SELECT run, phase, reward_fn, step, none, n
FROM _doctor_reward_steps
WHERE none > 0
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
