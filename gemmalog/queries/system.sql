-- One row per system event: memory and device samples; a GPU sample (gpu_index set) holds
-- one device's NVML counters.
CREATE VIEW system AS
SELECT run, rank, step, ts, device,
       cpu_rss_mb, cpu_percent, cuda_allocated_mb, cuda_reserved_mb, cuda_peak_mb,
       mps_allocated_mb, tokens_per_second,
       gpu_index, gpu_uuid, gpu_name, gpu_utilization_percent, gpu_memory_used_mb,
       gpu_memory_total_mb, gpu_power_w, gpu_temperature_c
FROM events
WHERE kind = 'system';
