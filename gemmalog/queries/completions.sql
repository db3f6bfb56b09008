-- One row per model_output event: the completion, its extracted parts and its rewards.
-- A resumed run (segments) logs some steps twice: the latest segment's completions win.
CREATE VIEW completions AS
SELECT run, rank, phase, step, sample, ts, epoch,
       question, prompt, true_answer, model_output, reasoning, answer, correct,
       rewards,
       coalesce(total_reward, list_sum(map_values(rewards))) AS total_reward,
       coalesce(length_chars, length(model_output))::INTEGER AS length,
       length_tokens
FROM events
WHERE kind = 'model_output'
QUALIFY step IS NULL OR segment = max(segment) OVER (PARTITION BY run, rank, phase, step);
