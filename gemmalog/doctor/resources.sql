-- Resource and logging checks: memory, step time, lost events, sink errors, unreadable lines.

-- name: memory_steps
-- Per run and step: the highest resident and accelerator memory any event of the step
-- carried (the envelope's samples and the system events', all ranks).
SELECT run, step,
       max(greatest(rss_mb, cpu_rss_mb)) AS cpu_mb,
       max(greatest(gpu_mb, cuda_allocated_mb, mps_allocated_mb)) AS gpu_mb
FROM events
WHERE step IS NOT NULL
GROUP BY run, step
ORDER BY run, step;

-- name: read_errors
SELECT file, lines FROM gemmalog_read_errors ORDER BY file;
