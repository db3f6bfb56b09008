-- Correct answers per run, phase and step (all ranks together), and the running accuracy
-- (from `completions`: a step logged again by a resumed segment counts once).
CREATE VIEW accuracy AS
WITH per_step AS (
    SELECT run, phase, step,
           count(*) FILTER (WHERE correct)::BIGINT AS correct,
           count(correct)::BIGINT AS total
    FROM completions
    GROUP BY run, phase, step
    HAVING count(correct) > 0
)
SELECT run, phase, step, correct, total,
       correct / total AS accuracy,
       sum(correct) OVER w / sum(total) OVER w AS cumulative_accuracy
FROM per_step
WINDOW w AS (PARTITION BY run, phase ORDER BY step ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
