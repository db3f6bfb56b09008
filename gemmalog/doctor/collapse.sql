-- Collapse checks: diversity of the generations, and identical completions within a group.

-- name: generation_steps
-- Per run and step, the batch statistics of generation_metrics (mean over ranks).
SELECT run, step,
       avg(distinct_1) AS distinct_1, avg(distinct_2) AS distinct_2,
       avg(repeated_ngram_ratio) AS repeated_ngram_ratio,
       avg(truncation_rate) AS truncation_rate
FROM generation
WHERE coalesce(phase, 'train') = 'train' AND step IS NOT NULL
GROUP BY run, step
ORDER BY run, step;

-- name: duplicate_steps
-- Per run and step: the share of completions whose exact text another completion of the
-- same prompt group (same step and prompt) also has. Groups of one are left out.
WITH texts AS (
    SELECT run, step, prompt_key, text_hash, count(*) AS k
    FROM _doctor_completions
    WHERE phase = 'train'
    GROUP BY ALL
),
sized AS (
    SELECT *, sum(k) OVER (PARTITION BY run, step, prompt_key) AS group_size FROM texts
)
SELECT run, step,
       coalesce(sum(k) FILTER (WHERE k >= 2), 0) / sum(k) AS duplicate_share,
       count(DISTINCT prompt_key) AS groups
FROM sized
WHERE group_size >= 2
GROUP BY run, step
ORDER BY run, step;
