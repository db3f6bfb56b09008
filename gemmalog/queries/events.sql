-- Every event: the envelope, every declared field of every kind, and the shard it came from.
-- A line without a kind or a run id is not an event (gemmalog_read_errors counts it).
CREATE VIEW events AS
SELECT * EXCLUDE (filename, _rewards_sum), filename AS file
FROM _events_source
WHERE kind IS NOT NULL AND run IS NOT NULL;
