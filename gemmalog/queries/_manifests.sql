-- run.json of every run, read as text: a manifest that is not a JSON object, or whose fields
-- have the wrong type, is left out here (its run reads as status 'unknown', from its events)
-- and listed with the problem in _manifest_problems. An empty run.json is simply absent.
CREATE VIEW _manifest_checked AS
WITH raw AS (
    SELECT filename, CASE WHEN json_valid(content) THEN content::JSON END AS j
    FROM read_text($manifests)
    WHERE trim(content) <> ''
),
typed AS (
    SELECT filename, j,
        CASE
            WHEN j IS NULL THEN 'not valid JSON'
            WHEN json_type(j) <> 'OBJECT' THEN 'not a JSON object'
            ELSE nullif(concat_ws(', ',
                CASE WHEN coalesce(json_type(j, '$$.id'), 'NULL') NOT IN ('VARCHAR', 'NULL') THEN 'id' END,
                CASE WHEN coalesce(json_type(j, '$$.name'), 'NULL') NOT IN ('VARCHAR', 'NULL') THEN 'name' END,
                CASE WHEN coalesce(json_type(j, '$$.status'), 'NULL') NOT IN ('VARCHAR', 'NULL') THEN 'status' END,
                CASE WHEN coalesce(json_type(j, '$$.host'), 'NULL') NOT IN ('VARCHAR', 'NULL') THEN 'host' END,
                CASE WHEN coalesce(json_type(j, '$$.git_commit'), 'NULL') NOT IN ('VARCHAR', 'NULL') THEN 'git_commit' END,
                CASE WHEN coalesce(json_type(j, '$$.error'), 'NULL') NOT IN ('VARCHAR', 'NULL') THEN 'error' END,
                CASE WHEN coalesce(json_type(j, '$$.start'), 'NULL') NOT IN ('DOUBLE', 'BIGINT', 'UBIGINT', 'NULL') THEN 'start' END,
                CASE WHEN coalesce(json_type(j, '$$.end'), 'NULL') NOT IN ('DOUBLE', 'BIGINT', 'UBIGINT', 'NULL') THEN 'end' END,
                CASE WHEN coalesce(json_type(j, '$$.duration_s'), 'NULL') NOT IN ('DOUBLE', 'BIGINT', 'UBIGINT', 'NULL') THEN 'duration_s' END,
                CASE WHEN coalesce(json_type(j, '$$.world_size'), 'NULL') NOT IN ('BIGINT', 'UBIGINT', 'NULL') THEN 'world_size' END,
                CASE WHEN coalesce(json_type(j, '$$.events_written'), 'NULL') NOT IN ('BIGINT', 'UBIGINT', 'NULL') THEN 'events_written' END,
                CASE WHEN coalesce(json_type(j, '$$.events_lost'), 'NULL') NOT IN ('BIGINT', 'UBIGINT', 'NULL') THEN 'events_lost' END,
                CASE WHEN coalesce(json_type(j, '$$.drops'), 'NULL') NOT IN ('BIGINT', 'UBIGINT', 'NULL') THEN 'drops' END
            ), '')
        END AS bad
    FROM raw
)
SELECT filename, j,
       CASE WHEN bad IN ('not valid JSON', 'not a JSON object') THEN bad
            WHEN bad IS NOT NULL THEN 'wrong type for ' || bad END AS problem
FROM typed;

CREATE VIEW _manifest_problems AS
SELECT filename AS file, problem FROM _manifest_checked WHERE problem IS NOT NULL;

CREATE VIEW _manifests AS
SELECT j->>'$$.id' AS id, j->>'$$.name' AS name, j->>'$$.status' AS status,
       TRY_CAST(j->>'$$.start' AS DOUBLE) AS start, TRY_CAST(j->>'$$.end' AS DOUBLE) AS "end",
       TRY_CAST(j->>'$$.duration_s' AS DOUBLE) AS duration_s,
       TRY_CAST(j->>'$$.world_size' AS INTEGER) AS world_size,
       j->>'$$.host' AS host, j->>'$$.git_commit' AS git_commit,
       CASE WHEN json_type(j, '$$.versions') <> 'NULL' THEN j->'$$.versions' END AS versions, CASE WHEN json_type(j, '$$.config') <> 'NULL' THEN j->'$$.config' END AS config,
       TRY_CAST(j->>'$$.events_written' AS BIGINT) AS events_written,
       TRY_CAST(j->>'$$.events_lost' AS BIGINT) AS events_lost,
       TRY_CAST(j->>'$$.drops' AS BIGINT) AS drops,
       CASE WHEN json_type(j, '$$.sink_errors') <> 'NULL' THEN j->'$$.sink_errors' END AS sink_errors, j->>'$$.error' AS error,
       filename, parse_dirpath(filename) AS dir
FROM _manifest_checked
WHERE problem IS NULL;
