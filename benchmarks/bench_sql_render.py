"""`gemmalog sql` output speed: 100,000 rows as a table against the same rows as CSV.

The run is written straight to JSONL with orjson (the logger's field layout): per step one
``metrics`` event with five metrics and five ``model_output`` events whose completions hold a
newline, Rich markup (``[bold]``, ``[/INST]``) and an escape sequence, so the table path does
its literal rendering and escaping work. Each command runs as the user runs it (a
subprocess writing to a file, so not a terminal); the median of ``--repeat`` runs is kept.

    python benchmarks/bench_sql_render.py                     # 100,000 rows per query
    python benchmarks/bench_sql_render.py --rows 20000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

QUERIES = {
    "metrics (4 numeric/text columns)": "SELECT run, step, name, value FROM metrics ORDER BY step, name",
    "completions (text with markup and escapes)": (
        "SELECT step, sample, question, model_output FROM completions ORDER BY step, sample"
    ),
}
PER_STEP = 5


def write_run(run_dir: Path, rows: int) -> None:
    """``rows`` metric values and ``rows`` completions in one shard."""
    run_dir.mkdir(parents=True)
    ts = 1_700_000_000.0
    with open(run_dir / "events.0.jsonl", "wb") as out:
        for step in range(rows // PER_STEP):
            base = {"v": 1, "level": "info", "run": "bench", "rank": 0, "step": step}
            metrics = {f"m{i}": step * 0.001 * (i + 1) for i in range(PER_STEP)}
            ts += 0.01
            out.write(
                orjson.dumps(
                    {**base, "ts": ts, "kind": "metrics", "logger": "gemmalog.metrics"}
                    | {"phase": "train", "metrics": metrics}
                )
                + b"\n"
            )
            for sample in range(PER_STEP):
                text = (
                    f"[INST] step {step} [/INST] <answer>{sample}</answer>\n[bold]done[/] \x1b[2J"
                )
                out.write(
                    orjson.dumps(
                        {**base, "ts": ts, "kind": "model_output", "logger": "gemmalog.model"}
                        | {
                            "phase": "train",
                            "sample": sample,
                            "question": f"What is {step} + {sample}?",
                            "model_output": text,
                            "rewards": {"fmt": 1.0},
                            "correct": True,
                        }
                    )
                    + b"\n"
                )


def time_command(args: list[str], repeat: int) -> float:
    """Median wall time of ``gemmalog <args>`` with stdout to a file."""
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryFile() as sink:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "gemmalog", *args],
                stdout=sink,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    opts = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "bench"
        write_run(run, opts.rows)
        baseline = time_command(["sql", str(run), "SELECT 1", "--format", "csv"], opts.repeat)
        for label, query in QUERIES.items():
            csv_s = time_command(["sql", str(run), query, "--format", "csv"], opts.repeat)
            table_s = time_command(["sql", str(run), query, "--limit", "0"], opts.repeat)
            results.append(
                {
                    "query": label,
                    "rows": opts.rows,
                    "csv_s": round(csv_s, 3),
                    "table_s": round(table_s, 3),
                    "table_over_csv": round(table_s / csv_s, 2),
                }
            )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "startup_and_select_1_s": round(baseline, 3),
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if opts.out is not None:
        opts.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
