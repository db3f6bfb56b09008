-- Every line of every shard, typed from gemmalog.events (never sampled). $shards and
-- $columns are filled in by gemmalog.queries; a torn or malformed line comes back as a row
-- whose kind is NULL: `events` leaves those out and `gemmalog_read_errors` counts them.
-- Lines of a run's first segment carry no `segment`: they read as segment 0.
-- _rewards_sum is the sum of the rewards where no total_reward was logged (NULL elsewhere):
-- `completions` orders by coalesce(total_reward, _rewards_sum), which reads two doubles a
-- row instead of every rewards map (the query cache stores it; `events` leaves it out).
CREATE VIEW _events_source AS
SELECT * EXCLUDE (filename) REPLACE (coalesce(segment, 0) AS segment),
       CASE WHEN total_reward IS NULL THEN list_sum(map_values(rewards)) END AS _rewards_sum,
       filename
FROM read_json(
    $shards,
    format = 'newline_delimited',
    columns = $columns,
    ignore_errors = true,
    filename = true,
    hive_partitioning = false,
    maximum_object_size = 268435456
);
