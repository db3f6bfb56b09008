-- One row per generation_metrics event: quality statistics of a batch of generations.
CREATE VIEW generation AS
SELECT run, rank, phase, step, ts, epoch,
       count, mean_length_chars, min_length_chars, max_length_chars, mean_length_tokens,
       truncation_rate, distinct_1, distinct_2, repeated_ngram_ratio, format_adherence,
       answer_extraction_rate
FROM events
WHERE kind = 'generation_metrics'
QUALIFY step IS NULL OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step);
