-- Lines that could not be read (a torn last line after a kill, a corrupted line): skipped, counted.
CREATE VIEW gemmalog_read_errors AS
SELECT filename AS file, count(*) AS lines
FROM _events_source
WHERE kind IS NULL
GROUP BY filename;
