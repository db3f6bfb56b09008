-- name: completions
SELECT rank, phase, step, sample, ts, question, prompt, true_answer, model_output, reasoning,
       answer, correct, rewards, total_reward, length, length_tokens
FROM completions
WHERE step = $step AND ($phase IS NULL OR phase = $phase)
ORDER BY phase, rank, sample, ts

-- name: reward_events
-- Scores logged by `reward` events (one per function and batch) rather than in the output;
-- read from the events (the rewards view's merge with the outputs' scores costs more).
-- A sample is its id when that is an integer, else its position (as in the rewards view).
SELECT rank, phase, coalesce(TRY_CAST(samples[i] AS INTEGER), i - 1) AS sample,
       reward_fn, "values"[i] AS value
FROM (
    SELECT rank, phase, reward_fn, samples, "values",
           unnest(range(1, len("values") + 1)) AS i
    FROM events
    WHERE kind = 'reward' AND step = $step AND ($phase IS NULL OR phase = $phase)
)

-- name: steps
SELECT step, list(DISTINCT phase ORDER BY phase) AS phases, count(*) AS completions
FROM completions WHERE step IS NOT NULL
GROUP BY step ORDER BY step

-- name: training_args
SELECT training_args FROM events
WHERE kind = 'run_start' AND training_args IS NOT NULL
ORDER BY segment DESC, ts DESC LIMIT 1

-- name: prompt_history
-- One prompt's groups across the run: a row per step and phase.
SELECT step, phase, count(*) AS completions, avg(total_reward) AS mean_reward,
       min(total_reward) AS min_reward, max(total_reward) AS max_reward,
       avg(correct::DOUBLE) AS accuracy, avg(coalesce(length_tokens, length)) AS mean_length
FROM completions
WHERE coalesce(prompt, question) = $prompt
GROUP BY step, phase ORDER BY step, phase LIMIT 5000
