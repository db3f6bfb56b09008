"""The run page's curves: every numeric series of a run, downsampled on the server.

A long run keeps its shape: each series is cut into buckets of steps and each bucket keeps
its lowest and highest point (and the series its first and last), so a spike or a NaN at
one step of a hundred thousand is still drawn.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from gemmalog.queries import remembered
from gemmalog.serve._sql import queries
from gemmalog.serve._store import RunStore
from gemmalog.serve._tail import Window
from gemmalog.serve._tail_answers import points
from gemmalog.serve._tail_values import Unsupported

#: Points a series keeps at most (twice the buckets, plus its ends).
MAX_POINTS = 2000


def _number(value: Any) -> float | None:
    """A JSON-safe value: NaN and infinities become null (a gap in the curve)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _inline(sql: str, params: dict[str, Any]) -> str:
    """``sql`` with its ``$name`` parameters written in (the query cache keys on the text)."""
    for name, value in sorted(params.items(), key=lambda kv: -len(kv[0])):
        if isinstance(value, list):
            text = "[" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in value) + "]"
            text = text if value else "[]::VARCHAR[]"
        else:
            text = str(int(value))
        sql = sql.replace("$" + name, text)
    return sql


def series(
    store: RunStore,
    run_id: str,
    *,
    names: list[str] | None = None,
    since_step: int | None = None,
    max_points: int = MAX_POINTS,
) -> dict[str, Any]:
    """``{"run", "last_step", "series": [{"name", "phase", "steps", "values", "ts",
    "points", "non_finite"}]}`` for steps after ``since_step``; ``points`` is the series'
    length before downsampling."""
    buckets = max(1, max_points // 2)

    def build() -> dict[str, Any]:
        return _by_series(run_id, _rows(store, run_id, names, since_step, buckets), since_step)

    return store.remembered(run_id, ("series", since_step, tuple(names or ()), max_points), build)


def _rows(
    store: RunStore, run_id: str, names: list[str] | None, since_step: int | None, buckets: int
) -> list[tuple[Any, ...]]:
    """The rows of series.sql: from the lines the server parsed when they answer (a live
    run's new steps), else from DuckDB."""
    if since_step is not None:
        rows = store.from_window(
            run_id, lambda window: _window_rows(window, since_step, names, buckets)
        )
        if rows is not None:
            return rows
    params = {
        "since": -(2**62) if since_step is None else since_step,
        "names": names or [],
        "buckets": buckets,
    }
    # kept in the query cache for the run's data as it is (a page opened again, by
    # this server or the next, reads it back)
    sql = _inline(queries("series")["series"], params)
    with store.connection(run_id) as con:
        return remembered(con, sql)[1]


def _window_rows(
    window: Window, since_step: int, names: list[str] | None, buckets: int
) -> list[tuple[Any, ...]]:
    """The rows of series.sql from the lines the server parsed (a live run's new steps)."""
    found = points(window, since_step)
    if names:
        found = [p for p in found if p[1] in names]
    sizes = Counter((p[0], p[1]) for p in found)
    if any(n > 2 * buckets for n in sizes.values()):
        raise Unsupported("more points than the curves keep: downsampled by DuckDB")
    return [(*p, sizes[(p[0], p[1])]) for p in found]


def _by_series(run_id: str, rows: list[tuple[Any, ...]], since_step: int | None) -> dict[str, Any]:
    """The answer of :func:`series`: the rows gathered by (phase, name), in row order."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    last = since_step
    for phase, name, step, value, ts, count in rows:
        key = (phase, name)
        if key not in out:
            out[key] = {
                "name": name,
                "phase": phase,
                "points": count,
                "steps": [],
                "values": [],
                "ts": [],
                "non_finite": 0,
            }
        item = out[key]
        number = _number(value)
        if number is None and value is not None:
            item["non_finite"] += 1
        item["steps"].append(step)
        item["values"].append(number)
        item["ts"].append(ts)
        last = step if last is None else max(last, step)
    return {"run": run_id, "last_step": last, "series": list(out.values())}
