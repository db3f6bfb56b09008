-- run.json of every run (written atomically by rank 0, so never torn).
CREATE VIEW _manifests AS
SELECT *, parse_dirpath(filename) AS dir
FROM read_json(
    $manifests,
    format = 'auto',
    columns = {
        'id': 'VARCHAR', 'name': 'VARCHAR', 'status': 'VARCHAR',
        'start': 'DOUBLE', 'end': 'DOUBLE', 'duration_s': 'DOUBLE',
        'world_size': 'INTEGER', 'host': 'VARCHAR', 'git_commit': 'VARCHAR',
        'versions': 'JSON', 'config': 'JSON',
        'events_written': 'BIGINT', 'events_lost': 'BIGINT', 'drops': 'BIGINT',
        'sink_errors': 'JSON', 'error': 'VARCHAR'
    },
    filename = true,
    hive_partitioning = false
);
