-- One row per system event: memory and device samples.
CREATE VIEW system AS
SELECT run, rank, step, ts, device,
       cpu_rss_mb, cpu_percent, cuda_allocated_mb, cuda_reserved_mb, cuda_peak_mb,
       mps_allocated_mb, tokens_per_second
FROM events
WHERE kind = 'system';
