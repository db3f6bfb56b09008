-- No run.json matched (a glob of shards, or a run whose rank 0 never started): same columns, no rows.
CREATE VIEW _manifests AS
SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS name, NULL::VARCHAR AS status,
       NULL::DOUBLE AS start, NULL::DOUBLE AS "end", NULL::DOUBLE AS duration_s,
       NULL::INTEGER AS world_size, NULL::VARCHAR AS host, NULL::VARCHAR AS git_commit,
       NULL::JSON AS versions, NULL::JSON AS config,
       NULL::BIGINT AS events_written, NULL::BIGINT AS events_lost, NULL::BIGINT AS drops,
       NULL::JSON AS sink_errors, NULL::VARCHAR AS error,
       NULL::VARCHAR AS filename, NULL::VARCHAR AS dir
WHERE false;

CREATE VIEW _manifest_problems AS
SELECT NULL::VARCHAR AS file, NULL::VARCHAR AS problem WHERE false;
