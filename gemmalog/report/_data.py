"""What a report shows, read through the DuckDB views (``report.sql``) into one ``RunData`` per run."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import duckdb

from gemmalog.doctor import Finding, check_connection
from gemmalog.queries import connect, freeze

#: Best and worst completions shown per run, and NaN/inf metric rows listed per run.
EXTREMES = 5
NON_FINITE_ROWS = 100


@dataclass(slots=True)
class Series:
    """One curve: x values (steps or seconds) and y values, in order."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def add(self, x: float, y: float) -> None:
        self.x.append(x)
        self.y.append(y)


@dataclass(slots=True)
class Drift:
    """Completion length per step: 10th percentile, median and 90th percentile."""

    steps: list[float] = field(default_factory=list)
    p10: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p90: list[float] = field(default_factory=list)


@dataclass(slots=True)
class RunData:
    """Everything the report shows about one run; keys of the dicts are (name, phase) pairs."""

    run: str
    info: dict[str, Any]
    metrics: dict[tuple[str, str], Series] = field(default_factory=dict)
    reward_fns: dict[tuple[str, str], Series] = field(default_factory=dict)
    total_reward: dict[str, Series] = field(default_factory=dict)
    accuracy: dict[str, Series] = field(default_factory=dict)
    cumulative_accuracy: dict[str, Series] = field(default_factory=dict)
    lengths: list[float] = field(default_factory=list)
    drift: dict[str, Drift] = field(default_factory=dict)
    memory: dict[tuple[int, str], Series] = field(default_factory=dict)
    best: list[dict[str, Any]] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)
    non_finite: list[dict[str, Any]] = field(default_factory=list)
    non_finite_total: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    health: list[Finding] = field(default_factory=list)


@cache
def _queries() -> dict[str, str]:
    text = resources.files("gemmalog.report").joinpath("report.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}


def _rows(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    cur = con.execute(_queries()[name], params or {})
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _problems(info: dict[str, Any], read_errors: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """Sink errors, lost and dropped events, a failure, unreadable lines: (what, detail) rows."""
    out: list[tuple[str, str]] = []
    sink_errors = info.get("sink_errors")
    if isinstance(sink_errors, dict):
        out += [(f"sink {name}", str(err)) for name, err in sink_errors.items()]
    if info.get("events_lost"):
        out.append(("events lost", f"{info['events_lost']} lines the JSONL sink failed to write"))
    if info.get("drops"):
        out.append(("events dropped", f"{info['drops']} events dropped by backpressure"))
    if info.get("error"):
        out.append(("run failed", str(info["error"])))
    run_dir = str(info.get("dir") or "")
    for r in read_errors:
        if run_dir and os.path.dirname(str(r["file"])) == run_dir.rstrip("/"):
            out.append(("unreadable lines", f"{r['lines']} in {r['file']}"))
    return out


def _load_one(con: duckdb.DuckDBPyConnection, runs: dict[str, RunData]) -> None:
    """Add the runs ``con`` reads that ``runs`` does not hold yet, with everything shown."""
    fresh = _new_runs(con, runs)
    _add_curves(con, fresh)
    _add_lengths_and_memory(con, fresh)
    _add_examples_and_health(con, fresh)
    runs.update(fresh)


def _new_runs(con: duckdb.DuckDBPyConnection, runs: dict[str, RunData]) -> dict[str, RunData]:
    fresh: dict[str, RunData] = {}
    read_errors = _rows(con, "read_errors")
    for info in _rows(con, "runs"):
        if info["run"] in runs or info["run"] in fresh:
            continue  # the same run named twice (by id and by directory): shown once
        for key in ("sink_errors", "config", "versions", "training_args"):
            info[key] = _json(info[key])
        fresh[info["run"]] = RunData(info["run"], info, problems=_problems(info, read_errors))
    return fresh


def _add_curves(con: duckdb.DuckDBPyConnection, fresh: dict[str, RunData]) -> None:
    """Metrics, reward functions' means, total reward and accuracy, step by step."""
    for r in _rows(con, "metrics"):
        if (d := fresh.get(r["run"])) is not None:
            d.metrics.setdefault((r["name"], r["phase"]), Series()).add(r["step"], r["value"])
    for r in _rows(con, "reward_fns"):
        if (d := fresh.get(r["run"])) is not None:
            d.reward_fns.setdefault((r["reward_fn"], r["phase"]), Series()).add(
                r["step"], r["value"]
            )
    for r in _rows(con, "total_reward"):
        if (d := fresh.get(r["run"])) is not None:
            d.total_reward.setdefault(r["phase"], Series()).add(r["step"], r["value"])
    for r in _rows(con, "accuracy"):
        if (d := fresh.get(r["run"])) is not None:
            d.accuracy.setdefault(r["phase"], Series()).add(r["step"], r["accuracy"])
            d.cumulative_accuracy.setdefault(r["phase"], Series()).add(
                r["step"], r["cumulative_accuracy"]
            )


def _add_lengths_and_memory(con: duckdb.DuckDBPyConnection, fresh: dict[str, RunData]) -> None:
    """Completion lengths and their drift over the steps; memory over time, per rank."""
    for r in _rows(con, "lengths"):
        if (d := fresh.get(r["run"])) is not None:
            d.lengths.append(r["length"])
    for r in _rows(con, "length_drift"):
        if (d := fresh.get(r["run"])) is not None:
            drift = d.drift.setdefault(r["phase"], Drift())
            drift.steps.append(r["step"])
            drift.p10.append(r["p10"])
            drift.p50.append(r["p50"])
            drift.p90.append(r["p90"])
    for r in _rows(con, "memory"):
        if (d := fresh.get(r["run"])) is not None:
            for which in ("cpu_rss_mb", "gpu_mb"):
                if r[which] is not None:
                    d.memory.setdefault((r["rank"], which), Series()).add(r["t"], r[which])


def _add_examples_and_health(con: duckdb.DuckDBPyConnection, fresh: dict[str, RunData]) -> None:
    """The best and worst completions, the non-finite values and the doctor's findings."""
    for r in _rows(con, "extremes", {"limit": EXTREMES}):
        if (d := fresh.get(r["run"])) is not None:
            if r["best"] <= EXTREMES:
                d.best.append(r)
            if r["worst"] <= EXTREMES:
                d.worst.append(r)
    for r in _rows(con, "non_finite", {"limit": NON_FINITE_ROWS}):
        if (d := fresh.get(r["run"])) is not None:
            d.non_finite.append(r)
            d.non_finite_total = r["total"]
    for f in check_connection(con):
        if (d := fresh.get(f.run)) is not None:
            d.health.append(f)
    for d in fresh.values():
        d.worst.reverse()  # the worst first


def load(
    paths: Iterable[str | os.PathLike[str]], *, root: str | os.PathLike[str] | None = None
) -> list[RunData]:
    """Read every run under ``paths`` (run directories, ids, roots or globs), path by path.

    Each path is opened with :func:`gemmalog.queries.connect` and read once (``freeze``);
    runs of one path come in start order; a run reached through two paths appears once. Raises ``QueryError`` for a path that
    holds no run.
    """
    runs: dict[str, RunData] = {}
    for path in paths:
        con = connect(path, root=root)
        try:
            freeze(con)
            _load_one(con, runs)
        finally:
            con.close()
    return list(runs.values())
