-- What could not be read, skipped and counted: lines that are torn (the last line after a
-- kill), corrupted or without a run id, per shard; and each run.json that is not a JSON
-- object with the documented field types (one "line": its run then reads as status unknown).
CREATE VIEW gemmalog_read_errors AS
SELECT filename AS file, count(*) AS lines, 'unreadable lines' AS problem
FROM _events_source
WHERE kind IS NULL OR run IS NULL
GROUP BY filename
UNION ALL
SELECT file, 1 AS lines, 'run.json skipped: ' || problem AS problem
FROM _manifest_problems;
