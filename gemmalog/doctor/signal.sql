-- No-learning-signal check: prompt groups whose completions all got a zero advantage.

-- name: zero_advantage_steps
-- Per run and step whose train completions all carry the advantage GRPO used (the TRL
-- integration logs it): the share of prompt groups (same step and prompt, two or more
-- completions) whose advantages are all zero (within 1e-8). Those groups teach nothing,
-- whatever the reward aggregation (under normalize_then_sum equal rewards do not mean a
-- zero advantage).
WITH groups AS (
    SELECT run, step, prompt_key, max(abs(advantage)) AS top, count(advantage) = count(*) AS known
    FROM _doctor_completions
    WHERE phase = 'train'
    GROUP BY ALL
    HAVING count(*) >= 2
)
SELECT run, step, avg((top <= 1e-8)::INTEGER) AS zero_share, count(*) AS groups
FROM groups
GROUP BY run, step
HAVING bool_and(known)
ORDER BY run, step;

-- name: zero_spread_steps
-- Per run and step: the share of prompt groups (same step and prompt, two or more
-- completions) whose total rewards are all equal (within TRL's isclose tolerance, 1e-8).
WITH groups AS (
    SELECT run, step, prompt_key, max(total_reward) - min(total_reward) AS spread
    FROM _doctor_completions
    WHERE phase = 'train' AND isfinite(total_reward)
    GROUP BY ALL
    HAVING count(*) >= 2
)
SELECT run, step, avg((spread <= 1e-8)::INTEGER) AS zero_share, count(*) AS groups
FROM groups
GROUP BY run, step
ORDER BY run, step;

-- name: zero_spread_examples
-- Completions of the first prompt group from step $since on with no signal: all advantages
-- zero where the completions carry them, else all total rewards equal.
WITH groups AS (
    SELECT step, coalesce(prompt, question, '') AS prompt_key
    FROM completions
    WHERE run = $run AND coalesce(phase, 'train') = 'train' AND step >= $since
    GROUP BY ALL
    HAVING count(*) >= 2 AND CASE
        WHEN count(advantage) = count(*) THEN max(abs(advantage)) <= 1e-8
        ELSE count(*) FILTER (WHERE NOT isfinite(total_reward)) = 0
             AND max(total_reward) - min(total_reward) <= 1e-8
    END
    ORDER BY step, prompt_key
    LIMIT 1
)
SELECT c.step, c.sample, c.question, c.total_reward, c.advantage, c.rewards,
       left(c.model_output, 1000) AS model_output
FROM completions c
JOIN groups g ON g.step = c.step AND g.prompt_key = coalesce(c.prompt, c.question, '')
WHERE c.run = $run AND coalesce(c.phase, 'train') = 'train'
ORDER BY c.sample
LIMIT $limit;
