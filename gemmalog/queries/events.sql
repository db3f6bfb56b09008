-- Every event: the envelope, every declared field of every kind, and the shard it came from.
CREATE VIEW events AS
SELECT * EXCLUDE (filename), filename AS file
FROM _events_source
WHERE kind IS NOT NULL;
