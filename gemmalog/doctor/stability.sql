-- Instability checks: robust outliers in training metrics, non-finite values.

-- name: outliers
-- Per run, metric and step (the mean over ranks and micro-batches): the distance of the
-- value from the median of the ${window} steps before it, in robust standard deviations
-- (1.4826 x MAD; the window's standard deviation where the MAD is 0), and as a multiple of
-- the window's own range (max - min). Rows at or above $z robust standard deviations.
WITH s AS (
    SELECT run, name, step, value
    FROM _doctor_metrics
    WHERE phase = 'train' AND value IS NOT NULL
      AND name IN (SELECT unnest($names)) AND run IN (SELECT unnest($runs))
),
w AS (
    SELECT *,
           median(value) OVER prior AS med,
           mad(value) OVER prior AS mad,
           stddev_samp(value) OVER prior AS sd,
           max(value) OVER prior - min(value) OVER prior AS spread,
           count(*) OVER prior AS k
    FROM s
    WINDOW prior AS (
        PARTITION BY run, name ORDER BY step ROWS BETWEEN ${window} PRECEDING AND 1 PRECEDING
    )
)
SELECT run, name, step, value, med, mad, sd, spread,
       abs(value - med) / (CASE WHEN mad > 0 THEN 1.4826 * mad ELSE sd END) AS z
FROM w
WHERE k >= ${min_prior} AND (mad > 0 OR sd > 0)
  AND abs(value - med) / (CASE WHEN mad > 0 THEN 1.4826 * mad ELSE sd END) >= $z
ORDER BY run, name, step;

-- name: non_finite_metrics
-- Every metric of every phase.
SELECT run, phase, name, sum(nan + inf)::BIGINT AS n,
       list_sort(list(step)) AS steps,
       sum(nan)::BIGINT AS nan
FROM _doctor_metrics
WHERE nan + inf > 0
GROUP BY run, phase, name
ORDER BY run, min(step), name;

-- name: non_finite_rewards
-- Infinite scores (NaN scores are a function's None, checked by reward_none).
SELECT run, phase, reward_fn AS name, sum(inf)::BIGINT AS n,
       list_sort(list(step)) AS steps, 0 AS nan
FROM _doctor_reward_steps
WHERE inf > 0
GROUP BY run, phase, reward_fn
ORDER BY run, min(step), name;
