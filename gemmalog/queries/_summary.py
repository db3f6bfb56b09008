"""The numbers that say how a run went, as a plain dict (the CLI, the demo and reports render it)."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from typing import Any

import duckdb

from gemmalog.queries._connect import QueryError, connect, freeze, manifest_problems, sql_file

#: Event fields the summary queries read; the others are not parsed.
SUMMARY_COLUMNS = (
    "v", "ts", "kind", "run", "rank", "step", "phase", "metrics", "rewards", "reward_fn", "values",
    "samples", "sample", "correct", "total_reward", "length_chars", "length_tokens", "rss_mb", "gpu_mb",
    "cpu_rss_mb", "cuda_peak_mb", "cuda_allocated_mb", "mps_allocated_mb",
)  # fmt: skip


@cache
def named_queries(name: str) -> dict[str, str]:
    """The ``-- name: x`` blocks of ``<name>.sql``, in order."""
    parts = re.split(r"^-- name: (\w+)\s*$", sql_file(name), flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    from gemmalog.queries._cache_memo import remembered  # a repeated summary is read back

    names, rows = remembered(con, sql)
    return [dict(zip(names, row, strict=True)) for row in rows]


def summary(
    run_path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Steps, wall time, throughput, loss, rewards, accuracy, lengths, memory and losses of one run.

    ``run_path`` is anything :func:`connect` accepts that holds exactly one run. Keys:
    ``run`` (id, name, status, start, end, duration_s, steps, events, ranks, drops,
    events_written, events_lost, sink_errors, error, host, dir), ``throughput``
    (steps_per_s, events_per_s), ``loss`` (phase -> first, last, min, non_finite, count),
    ``rewards`` (phase -> reward_fn -> first/last per-step mean, mean, count), ``accuracy``
    (phase -> correct, total, accuracy), ``completions`` (count, mean/min/max length in
    characters, mean_tokens), ``memory`` (cpu_peak_mb, gpu_peak_mb), ``read_errors``
    (unreadable lines, a skipped run.json counting as one), ``skipped_manifests``
    (file, problem of each run.json that could not be used).
    """
    con = connect(run_path, root=root)
    try:
        freeze(con, SUMMARY_COLUMNS)
        q = named_queries("summary")
        runs = _rows(con, q["run"])
        if not runs:
            raise QueryError(
                f"{run_path}: no readable events and no run.json; nothing to summarize"
            )
        if len(runs) != 1:
            names = ", ".join(str(r["run"]) for r in runs[:5])
            raise QueryError(f"{run_path}: holds {len(runs)} runs ({names}); name one run")
        run = runs[0]
        run["events"] = run["events"] or 0  # a run.json without one readable event
        if isinstance(run.get("sink_errors"), str):
            run["sink_errors"] = json.loads(run["sink_errors"])
        duration = run.get("duration_s") or 0.0
        out: dict[str, Any] = {
            "run": run,
            "throughput": {
                "steps_per_s": (run["steps"] or 0) / duration if duration > 0 else None,
                "events_per_s": run["events"] / duration if duration > 0 else None,
            },
            "loss": {r.pop("phase"): r for r in _rows(con, q["loss"])},
            "rewards": {},
            "accuracy": {r.pop("phase"): r for r in _rows(con, q["accuracy"])},
            "completions": _rows(con, q["completions"])[0],
            "memory": _rows(con, q["memory"])[0],
            "read_errors": _rows(con, q["read_errors"])[0]["lines"],
            "skipped_manifests": [
                {"file": file, "problem": problem} for file, problem in manifest_problems(con)
            ],
        }
        for r in _rows(con, q["rewards"]):
            out["rewards"].setdefault(r.pop("phase"), {})[r.pop("reward_fn")] = r
        return out
    finally:
        con.close()
