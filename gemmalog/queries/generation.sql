-- One row per generation_metrics event: quality statistics of a batch of generations.
-- A resumed run's latest segment wins (a window skipped when every row read is of one
-- segment: see completions.sql).
CREATE VIEW generation AS
WITH batches AS NOT MATERIALIZED (
    SELECT run, rank, phase, step, ts, epoch,
           count, mean_length_chars, min_length_chars, max_length_chars, mean_length_tokens,
           truncation_rate, distinct_1, distinct_2, repeated_ngram_ratio, format_adherence,
           answer_extraction_rate,
           segment
    FROM events
    WHERE kind = 'generation_metrics'
)
SELECT * EXCLUDE (segment) FROM batches WHERE NOT gemmalog_mixed_segments()
UNION ALL
SELECT * EXCLUDE (segment) FROM batches WHERE gemmalog_mixed_segments()
QUALIFY step IS NULL OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step);
