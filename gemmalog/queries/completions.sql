-- One row per model_output event: the completion, its extracted parts and its rewards.
-- A resumed run (segments) logs some steps twice: the latest segment's completions win.
-- That dedupe is a window over every completion; gemmalog_mixed_segments() is false when
-- every row read is of one segment (the query cache knows), and then it keeps every row:
-- DuckDB folds the function into a constant and prunes the branch not taken.
-- total_reward: the logged one, else the sum of the rewards (_rewards_sum, see _source.sql).
-- advantage: TRL's own value (advantage_source 'trl') or its formula's ('computed');
-- extra: what reward functions logged through log_extra (extra->>'column' reads one);
-- messages: the whole conversation of chat data (prompt_turns of them are the prompt).
CREATE VIEW completions AS
WITH outputs AS NOT MATERIALIZED (
    SELECT run, rank, phase, step, sample, ts, epoch,
           question, prompt, true_answer, model_output, reasoning, answer, correct,
           rewards,
           coalesce(total_reward, _rewards_sum) AS total_reward,
           coalesce(length_chars, length(model_output))::INTEGER AS length,
           length_tokens,
           advantage, advantage_source, extra, messages, prompt_turns,
           segment
    FROM _events_source  -- `events`' rows (kind and run set), with _rewards_sum
    WHERE kind = 'model_output' AND run IS NOT NULL
)
SELECT * EXCLUDE (segment) FROM outputs WHERE NOT gemmalog_mixed_segments()
UNION ALL
SELECT * EXCLUDE (segment) FROM outputs WHERE gemmalog_mixed_segments()
QUALIFY step IS NULL OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step);
