-- Every line of every shard, typed from gemmalog.events (never sampled). $shards and
-- $columns are filled in by gemmalog.queries; a torn or malformed line comes back as a row
-- whose kind is NULL: `events` leaves those out and `gemmalog_read_errors` counts them.
-- Lines of a run's first segment carry no `segment`: they read as segment 0.
CREATE VIEW _events_source AS
SELECT * REPLACE (coalesce(segment, 0) AS segment)
FROM read_json(
    $shards,
    format = 'newline_delimited',
    columns = $columns,
    ignore_errors = true,
    filename = true,
    hive_partitioning = false,
    maximum_object_size = 268435456
);
