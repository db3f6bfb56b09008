"""Doctor speed: every health check over the 1M-event fixture of bench_queries, once it is loaded.

The fixture (10,000 steps x 100 events, 320,000 completions) comes from
``bench_queries.generate``. Loading (``connect`` + ``freeze`` of the columns the checks read)
is timed apart from the checks themselves, which is the number the doctor is held to (2 s),
once with the run parsed into memory and once over the query cache (``GEMMALOG_CACHE``).

    python benchmarks/bench_doctor.py                     # builds the fixture in a temp dir
    python benchmarks/bench_doctor.py --dir /tmp/fixture  # builds it once there, reuses it
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="steps of 100 events")
    parser.add_argument("--dir", type=Path, default=None, help="fixture directory (kept, reused)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the checks")
    args = parser.parse_args()

    import duckdb

    from gemmalog.doctor import DOCTOR_COLUMNS, check_connection
    from gemmalog.queries import connect, freeze

    base = args.dir or Path(tempfile.mkdtemp(prefix="gemmalog-doctor-"))
    run_dir = base / "runs" / "bench-run"
    try:
        if not (run_dir / "run.json").exists():
            started = time.perf_counter()
            bench_queries.generate(run_dir, args.steps)
            print(f"fixture written in {time.perf_counter() - started:.1f} s")
        size = sum(f.stat().st_size for f in run_dir.glob("events.*.jsonl")) / 1e6
        print(
            f"machine: {platform.machine()} {os.cpu_count()} cores, python "
            f"{platform.python_version()}, duckdb {duckdb.__version__}; fixture {size:,.0f} MB"
        )
        # in memory: the shards parsed once into a snapshot (freeze); then, where gemmalog has
        # a query cache beside the shards, the views over its Parquet parts as they are
        for mode, env in (("in memory", "off"), ("query cache", "on")):
            os.environ["GEMMALOG_CACHE"] = env
            started = time.perf_counter()
            con = connect(run_dir)
            freeze(con, DOCTOR_COLUMNS)
            print(f"{mode}: load (connect + freeze) {time.perf_counter() - started:.2f} s")
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                findings = check_connection(con)
                times.append(time.perf_counter() - started)
            print(
                f"{mode}: doctor, all checks: best {min(times):.2f} s, worst {max(times):.2f} s "
                f"over {args.repeat} runs; {len(findings)} finding(s)"
            )
            con.close()
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
