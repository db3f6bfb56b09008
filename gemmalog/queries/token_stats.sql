-- One row per token_stats event: a completion's token statistics in TRL's loss pass (the
-- TRL callback's log_token_stats), keyed as its completion: join with `completions` on
-- run, rank, phase, step and sample. A view of its own, not columns of `completions`: that
-- join would cost every completions query a second scan of the events, with or without
-- token statistics (docs/performance.md). A resumed run's latest segment wins (a window
-- skipped when every row read is of one segment: see completions.sql).
CREATE VIEW token_stats AS
WITH stats AS NOT MATERIALIZED (
    SELECT run, rank, phase, step, sample, ts, tokens, logp_mean, logp_min, entropy_mean,
           segment
    FROM events
    WHERE kind = 'token_stats'
)
SELECT * EXCLUDE (segment) FROM stats WHERE NOT gemmalog_mixed_segments()
UNION ALL
SELECT * EXCLUDE (segment) FROM stats WHERE gemmalog_mixed_segments()
QUALIFY step IS NULL OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step);
