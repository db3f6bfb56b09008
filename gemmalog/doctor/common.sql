-- Queries several checks share: per-step series of the runs in the connection (train phase;
-- events without a phase count as training), and example completions.

-- name: runs
-- Each run (as the runs view finds them, without its costly aggregates) and the doctor
-- section of the configuration it was logged with.
WITH ev AS (SELECT run, min(file) AS file FROM events GROUP BY run)
SELECT coalesce(m.id, ev.run) AS run,
       json_extract(m.config, '$.doctor')::VARCHAR AS doctor,
       m.status, m.error, m.drops, m.events_written, m.events_lost,
       m.sink_errors::VARCHAR AS sink_errors,
       coalesce(m.dir, parse_dirpath(ev.file)) AS dir
FROM _manifests m
FULL OUTER JOIN ev ON ev.run = m.id
ORDER BY run;

-- name: metric_series
-- One value per run, metric and step (the mean over ranks and micro-batches), finite only.
SELECT run, name, step, value
FROM _doctor_metrics
WHERE phase = 'train' AND value IS NOT NULL AND name IN (SELECT unnest($names))
ORDER BY run, name, step;

-- name: completion_steps
-- Per step: mean total reward, exact accuracy (NULL when no completion was judged),
-- mean length in tokens and characters.
SELECT run, step,
       avg(total_reward) FILTER (WHERE isfinite(total_reward)) AS reward,
       avg(correct::INTEGER) AS accuracy,
       avg(length_tokens) AS tokens,
       avg(length) AS chars,
       count(*) AS n
FROM _doctor_completions
WHERE phase = 'train'
GROUP BY run, step
ORDER BY run, step;

-- name: reward_spread
-- Standard deviation of the total reward over all of a run's training completions.
SELECT run, stddev_samp(total_reward) AS sd
FROM _doctor_completions
WHERE phase = 'train' AND isfinite(total_reward)
GROUP BY run;

-- name: best_wrong
-- The highest-scoring completions that are not correct, from step $since on.
SELECT step, sample, question, total_reward, correct, rewards, left(model_output, 1000) AS model_output
FROM completions
WHERE run = $run AND coalesce(phase, 'train') = 'train' AND step >= $since
  AND NOT coalesce(correct, false) AND isfinite(total_reward)
ORDER BY total_reward DESC, step DESC, sample
LIMIT $limit;

-- name: most_repeated
-- The completions repeated most often from step $since on, with how often.
SELECT model_output, count(*) AS count, min(step) AS step
FROM completions
WHERE run = $run AND coalesce(phase, 'train') = 'train' AND step >= $since
GROUP BY model_output
ORDER BY count DESC, step
LIMIT $limit;

-- name: longest
SELECT step, sample, question, length_tokens, length, left(model_output, 1000) AS model_output
FROM completions
WHERE run = $run AND coalesce(phase, 'train') = 'train' AND step >= $since
ORDER BY length_tokens DESC NULLS LAST, length DESC, step DESC
LIMIT $limit;

-- name: shortest
SELECT step, sample, question, length_tokens, length, left(model_output, 1000) AS model_output
FROM completions
WHERE run = $run AND coalesce(phase, 'train') = 'train' AND step >= $since
ORDER BY length_tokens ASC NULLS LAST, length ASC, step DESC
LIMIT $limit;
