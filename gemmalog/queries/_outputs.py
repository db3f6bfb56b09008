"""What every export shares: progress reports, and the check that an output never
overwrites a run's files."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb

from gemmalog.queries._guard import check_output
from gemmalog.queries._paths import Source

#: Called with the share of the work done, from 0.0 to 1.0.
Progress = Callable[[float], None]


def run_with_progress(
    con: duckdb.DuckDBPyConnection, sql: str, progress: Progress | None = None
) -> list[tuple[object, ...]]:
    """Run ``sql``; while it runs, report DuckDB's own progress estimate to ``progress``."""
    if progress is None:
        return con.execute(sql).fetchall()
    result: list[list[tuple[object, ...]]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            result.append(con.execute(sql).fetchall())
        except BaseException as exc:  # re-raised on the calling thread
            errors.append(exc)

    worker = threading.Thread(target=work, name="gemmalog-export", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        done = con.query_progress()
        if done >= 0:
            progress(min(done, 100.0) / 100.0)
    if errors:
        raise errors[0]
    progress(1.0)
    return result[0]


def check_csv_output(
    source: Source, out: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Path:
    """``out`` as an absolute path with its folder created, unless it is one of any run's files
    (:func:`gemmalog.queries._guard.check_output`)."""
    target = check_output(out, sources=[source], root=root)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target
